// The bytes msgpack-c, the reference encoder, writes for a message: what the SDK's writers are compared with, and how
// the tests build the configs and commands the SDK's readers are given.
#pragma once

#include <msgpack.hpp>

#include <cstdint>
#include <vector>

namespace firelink::test {

// Runs `fill` on a fresh msgpack-c packer and returns the bytes it packed.
template <class Fill>
std::vector<std::uint8_t> packed_by_msgpack_c(Fill &&fill) {
    msgpack::sbuffer sb;
    msgpack::packer<msgpack::sbuffer> pk(sb);
    fill(pk);
    const auto *data = reinterpret_cast<const std::uint8_t *>(sb.data());
    return std::vector<std::uint8_t>(data, data + sb.size());
}

}  // namespace firelink::test
