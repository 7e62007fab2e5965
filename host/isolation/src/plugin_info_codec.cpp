#include "firelink/isolation/plugin_info_codec.hpp"

#include <stdexcept>

namespace firelink::isolation {

void pack_plugin_info(msgpack::packer<msgpack::sbuffer> &pk, const core::plugin_info &i) {
    pk.pack_map(12);
    pk.pack("file"), pk.pack(i.file.string());
    pk.pack("id"), pk.pack(i.id);
    pk.pack("name"), pk.pack(i.name);
    pk.pack("vendor"), pk.pack(i.vendor);
    pk.pack("version"), pk.pack(i.version);
    pk.pack("license"), pk.pack(i.license);
    pk.pack("url"), pk.pack(i.url);
    pk.pack("description"), pk.pack(i.description);
    pk.pack("built_abi"), pk.pack(i.built_abi_version);
    pk.pack("agreed_abi"), pk.pack(i.agreed_abi_version);
    pk.pack("extra_exports"), pk.pack(i.extra_exports);
    pk.pack("drivers");
    pk.pack_array(static_cast<std::uint32_t>(i.drivers.size()));
    for (const auto &d : i.drivers) {
        pk.pack_map(7);
        pk.pack("id"), pk.pack(d.id);
        pk.pack("name"), pk.pack(d.name);
        pk.pack("class"), pk.pack(d.device_class);
        pk.pack("description"), pk.pack(d.description);
        pk.pack("wires"), pk.pack(d.wires);
        pk.pack("requires"), pk.pack(d.required_extensions);
        pk.pack("flags"), pk.pack(d.flags);
    }
}

namespace {
const msgpack::object &field(const msgpack::object &map, std::string_view key) {
    if (map.type != msgpack::type::MAP) throw std::runtime_error("plugin info: not a map");
    for (std::uint32_t k = 0; k < map.via.map.size; ++k) {
        const auto &kv = map.via.map.ptr[k];
        if (kv.key.type == msgpack::type::STR && std::string_view(kv.key.via.str.ptr, kv.key.via.str.size) == key)
            return kv.val;
    }
    throw std::runtime_error("plugin info: no '" + std::string(key) + "'");
}
}  // namespace

core::plugin_info unpack_plugin_info(const msgpack::object &o) {
    core::plugin_info i;
    i.file = field(o, "file").as<std::string>();
    i.id = field(o, "id").as<std::string>();
    i.name = field(o, "name").as<std::string>();
    i.vendor = field(o, "vendor").as<std::string>();
    i.version = field(o, "version").as<std::string>();
    i.license = field(o, "license").as<std::string>();
    i.url = field(o, "url").as<std::string>();
    i.description = field(o, "description").as<std::string>();
    i.built_abi_version = field(o, "built_abi").as<std::uint32_t>();
    i.agreed_abi_version = field(o, "agreed_abi").as<std::uint32_t>();
    i.extra_exports = field(o, "extra_exports").as<std::vector<std::string>>();
    const auto &drivers = field(o, "drivers");
    if (drivers.type != msgpack::type::ARRAY) throw std::runtime_error("plugin info: drivers is not an array");
    for (std::uint32_t k = 0; k < drivers.via.array.size; ++k) {
        const auto &d = drivers.via.array.ptr[k];
        core::driver_info di;
        di.id = field(d, "id").as<std::string>();
        di.name = field(d, "name").as<std::string>();
        di.device_class = field(d, "class").as<std::string>();
        di.description = field(d, "description").as<std::string>();
        di.wires = field(d, "wires").as<std::uint32_t>();
        di.required_extensions = field(d, "requires").as<std::vector<std::string>>();
        di.flags = field(d, "flags").as<std::uint64_t>();
        i.drivers.push_back(std::move(di));
    }
    return i;
}

}  // namespace firelink::isolation
