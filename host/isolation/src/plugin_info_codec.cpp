#include "firelink/isolation/plugin_info_codec.hpp"

#include <filesystem>
#include <stdexcept>
#include <tuple>
#include <type_traits>

namespace firelink::isolation {

namespace {

using packer = msgpack::packer<msgpack::sbuffer>;

// A key of the descriptor's maps and the member it carries.
template <class S, class T>
struct keyed {
    const char *key;
    T S::*of;
};
template <class S, class T>
keyed(const char *, T S::*) -> keyed<S, T>;

// The plain keys of each map, in the order they are packed: one list serves the packer and the unpacker. `drivers`
// and `commands` follow them, packed and checked by hand.
constexpr auto plugin_keys = std::tuple{
    keyed{"file", &core::plugin_info::file},
    keyed{"id", &core::plugin_info::id},
    keyed{"name", &core::plugin_info::name},
    keyed{"vendor", &core::plugin_info::vendor},
    keyed{"version", &core::plugin_info::version},
    keyed{"license", &core::plugin_info::license},
    keyed{"url", &core::plugin_info::url},
    keyed{"description", &core::plugin_info::description},
    keyed{"built_abi", &core::plugin_info::built_abi_version},
    keyed{"agreed_abi", &core::plugin_info::agreed_abi_version},
    keyed{"extra_exports", &core::plugin_info::extra_exports},
};
constexpr auto driver_keys = std::tuple{
    keyed{"id", &core::driver_info::id},
    keyed{"name", &core::driver_info::name},
    keyed{"class", &core::driver_info::device_class},
    keyed{"description", &core::driver_info::description},
    keyed{"wires", &core::driver_info::wires},
    keyed{"requires", &core::driver_info::required_extensions},
    keyed{"flags", &core::driver_info::flags},
    keyed{"declares_commands", &core::driver_info::declares_commands},
};
template <class Keys>
constexpr std::uint32_t key_count = std::tuple_size_v<Keys>;

// The file travels as its string.
template <class T>
void pack_value(packer &pk, const T &v) {
    if constexpr (std::is_same_v<T, std::filesystem::path>)
        pk.pack(v.string());
    else
        pk.pack(v);
}
template <class T>
void unpack_value(const msgpack::object &o, T &v) {
    if constexpr (std::is_same_v<T, std::filesystem::path>)
        v = o.as<std::string>();
    else
        v = o.as<T>();
}

template <class S, class Keys>
void pack_keys(packer &pk, const S &s, const Keys &keys) {
    std::apply([&](const auto &...k) { ((pk.pack(k.key), pack_value(pk, s.*k.of)), ...); }, keys);
}

}  // namespace

void pack_plugin_info(msgpack::packer<msgpack::sbuffer> &pk, const core::plugin_info &i) {
    pk.pack_map(key_count<decltype(plugin_keys)> + 1);  // + drivers
    pack_keys(pk, i, plugin_keys);
    pk.pack("drivers");
    pk.pack_array(static_cast<std::uint32_t>(i.drivers.size()));
    for (const auto &d : i.drivers) {
        pk.pack_map(key_count<decltype(driver_keys)> + 1);  // + commands
        pack_keys(pk, d, driver_keys);
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

// Each key in the list's order, so a descriptor missing several is refused for the first of them.
template <class S, class Keys>
void unpack_keys(const msgpack::object &map, S &s, const Keys &keys) {
    std::apply([&](const auto &...k) { (unpack_value(field(map, k.key), s.*k.of), ...); }, keys);
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
    unpack_keys(o, i, plugin_keys);
    const auto &drivers = field(o, "drivers");
    if (drivers.type != msgpack::type::ARRAY) throw std::runtime_error("plugin info: drivers is not an array");
    for (std::uint32_t k = 0; k < drivers.via.array.size; ++k) {
        const auto &d = drivers.via.array.ptr[k];
        core::driver_info di;
        unpack_keys(d, di, driver_keys);
        di.commands = unpack_commands(field(d, "commands"), di.id);
        if (!di.declares_commands && !di.commands.empty())
            throw std::runtime_error("plugin info: driver '" + di.id + "' lists commands but declares none");
        i.drivers.push_back(std::move(di));
    }
    return i;
}

}  // namespace firelink::isolation
