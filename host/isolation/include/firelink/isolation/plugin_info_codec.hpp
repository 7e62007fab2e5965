// A plugin's descriptor as the runner sends it to the host (msg::hello).
#pragma once

#include <msgpack.hpp>

#include <firelink/core/plugin_loader.hpp>

namespace firelink::isolation {

void pack_plugin_info(msgpack::packer<msgpack::sbuffer> &pk, const core::plugin_info &info);
// Throws std::exception on a malformed map.
core::plugin_info unpack_plugin_info(const msgpack::object &o);

}  // namespace firelink::isolation
