// The Boost.Beast names the project's HTTP servers are written in (spelled as Beast's own examples spell them), and
// the request and response their routes read and answer: the whole body, in a string. A server's source file takes
// them with `using namespace firelink::http_access::beast_names;`.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace firelink::http_access::beast_names {

namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace net = boost::asio;
using tcp = boost::asio::ip::tcp;

using request = http::request<http::string_body>;
using response = http::response<http::string_body>;

}  // namespace firelink::http_access::beast_names
