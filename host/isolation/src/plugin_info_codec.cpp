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
        pk.pack_map(9);
        pk.pack("id"), pk.pack(d.id);
        pk.pack("name"), pk.pack(d.name);
        pk.pack("class"), pk.pack(d.device_class);
        pk.pack("description"), pk.pack(d.description);
        pk.pack("wires"), pk.pack(d.wires);
        pk.pack("requires"), pk.pack(d.required_extensions);
        pk.pack("flags"), pk.pack(d.flags);
        pk.pack("declares_commands"), pk.pack(d.declares_commands);
        // Each command as [name, description, FL_COMMAND_* bits].
        pk.pack("commands");
        pk.pack_array(static_cast<std::uint32_t>(d.commands.size()));
        for (const auto &c : d.commands) {
            pk.pack_array(3);
            pk.pack(c.name), pk.pack(c.description);
            pk.pack((c.actuates ? FL_COMMAND_ACTUATES : 0) | (c.restores ? FL_COMMAND_RESTORES : 0));
        }
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

// A driver's declared commands as a runner sent them: the runner is as hostile as the plugin it runs (FL-HOST-33),
// so they are held to the loader's rules again, and bounded before anything is copied.
std::vector<core::command_decl> unpack_commands(const msgpack::object &o, const std::string &driver) {
    const std::string where = "plugin info: driver '" + driver + "': commands";
    if (o.type != msgpack::type::ARRAY) throw std::runtime_error(where + " is not an array");
    if (o.via.array.size > FL_MAX_COMMANDS)
        throw std::runtime_error(where + ": " + std::to_string(o.via.array.size) + " commands, more than " +
                                 std::to_string(FL_MAX_COMMANDS));
    std::vector<core::command_decl> out;
    out.reserve(o.via.array.size);
    for (std::uint32_t k = 0; k < o.via.array.size; ++k) {
        const auto &c = o.via.array.ptr[k];
        const std::string at = where + " #" + std::to_string(k);
        if (c.type != msgpack::type::ARRAY || c.via.array.size != 3)
            throw std::runtime_error(at + " is not [name, description, flags]");
        const auto &name = c.via.array.ptr[0], &description = c.via.array.ptr[1], &flags = c.via.array.ptr[2];
        if (name.type != msgpack::type::STR || name.via.str.size > core::max_command_name)
            throw std::runtime_error(at + ": the name is not a string of at most 64 bytes");
        if (description.type != msgpack::type::STR || description.via.str.size > core::max_command_description)
            throw std::runtime_error(at + ": the description is not a string of at most 256 bytes");
        constexpr std::uint64_t known = FL_COMMAND_ACTUATES | FL_COMMAND_RESTORES;
        if (flags.type != msgpack::type::POSITIVE_INTEGER || (flags.via.u64 & ~known))
            throw std::runtime_error(at + ": flags are not FL_COMMAND_* bits");
        core::command_decl d;
        d.name.assign(name.via.str.ptr, name.via.str.size);
        d.description.assign(description.via.str.ptr, description.via.str.size);
        d.actuates = flags.via.u64 & FL_COMMAND_ACTUATES;
        d.restores = flags.via.u64 & FL_COMMAND_RESTORES;
        out.push_back(std::move(d));
    }
    if (auto why = core::command_decls_problem(out); !why.empty()) throw std::runtime_error(where + ": " + why);
    return out;
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
        di.declares_commands = field(d, "declares_commands").as<bool>();
        di.commands = unpack_commands(field(d, "commands"), di.id);
        if (!di.declares_commands && !di.commands.empty())
            throw std::runtime_error("plugin info: driver '" + di.id + "' lists commands but declares none");
        i.drivers.push_back(std::move(di));
    }
    return i;
}

}  // namespace firelink::isolation
