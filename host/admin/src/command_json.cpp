#include "firelink/admin/command_json.hpp"

#include <msgpack.hpp>
#include <nlohmann/json.hpp>

namespace firelink::admin {

namespace {

using json = nlohmann::json;
using packer = msgpack::packer<msgpack::sbuffer>;

constexpr int max_depth = 32;

// Packs `v`; false when it nests deeper than max_depth (a 64 KiB body could otherwise recurse 32 k frames deep).
bool pack_value(packer &pk, const json &v, int depth) {
    if (depth > max_depth) return false;
    switch (v.type()) {
    case json::value_t::null: pk.pack_nil(); return true;
    case json::value_t::boolean: pk.pack(v.get<bool>()); return true;
    case json::value_t::number_integer: pk.pack(v.get<std::int64_t>()); return true;
    case json::value_t::number_unsigned: pk.pack(v.get<std::uint64_t>()); return true;
    case json::value_t::number_float: pk.pack(v.get<double>()); return true;
    case json::value_t::string: pk.pack(v.get_ref<const std::string &>()); return true;
    case json::value_t::binary: {  // not produced by the parser; packed as bin for completeness
        const auto &b = v.get_binary();
        pk.pack_bin(static_cast<std::uint32_t>(b.size()));
        pk.pack_bin_body(reinterpret_cast<const char *>(b.data()), static_cast<std::uint32_t>(b.size()));
        return true;
    }
    case json::value_t::array:
        pk.pack_array(static_cast<std::uint32_t>(v.size()));
        for (const auto &item : v)
            if (!pack_value(pk, item, depth + 1)) return false;
        return true;
    case json::value_t::object:
        pk.pack_map(static_cast<std::uint32_t>(v.size()));
        for (const auto &[key, item] : v.items()) {
            pk.pack(key);
            if (!pack_value(pk, item, depth + 1)) return false;
        }
        return true;
    case json::value_t::discarded: return false;
    }
    return false;
}

}  // namespace

firelink::result<std::vector<std::uint8_t>> command_from_json(const std::string &body,
                                                              const std::string &generated_id) {
    const auto refuse = [](std::string why) { return failure{FL_INVALID_ARGUMENT, std::move(why)}; };
    json doc;
    try {
        doc = json::parse(body);
    } catch (const json::parse_error &e) {
        std::string why = e.what();  // "[json.exception.parse_error.101] parse error at line 1, column 2: ..."
        if (auto end = why.find("] "); why.rfind("[json.exception", 0) == 0 && end != std::string::npos)
            why.erase(0, end + 2);
        return refuse("the body is not JSON: " + why);
    }
    if (!doc.is_object()) return refuse("the body must be a JSON object {\"name\": ..., \"args\": {...}}");
    for (const auto &[key, value] : doc.items()) {
        (void)value;
        if (key != "id" && key != "name" && key != "args")
            return refuse("unknown key '" + key + "' (expected \"id\", \"name\", \"args\")");
    }

    auto name = doc.find("name");
    if (name == doc.end() || !name->is_string() || name->get_ref<const std::string &>().empty())
        return refuse("\"name\" must be a non-empty string");

    std::string id = generated_id;
    if (auto given = doc.find("id"); given != doc.end()) {
        if (!given->is_string()) return refuse("\"id\" must be a string");
        id = given->get<std::string>();
        if (id.empty() || id.size() > max_command_id)
            return refuse("\"id\" must be 1-" + std::to_string(max_command_id) + " bytes long");
    }

    const json empty = json::object();
    const json *args = &empty;
    if (auto given = doc.find("args"); given != doc.end()) {
        if (!given->is_object()) return refuse("\"args\" must be an object");
        args = &*given;
    }

    msgpack::sbuffer buf;
    packer pk(buf);
    pk.pack_map(3);
    pk.pack("id");
    pk.pack(id);
    pk.pack("name");
    pk.pack(name->get_ref<const std::string &>());
    pk.pack("args");
    if (!pack_value(pk, *args, 1))
        return refuse("\"args\" nests deeper than " + std::to_string(max_depth) + " levels");
    return std::vector<std::uint8_t>(buf.data(), buf.data() + buf.size());
}

}  // namespace firelink::admin
