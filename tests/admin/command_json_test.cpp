// command_from_json: an operator's JSON command becomes the msgpack command a driver reads (docs/events.md).
#include <firelink/admin/command_json.hpp>
#include <firelink/payload.hpp>

#include <string>

#include <gtest/gtest.h>
#include <msgpack.hpp>

using firelink::admin::command_from_json;

namespace {

std::vector<std::uint8_t> ok(const std::string &body, const std::string &id = "gen-1") {
    auto result = command_from_json(body, id);
    if (!result) ADD_FAILURE() << "refused " << body << ": " << result.why();
    return result ? *result : std::vector<std::uint8_t>{};
}

std::string refused(const std::string &body) {
    auto result = command_from_json(body, "gen-1");
    if (result) {
        ADD_FAILURE() << "accepted " << body;
        return {};
    }
    return result.why();
}

const msgpack::object &at(const msgpack::object &map, const std::string &key) {
    for (std::uint32_t i = 0; i < map.via.map.size; ++i)
        if (map.via.map.ptr[i].key.as<std::string>() == key) return map.via.map.ptr[i].val;
    throw std::runtime_error("no key " + key);
}

}  // namespace

TEST(CommandJson, DriverReadsTheCommandWithTheGeneratedId) {
    const auto bytes = ok(R"({"name": "close_valve", "args": {"confirm_ms": 5000}})", "cmd-7");
    const firelink::command cmd(bytes.data(), bytes.size());
    EXPECT_EQ(cmd.id(), "cmd-7");
    EXPECT_EQ(cmd.name(), "close_valve");
    EXPECT_EQ(cmd.args().get<std::int64_t>("confirm_ms", 0), 5000);
}

TEST(CommandJson, AGivenIdWins) {
    const auto bytes = ok(R"({"id": "op-42", "name": "reset"})");
    const firelink::command cmd(bytes.data(), bytes.size());
    EXPECT_EQ(cmd.id(), "op-42");
}

TEST(CommandJson, MissingArgsBecomeAnEmptyMap) {
    const auto bytes = ok(R"({"name": "ping"})");
    const auto handle = msgpack::unpack(reinterpret_cast<const char *>(bytes.data()), bytes.size());
    const auto &root = handle.get();
    ASSERT_EQ(root.type, msgpack::type::MAP);
    ASSERT_EQ(root.via.map.size, 3u);
    EXPECT_EQ(root.via.map.ptr[0].key.as<std::string>(), "id");
    EXPECT_EQ(root.via.map.ptr[1].key.as<std::string>(), "name");
    EXPECT_EQ(root.via.map.ptr[2].key.as<std::string>(), "args");
    EXPECT_EQ(at(root, "args").type, msgpack::type::MAP);
    EXPECT_EQ(at(root, "args").via.map.size, 0u);
}

TEST(CommandJson, EveryJsonTypeMapsOntoMsgpack) {
    const auto bytes = ok(R"({"name": "x", "args": {"u": 7, "i": -3, "big": 18446744073709551615, "f": 2.5,
        "t": true, "s": "阀门", "a": [1, "two", null], "o": {"k": false}, "n": null}})");
    const auto handle = msgpack::unpack(reinterpret_cast<const char *>(bytes.data()), bytes.size());
    const auto &args = at(handle.get(), "args");
    EXPECT_EQ(at(args, "u").type, msgpack::type::POSITIVE_INTEGER);
    EXPECT_EQ(at(args, "u").as<std::uint64_t>(), 7u);
    EXPECT_EQ(at(args, "i").type, msgpack::type::NEGATIVE_INTEGER);
    EXPECT_EQ(at(args, "i").as<std::int64_t>(), -3);
    EXPECT_EQ(at(args, "big").as<std::uint64_t>(), 18446744073709551615ull);
    EXPECT_EQ(at(args, "f").type, msgpack::type::FLOAT64);
    EXPECT_EQ(at(args, "f").as<double>(), 2.5);
    EXPECT_EQ(at(args, "t").type, msgpack::type::BOOLEAN);
    EXPECT_TRUE(at(args, "t").as<bool>());
    EXPECT_EQ(at(args, "s").as<std::string>(), "阀门");
    const auto &a = at(args, "a");
    ASSERT_EQ(a.type, msgpack::type::ARRAY);
    ASSERT_EQ(a.via.array.size, 3u);
    EXPECT_EQ(a.via.array.ptr[0].as<int>(), 1);
    EXPECT_EQ(a.via.array.ptr[1].as<std::string>(), "two");
    EXPECT_EQ(a.via.array.ptr[2].type, msgpack::type::NIL);
    EXPECT_EQ(at(at(args, "o"), "k").type, msgpack::type::BOOLEAN);
    EXPECT_EQ(at(args, "n").type, msgpack::type::NIL);
}

TEST(CommandJson, RefusesWhatIsNotACommand) {
    EXPECT_NE(refused("close the valve").find("not JSON"), std::string::npos);
    EXPECT_NE(refused("").find("not JSON"), std::string::npos);
    EXPECT_NE(refused(R"({"name": "x",)").find("not JSON"), std::string::npos);
    EXPECT_NE(refused(R"(["close_valve"])").find("JSON object"), std::string::npos);
    EXPECT_NE(refused(R"({"args": {}})").find("\"name\""), std::string::npos);
    EXPECT_NE(refused(R"({"name": 5})").find("\"name\""), std::string::npos);
    EXPECT_NE(refused(R"({"name": ""})").find("\"name\""), std::string::npos);
    EXPECT_NE(refused(R"({"name": "x", "args": [1]})").find("\"args\" must be an object"), std::string::npos);
    EXPECT_NE(refused(R"({"name": "x", "args": null})").find("\"args\" must be an object"), std::string::npos);
    EXPECT_NE(refused(R"({"name": "x", "args": "a=1"})").find("\"args\" must be an object"), std::string::npos);
    EXPECT_NE(refused(R"({"name": "x", "id": 7})").find("\"id\""), std::string::npos);
    EXPECT_NE(refused(R"({"name": "x", "id": ""})").find("\"id\""), std::string::npos);
    EXPECT_NE(refused(R"({"name": "x", "id": ")" + std::string(65, 'a') + "\"}").find("1-64"), std::string::npos);
    EXPECT_NE(refused(R"({"name": "x", "arg": {}})").find("unknown key 'arg'"), std::string::npos);
}

TEST(CommandJson, RefusesDeepNesting) {
    std::string deep = R"({"name": "x", "args": {"a": )";
    for (int i = 0; i < 40; ++i) deep += "[";
    for (int i = 0; i < 40; ++i) deep += "]";
    deep += "}}";
    EXPECT_NE(refused(deep).find("nests deeper"), std::string::npos);
    // ...but a reasonable depth is fine.
    ok(R"({"name": "x", "args": {"a": [[[[{"b": [1]}]]]]}})");
}
