// firelink-receiver: the reference platform side of docs/uplink-protocol.md. See examples/receiver/README.md.
#include <cstdio>
#include <iostream>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/signal_set.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "server.hpp"
#include "store.hpp"

namespace {

// "HOST:PORT", "[v6]:PORT".
std::pair<std::string, std::uint16_t> parse_listen(const std::string &text) {
    const auto bad = [&](const std::string &why) {
        return std::runtime_error("--listen '" + text + "': " + why + " (expected HOST:PORT, e.g. 127.0.0.1:0)");
    };
    std::string host, port;
    if (!text.empty() && text.front() == '[') {
        const auto close = text.find(']');
        if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':')
            throw bad("an IPv6 address is written [ADDRESS]:PORT");
        host = text.substr(1, close - 1);
        port = text.substr(close + 2);
    } else {
        const auto colon = text.rfind(':');
        if (colon == std::string::npos) throw bad("no ':PORT'");
        host = text.substr(0, colon);
        port = text.substr(colon + 1);
    }
    if (host.empty()) throw bad("the host is empty");
    if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
        std::stoul(port) > 65535)
        throw bad("the port is not a number from 0 to 65535");
    return {host, static_cast<std::uint16_t>(std::stoul(port))};
}

}  // namespace

int main(int argc, char **argv) {
    CLI::App app{"firelink-receiver: the reference 秒响应 platform side of the firelink uplink (docs/uplink-protocol.md)"};
    std::string listen, db_path, token_file, log_level = "info";
    bool test_faults = false, insecure_loopback = false;
    unsigned threads = 2;
    app.add_option("--listen", listen, "HOST:PORT to serve HTTP on (port 0: any free port)")->required();
    app.add_option("--db", db_path, "the SQLite store (created when missing)")->required();
    app.add_option("--token-file", token_file,
                   "the tokens, one a line: '<read|operator|gateway> <gateway-id|*> <token|sha256:HEX>' (README)");
    app.add_flag("--insecure-loopback", insecure_loopback,
                 "no tokens: anyone may do anything (demos and tests; only with a loopback --listen)")
        ->excludes(app.get_option("--token-file"));
    app.add_flag("--test-faults", test_faults, "serve POST /test/faults (fault injection for tests)");
    app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")
        ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
    app.add_option("--threads", threads, "HTTP I/O threads")->check(CLI::Range(1u, 64u));
    CLI11_PARSE(app, argc, argv);

    // Logs go to stderr: stdout carries the one "listening on" line a test reads.
    auto logger = spdlog::stderr_color_mt("firelink-receiver");
    spdlog::set_default_logger(logger);
    spdlog::set_level(spdlog::level::from_str(log_level));

    try {
        firelink::receiver::server_options options;
        std::tie(options.host, options.port) = parse_listen(listen);
        options.test_faults = test_faults;
        if (!token_file.empty()) options.access = firelink::receiver::access_list::load(token_file);
        if (insecure_loopback) {
            // Refused anywhere a neighbour could reach: open access is for one machine's demo or test.
            boost::system::error_code ec;
            const auto address = boost::asio::ip::make_address(options.host, ec);
            if (ec || !address.is_loopback())
                throw std::runtime_error("--insecure-loopback needs a loopback --listen (127.0.0.1, [::1]), not '" +
                                         options.host + "'");
            options.access = firelink::receiver::access_list::insecure();
        }

        firelink::receiver::store db(db_path);
        boost::asio::io_context ioc;
        firelink::receiver::server srv(ioc, db, options);
        const auto at = srv.endpoint();
        const auto address = at.address().is_v6() ? "[" + at.address().to_string() + "]" : at.address().to_string();
        std::cout << "listening on " << address << ":" << at.port() << std::endl;  // flushed
        spdlog::info("listening on {}:{}, store {}, {}{}", address, at.port(), db_path,
                     options.access.open()    ? "INSECURE: no tokens (--insecure-loopback)"
                     : options.access.empty() ? "no --token-file: every request is refused"
                                              : std::to_string(options.access.size()) + " token(s)",
                     test_faults ? ", fault injection on" : "");
        if (options.access.empty() && !options.access.open())
            spdlog::warn("no --token-file: every request is answered 401 (see examples/receiver/README.md)");

        boost::asio::signal_set signals(ioc, SIGINT, SIGTERM);
        signals.async_wait([&](const boost::system::error_code &ec, int sig) {
            if (ec) return;
            spdlog::info("signal {}: stopping", sig);
            srv.stop();
            db.stop();  // commits what is queued; answers to those batches may be lost: the host resends
            ioc.stop();
        });
        srv.start();
        std::vector<std::thread> pool;
        for (unsigned i = 1; i < threads; ++i) pool.emplace_back([&] { ioc.run(); });
        ioc.run();
        for (auto &t : pool) t.join();
        db.stop();
        spdlog::info("stopped");
        return 0;
    } catch (const firelink::receiver::store_error &e) {
        std::cerr << "firelink-receiver: " << e.what() << std::endl;
        return 1;
    } catch (const std::exception &e) {
        std::cerr << "firelink-receiver: " << e.what() << std::endl;
        return 1;
    }
}
