// Turning the configured host and port of a TCP client or UDP link into endpoints.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/post.hpp>
#include <boost/system/error_code.hpp>

#include <firelink/transport/link.hpp>

namespace firelink::transport::detail {

// Resolves host:port with `resolver` (an asio tcp or udp resolver) and calls done(error_code, std::vector<endpoint>),
// never from inside this call. An address literal needs no resolver (whose getaddrinfo thread a slow DNS server can
// hold up): its one endpoint is posted to `ex`.
template <class Resolver, class Done>
void resolve_endpoints(const executor &ex, Resolver &resolver, const std::string &host, std::uint16_t port, Done done) {
    using endpoint = typename Resolver::endpoint_type;
    boost::system::error_code literal_ec;
    const auto address = boost::asio::ip::make_address(host, literal_ec);
    if (!literal_ec) {
        boost::asio::post(ex, [done = std::move(done), literal = endpoint(address, port)]() mutable {
            done(boost::system::error_code{}, std::vector<endpoint>{literal});
        });
        return;
    }
    resolver.async_resolve(host, std::to_string(port),
                           [done = std::move(done)](const boost::system::error_code &ec,
                                                    const typename Resolver::results_type &results) mutable {
                               std::vector<endpoint> endpoints;
                               for (const auto &entry : results) endpoints.push_back(entry.endpoint());
                               done(ec, std::move(endpoints));
                           });
}

}  // namespace firelink::transport::detail
