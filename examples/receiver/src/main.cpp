// firelink-receiver: the reference platform side of docs/uplink-protocol.md. See examples/receiver/README.md.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "server.hpp"
#include "store.hpp"

namespace {

std::string read_token(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read the token file '" + path + "'");
    std::stringstream ss;
    ss << in.rdbuf();
    auto token = ss.str();
    const auto space = " \t\r\n\f\v";
    token.erase(0, token.find_first_not_of(space));
    const auto last = token.find_last_not_of(space);
    token.erase(last == std::string::npos ? 0 : last + 1);
    if (token.empty()) throw std::runtime_error("the token file '" + path + "' is empty");
    return token;
}

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
    bool test_faults = false;
    unsigned threads = 2;
    app.add_option("--listen", listen, "HOST:PORT to serve HTTP on (port 0: any free port)")->required();
    app.add_option("--db", db_path, "the SQLite store (created when missing)")->required();
    app.add_option("--token-file", token_file, "require 'Authorization: Bearer <the file's content>' on /v1/...");
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
        if (!token_file.empty()) options.token = read_token(token_file);

        firelink::receiver::store db(db_path);
        boost::asio::io_context ioc;
        firelink::receiver::server srv(ioc, db, options);
        const auto at = srv.endpoint();
        const auto address = at.address().is_v6() ? "[" + at.address().to_string() + "]" : at.address().to_string();
        std::cout << "listening on " << address << ":" << at.port() << std::endl;  // flushed
        spdlog::info("listening on {}:{}, store {}{}{}", address, at.port(), db_path,
                     options.token.empty() ? "" : ", bearer token required",
                     test_faults ? ", fault injection on" : "");

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
