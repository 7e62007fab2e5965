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

std::size_t on_body(char *p, std::size_t size, std::size_t n, void *user) {
    auto *r = static_cast<http_response *>(user);
    r->body.insert(r->body.end(), p, p + size * n);
    return size * n;
}

std::string trimmed(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return std::string(s);
}

std::size_t on_header(char *p, std::size_t size, std::size_t n, void *user) {
    auto *r = static_cast<http_response *>(user);
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
    curl_easy_setopt(c, CURLOPT_USERAGENT, "firelink-host/1.0.0");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &aborted_);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
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
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
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
        r.error = aborted_ ? "stopped" : curl_easy_strerror(rc);
        r.body.clear();
    }
    return r;
}

}  // namespace firelink::uplink
