#include <firelink/version.h>
#include "firelink/uplink/http_client.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <mutex>
#include <stdexcept>

namespace firelink::uplink {

namespace {

void global_init() {
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// What one transfer collects, with the caps it must stay within.
struct transfer {
    http_response &r;
    std::size_t max_body;
    std::size_t max_header;
    std::size_t header_bytes = 0;
};

// Returning less than it was given makes libcurl abort the transfer (CURLE_WRITE_ERROR): beyond the cap nothing more
// is read, so memory stays at the cap whatever the platform sends.
std::size_t on_body(char *p, std::size_t size, std::size_t n, void *user) {
    auto *t = static_cast<transfer *>(user);
    const std::size_t len = size * n;
    if (t->r.body.size() + len > t->max_body) {
        t->r.too_large = true;
        t->r.error = "response body over " + std::to_string(t->max_body) + " bytes";
        return 0;
    }
    t->r.body.insert(t->r.body.end(), p, p + len);
    return len;
}

std::string trimmed(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return std::string(s);
}

std::size_t on_header(char *p, std::size_t size, std::size_t n, void *user) {
    auto *t = static_cast<transfer *>(user);
    auto *r = &t->r;
    // Counted over every header line of the transfer (1xx answers included): only two values are kept, but a
    // platform that streams headers for ever must still end the request.
    t->header_bytes += size * n;
    if (t->header_bytes > t->max_header) {
        r->too_large = true;
        r->error = "response headers over " + std::to_string(t->max_header) + " bytes";
        return 0;
    }
    const std::string_view line(p, size * n);
    const auto colon = line.find(':');
    if (colon == std::string_view::npos) return size * n;
    std::string name(line.substr(0, colon));
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
    const auto value = trimmed(line.substr(colon + 1));
    if (name == "content-type") {
        r->content_type = value;
    } else if (name == "retry-after") {
        long long ms = -1;
        if (!value.empty() && std::all_of(value.begin(), value.end(), [](unsigned char c) { return std::isdigit(c); })) {
            ms = std::stoll(value.substr(0, 9)) * 1000;
        } else {
            const auto when = curl_getdate(value.c_str(), nullptr);
            if (when >= 0) ms = (static_cast<long long>(when) - static_cast<long long>(std::time(nullptr))) * 1000;
        }
        if (ms >= 0) r->retry_after = std::chrono::milliseconds(std::min<long long>(ms, 300'000));
        else if (!value.empty()) r->retry_after = std::chrono::milliseconds(0);
    }
    return size * n;
}

int on_progress(void *user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
    return static_cast<std::atomic<bool> *>(user)->load() ? 1 : 0;
}

}  // namespace

std::string url_encode(std::string_view s) {
    static const char *hex = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : s) {
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    return out;
}

http_client::http_client(http_options options) : options_(std::move(options)) {
    global_init();
    while (!options_.base_url.empty() && options_.base_url.back() == '/') options_.base_url.pop_back();
    CURL *c = curl_easy_init();
    if (!c) throw std::runtime_error("libcurl: cannot create a handle");
    curl_ = c;
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(options_.connect_timeout.count()));
    curl_easy_setopt(c, CURLOPT_USERAGENT, "firelink-host/" FIRELINK_VERSION_STRING);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &aborted_);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    // A Content-Length over the cap fails before a byte of the body is read; a chunked body is stopped by on_body.
    curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(options_.max_response_bytes));
    if (!options_.ca_file.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, options_.ca_file.c_str());
    if (!options_.client_cert.empty()) {
        curl_easy_setopt(c, CURLOPT_SSLCERT, options_.client_cert.c_str());
        curl_easy_setopt(c, CURLOPT_SSLKEY, options_.client_key.c_str());
    }
    curl_slist *h = nullptr;
    h = curl_slist_append(h, "Accept: application/msgpack");
    h = curl_slist_append(h, "X-Firelink-Protocol: 1");
    h = curl_slist_append(h, ("X-Firelink-Gateway: " + options_.gateway_id).c_str());
    h = curl_slist_append(h, "Expect:");  // no 100-continue round trip
    if (!options_.token.empty()) h = curl_slist_append(h, ("Authorization: Bearer " + options_.token).c_str());
    headers_ = h;
    curl_slist *p = curl_slist_append(nullptr, "Content-Type: application/msgpack");
    for (auto *x = h; x; x = x->next) p = curl_slist_append(p, x->data);
    post_headers_ = p;
}

http_client::~http_client() {
    curl_easy_cleanup(static_cast<CURL *>(curl_));
    curl_slist_free_all(static_cast<curl_slist *>(headers_));
    curl_slist_free_all(static_cast<curl_slist *>(post_headers_));
}

http_response http_client::post(std::string_view path, const std::vector<std::uint8_t> &body) {
    return perform(true, path, &body, options_.timeout);
}

http_response http_client::get(std::string_view path_and_query, std::chrono::milliseconds timeout) {
    return perform(false, path_and_query, nullptr, timeout);
}

http_response http_client::perform(bool post, std::string_view path, const std::vector<std::uint8_t> *body,
                                   std::chrono::milliseconds timeout) {
    http_response r;
    if (aborted_) {
        r.error = "stopped";
        return r;
    }
    auto *c = static_cast<CURL *>(curl_);
    const std::string url = options_.base_url + std::string(path);
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
    transfer t{r, options_.max_response_bytes, options_.max_header_bytes};
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &t);
    if (post) {
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, static_cast<curl_slist *>(post_headers_));
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, reinterpret_cast<const char *>(body->data()));
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body->size()));
    } else {
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, static_cast<curl_slist *>(headers_));
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    }
    const CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    } else {
        if (rc == CURLE_FILESIZE_EXCEEDED) {
            r.too_large = true;
            r.error = "response body over " + std::to_string(options_.max_response_bytes) + " bytes";
        }
        if (aborted_) r.error = "stopped";
        else if (!r.too_large) r.error = curl_easy_strerror(rc);
        r.status = 0;  // an answer not read whole is no answer: the request failed
        r.body.clear();
        r.body.shrink_to_fit();
    }
    return r;
}

}  // namespace firelink::uplink
