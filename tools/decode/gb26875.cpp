// firelink-decode gb26875 HEX...: each argument is one GB/T 26875.3 frame in hex (spaces, colons and a 0x prefix are
// allowed). Prints one JSON line per frame on stdout; for an invalid frame, says precisely why on stderr (which
// delimiter, which length, which checksum) and exits 1 after the others are printed.
// --stream: the arguments are one byte stream that may hold several frames and garbage between them.
#include <cctype>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <firelink/text.hpp>
#include <firelink/proto/gb26875.hpp>
#include <firelink/proto/gb26875/json.hpp>

#include "subcommand.hpp"

namespace {

namespace gb = firelink::proto::gb26875;

std::string hex2(std::uint8_t a) {
    char b[8];
    std::snprintf(b, sizeof b, "%02x", a);
    return b;
}

// Why `bytes` are not one frame, with the numbers that prove it.
std::string explain(std::span<const std::uint8_t> bytes, const gb::decoded &d) {
    const auto n = bytes.size();
    switch (d.error) {
    case gb::frame_error::bad_start:
        return "bad start delimiter: expected 40 40 ('@@'), got " + (n ? hex2(bytes[0]) : "") +
               (n > 1 ? " " + hex2(bytes[1]) : "");
    case gb::frame_error::incomplete: {
        if (n < gb::header_size)
            return "too short: " + std::to_string(n) + " bytes, a frame has at least " +
                   std::to_string(gb::header_size + gb::trailer_size);
        const std::size_t len = bytes[24] | (bytes[25] << 8);
        return "length: the length field says " + std::to_string(len) + " bytes of application data, so the frame is " +
               std::to_string(gb::header_size + len + gb::trailer_size) + " bytes, but " + std::to_string(n) +
               " were given";
    }
    case gb::frame_error::length_too_large:
        return "length: the length field says " + std::to_string(bytes[24] | (bytes[25] << 8)) +
               " bytes of application data, more than the 1024 allowed";
    case gb::frame_error::bad_end:
        return "bad end delimiter: expected 23 23 ('##') at byte " + std::to_string(d.size - 2) + " (from the length field), got " +
               hex2(bytes[d.size - 2]) + " " + hex2(bytes[d.size - 1]);
    case gb::frame_error::bad_checksum: {
        const std::size_t len = d.size - gb::header_size - gb::trailer_size;
        const auto computed = gb::checksum(bytes.subspan(2, gb::header_size - 2 + len));
        return "checksum: computed " + hex2(computed) + " (low byte of the sum of bytes 2.." +
               std::to_string(gb::header_size + len - 1) + "), the frame says " + hex2(bytes[gb::header_size + len]);
    }
    case gb::frame_error::trailing_bytes:
        return "trailing bytes: the frame ends at byte " + std::to_string(d.size) + " but " + std::to_string(n) +
               " were given (use --stream for several frames)";
    case gb::frame_error::none: break;
    }
    return gb::error_text(d.error);
}

void usage(FILE *to) {
    std::fprintf(to,
                 "usage: firelink-decode gb26875 [--stream] HEX...\n\n"
                 "Decodes GB/T 26875.3-2011 frames (one per argument) and prints each as one JSON line.\n"
                 "An invalid frame is reported on stderr with the reason (delimiter, length, checksum); exit 1.\n"
                 "  --stream   treat all arguments as one byte stream: frames, split or merged, with garbage between\n");
}

int run(int argc, char **argv) {
    bool stream = false;
    std::vector<const char *> args;
    for (int i = 1; i < argc; ++i) {
        if (!std::strcmp(argv[i], "-h") || !std::strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        }
        if (!std::strcmp(argv[i], "--stream")) stream = true;
        else args.push_back(argv[i]);
    }
    if (args.empty()) {
        usage(stderr);
        return 2;
    }
    int status = 0;
    if (stream) {
        std::vector<std::uint8_t> all;
        for (std::size_t i = 0; i < args.size(); ++i) {
            std::string why;
            const auto bytes = firelink::text::parse_hex(args[i], why);
            if (!bytes) {
                std::fprintf(stderr, "argument %zu: %s\n", i + 1, why.c_str());
                return 1;
            }
            all.insert(all.end(), bytes->begin(), bytes->end());
        }
        gb::stream_decoder dec;
        dec.feed(all);
        std::size_t frames = 0;
        while (auto item = dec.next()) {
            if (item->skipped) std::fprintf(stderr, "skipped %zu bytes of garbage\n", item->skipped);
            if (item->ok()) {
                ++frames;
                std::printf("%s\n", gb::to_json(item->value).c_str());
            } else {
                status = 1;
                std::fprintf(stderr, "invalid frame%s: %s\n",
                             item->head ? (" (serial " + std::to_string(item->head->serial) + ")").c_str() : "",
                             gb::error_text(item->error));
            }
        }
        if (dec.buffered()) {
            status = 1;
            std::fprintf(stderr, "%zu bytes at the end are not a whole frame\n", dec.buffered());
        }
        if (frames == 0 && status == 0) {
            std::fprintf(stderr, "no frame found\n");
            status = 1;
        }
        return status;
    }
    for (std::size_t i = 0; i < args.size(); ++i) {
        std::string why;
        const auto parsed = firelink::text::parse_hex(args[i], why);
        if (!parsed) {
            std::fprintf(stderr, "argument %zu: %s\n", i + 1, why.c_str());
            status = 1;
            continue;
        }
        const auto &bytes = *parsed;
        const auto d = gb::decode_frame(bytes);
        if (!d.ok()) {
            std::fprintf(stderr, "argument %zu: invalid frame: %s\n", i + 1, explain(bytes, d).c_str());
            status = 1;
            continue;
        }
        std::printf("%s\n", gb::to_json(d.value).c_str());
    }
    std::fflush(stdout);
    return status;
}

const firelink::tools::registration reg{"gb26875", "decode GB/T 26875.3-2011 frames (fire panel UITD) to JSON", &run};

}  // namespace
