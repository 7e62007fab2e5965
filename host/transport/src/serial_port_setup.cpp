#include "serial_port_setup.hpp"

#include <sys/ioctl.h>
#include <termios.h>

#include <cctype>

namespace firelink::transport::detail {

namespace asio = boost::asio;
using boost::system::error_code;

error_code configure_serial_port(asio::serial_port &port, const serial_settings &s) {
    using sp = asio::serial_port_base;
    error_code ec;
    const char parity = static_cast<char>(std::toupper(static_cast<unsigned char>(s.parity)));
    if (s.data_bits < 5 || s.data_bits > 8 || (parity != 'N' && parity != 'E' && parity != 'O') ||
        (s.stop_bits != 1 && s.stop_bits != 2))
        return asio::error::invalid_argument;

    // asio maps the baud to a termios Bxxx constant and refuses a non-standard rate with invalid_argument.
    port.set_option(sp::baud_rate(s.baud), ec);
    if (!ec) port.set_option(sp::character_size(s.data_bits), ec);
    if (!ec) port.set_option(sp::parity(parity == 'E' ? sp::parity::even
                                        : parity == 'O' ? sp::parity::odd
                                                        : sp::parity::none), ec);
    if (!ec) port.set_option(sp::stop_bits(s.stop_bits == 2 ? sp::stop_bits::two : sp::stop_bits::one), ec);
    if (!ec) port.set_option(sp::flow_control(sp::flow_control::none), ec);
    return ec;
}

error_code open_serial_port(asio::serial_port &port, const serial_settings &settings,
                            std::atomic<std::uint64_t> &discarded) {
    error_code ec;
    // asio opens O_NONBLOCK | O_NOCTTY and puts the line in raw mode (no echo, no canonical input, CLOCAL).
    port.open(settings.path, ec);
    if (!ec) ec = configure_serial_port(port, settings);
    // Bytes that sat in the kernel buffer before we opened belong to nobody (a frame cut by the last close, noise
    // from the plug-in): drop them, and count them so that bytes_discarded tells the whole story. A byte arriving
    // between the two calls is flushed uncounted; the count is a lower bound.
    if (!ec) {
        int waiting = 0;
        if (::ioctl(port.native_handle(), TIOCINQ, &waiting) == 0 && waiting > 0)
            discarded += static_cast<std::uint64_t>(waiting);
        ::tcflush(port.native_handle(), TCIFLUSH);
    }
    if (ec) {
        error_code ignored;
        port.close(ignored);
    }
    return ec;
}

}  // namespace firelink::transport::detail
