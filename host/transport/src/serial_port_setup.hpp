// Line settings for a serial port (termios through asio::serial_port options): baud, character size, parity, stop
// bits, no flow control. Works on a pty, whose driver accepts and ignores the line speed.
#pragma once

#include <atomic>
#include <cstdint>

#include <boost/asio/serial_port.hpp>
#include <boost/system/error_code.hpp>

#include <firelink/transport/link.hpp>

namespace firelink::transport::detail {

// Opens `settings.path` raw and applies the settings; on failure the port is left closed. Bytes already waiting in
// the tty buffer are flushed (they predate the link) and added to `discarded`.
boost::system::error_code open_serial_port(boost::asio::serial_port &port, const serial_settings &settings,
                                           std::atomic<std::uint64_t> &discarded);

// Applies the settings to an open port. invalid_argument for a value the line cannot take (e.g. data_bits 9).
boost::system::error_code configure_serial_port(boost::asio::serial_port &port, const serial_settings &settings);

}  // namespace firelink::transport::detail
