"""The host's admin endpoint as the tests call it: one token file per test site, and requests that carry it."""
import os
import secrets
import urllib.request

# The admin token every test site's token file grants (admin_token_file), fresh for each test process. Since the admin
# endpoint is authenticated (docs/deployment.md#admin-tokens), every POST to it carries this token
# (admin_headers); reads from loopback need none.
ADMIN_TOKEN = secrets.token_hex(32)


def admin_token_file(workdir):
    """Writes WORKDIR/admin-tokens (mode 0600, as the host insists) granting ADMIN_TOKEN the admin role, and returns
    the [admin] line naming it, for a site file in WORKDIR."""
    path = os.path.join(workdir, "admin-tokens")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"admin e2e-tests {ADMIN_TOKEN}\n")
    os.chmod(path, 0o600)  # an existing file keeps its mode through O_CREAT
    return 'token_file = "admin-tokens"\n'


def admin_headers(headers=None):
    """HTTP headers for an admin call: ADMIN_TOKEN as a bearer token, and `headers`."""
    return {"Authorization": "Bearer " + ADMIN_TOKEN, **(headers or {})}


def admin_request(url, data=None, method=None):
    """A urllib Request to a host's admin endpoint, carrying ADMIN_TOKEN."""
    return urllib.request.Request(url, data=data, method=method, headers=admin_headers())
