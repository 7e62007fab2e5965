"""JSON over HTTP to the receiver's API (and anything else on loopback that speaks JSON)."""
import json
import urllib.error
import urllib.request


def request_json(method, url, body=None, token=None, timeout=10):
    """(status, decoded JSON answer) of a request; an error status is an answer too. `body` is JSON-encoded unless
    it is bytes; `token` a bearer token (None: no Authorization header)."""
    data = None if body is None else body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = "Bearer " + token
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")
