#include "firelink/site/driver_config.hpp"

#include <msgpack.hpp>

#include <sstream>
#include <string>

namespace firelink::site {

namespace {

using packer = msgpack::packer<msgpack::sbuffer>;

template <typename T>
std::string iso_text(const T &value) {
    std::ostringstream out;
    out << value;
    return out.str();
}

void pack_string(packer &pk, const std::string &s) {
    pk.pack_str(static_cast<std::uint32_t>(s.size()));
    pk.pack_str_body(s.data(), static_cast<std::uint32_t>(s.size()));
}

void pack_node(packer &pk, const toml::node &n);

void pack_table(packer &pk, const toml::table &t) {
    pk.pack_map(static_cast<std::uint32_t>(t.size()));
    for (const auto &[key, value] : t) {
        pack_string(pk, std::string(key.str()));
        pack_node(pk, value);
    }
}

void pack_node(packer &pk, const toml::node &n) {
    switch (n.type()) {
    case toml::node_type::table: pack_table(pk, *n.as_table()); break;
    case toml::node_type::array: {
        const toml::array &a = *n.as_array();
        pk.pack_array(static_cast<std::uint32_t>(a.size()));
        for (const toml::node &e : a) pack_node(pk, e);
        break;
    }
    case toml::node_type::string: pack_string(pk, n.as_string()->get()); break;
    case toml::node_type::integer: pk.pack(n.as_integer()->get()); break;
    case toml::node_type::floating_point: pk.pack_double(n.as_floating_point()->get()); break;
    case toml::node_type::boolean: pk.pack(n.as_boolean()->get()); break;
    case toml::node_type::date: pack_string(pk, iso_text(n.as_date()->get())); break;
    case toml::node_type::time: pack_string(pk, iso_text(n.as_time()->get())); break;
    case toml::node_type::date_time: pack_string(pk, iso_text(n.as_date_time()->get())); break;
    default: pk.pack_nil(); break;  // toml++ has no other node types
    }
}

}  // namespace

std::vector<std::uint8_t> to_msgpack(const toml::table &table) {
    msgpack::sbuffer buffer;
    packer pk(buffer);
    pack_table(pk, table);
    const auto *data = reinterpret_cast<const std::uint8_t *>(buffer.data());
    return std::vector<std::uint8_t>(data, data + buffer.size());
}

}  // namespace firelink::site
