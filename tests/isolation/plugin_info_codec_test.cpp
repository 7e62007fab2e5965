// A plugin's descriptor as a runner sends it to the host (msg::hello, plugin_info_codec.hpp): what the runner's
// loader read arrives whole, declared commands included, and a runner that sends commands the loader would have
// refused (it is as hostile as its plugin, FL-HOST-33) has its hello refused as malformed, naming the driver.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include <firelink/isolation/messages.hpp>
#include <firelink/isolation/plugin_info_codec.hpp>

namespace core = firelink::core;
namespace iso = firelink::isolation;

namespace {

core::plugin_info sample() {
    core::plugin_info i;
    i.file = "/opt/firelink/plugins/valves.so";
    i.id = "com.acme.valves";
    i.name = "ACME valves";
    i.vendor = "ACME";
    i.version = "1.2.0";
    i.license = "Apache-2.0";
    i.built_abi_version = FL_ABI_VERSION;
    i.agreed_abi_version = FL_ABI_VERSION;
    core::driver_info valve;
    valve.id = "gv20";
    valve.name = "GV20";
    valve.device_class = FL_CLASS_GAS_SHUTOFF_VALVE;
    valve.declares_commands = true;
    valve.commands = {{"close_valve", "Close the shutoff valve", true, false},
                      {"open_valve", "Open the valve again (燃气阀)", true, true},
                      {"read_state", "", false, false}};
    core::driver_info legacy;  // a 1.0 driver: declares none
    legacy.id = "gv10";
    legacy.name = "GV10";
    legacy.device_class = FL_CLASS_GAS_SHUTOFF_VALVE;
    core::driver_info mute;  // declares that it takes no command at all
    mute.id = "gv00";
    mute.name = "GV00";
    mute.device_class = FL_CLASS_GAS_SHUTOFF_VALVE;
    mute.declares_commands = true;
    i.drivers = {valve, legacy, mute};
    return i;
}

msgpack::object_handle packed(const core::plugin_info &i) {
    msgpack::sbuffer buf;
    msgpack::packer<msgpack::sbuffer> pk(buf);
    iso::pack_plugin_info(pk, i);
    return msgpack::unpack(buf.data(), buf.size());
}

// A driver map as pack_plugin_info writes it, with `commands` as given (each [name, description, flags]).
template <class F>
msgpack::object_handle with_commands(bool declares, F &&pack_commands) {
    msgpack::sbuffer buf;
    msgpack::packer<msgpack::sbuffer> pk(buf);
    pk.pack_map(12);
    for (const char *k : {"file", "id", "name", "vendor", "version", "license", "url", "description"})
        pk.pack(k), pk.pack(std::string(k) == "id" ? "com.acme.valves" : "x");
    pk.pack("built_abi"), pk.pack(FL_ABI_VERSION);
    pk.pack("agreed_abi"), pk.pack(FL_ABI_VERSION);
    pk.pack("extra_exports"), pk.pack(std::vector<std::string>{});
    pk.pack("drivers"), pk.pack_array(1);
    pk.pack_map(9);
    pk.pack("id"), pk.pack("gv20");
    pk.pack("name"), pk.pack("GV20");
    pk.pack("class"), pk.pack(FL_CLASS_GAS_SHUTOFF_VALVE);
    pk.pack("description"), pk.pack("");
    pk.pack("wires"), pk.pack(0u);
    pk.pack("requires"), pk.pack(std::vector<std::string>{});
    pk.pack("flags"), pk.pack(0u);
    pk.pack("declares_commands"), pk.pack(declares);
    pk.pack("commands");
    pack_commands(pk);
    return msgpack::unpack(buf.data(), buf.size());
}

void one(msgpack::packer<msgpack::sbuffer> &pk, const std::string &name, const std::string &description,
         std::uint64_t flags) {
    pk.pack_array(3);
    pk.pack(name), pk.pack(description), pk.pack(flags);
}

// The codec's refusal for a hello carrying these commands (empty when it was taken).
template <class F>
std::string refusal(bool declares, F &&pack_commands) {
    try {
        (void)iso::unpack_plugin_info(with_commands(declares, pack_commands).get());
    } catch (const std::exception &e) {
        return e.what();
    }
    return {};
}

}  // namespace

TEST(PluginInfoCodec, DeclaredCommandsRoundTrip) {
    const auto in = sample();
    const auto out = iso::unpack_plugin_info(packed(in).get());
    ASSERT_EQ(out.drivers.size(), 3u);
    const auto &valve = out.drivers[0];
    EXPECT_TRUE(valve.declares_commands);
    ASSERT_EQ(valve.commands.size(), 3u);
    for (std::size_t k = 0; k < 3; ++k) {
        EXPECT_EQ(valve.commands[k].name, in.drivers[0].commands[k].name);
        EXPECT_EQ(valve.commands[k].description, in.drivers[0].commands[k].description);
        EXPECT_EQ(valve.commands[k].actuates, in.drivers[0].commands[k].actuates);
        EXPECT_EQ(valve.commands[k].restores, in.drivers[0].commands[k].restores);
    }
    ASSERT_NE(valve.find_command("open_valve"), nullptr);
    EXPECT_TRUE(valve.find_command("open_valve")->restores);
    EXPECT_EQ(valve.find_command("open"), nullptr);
    EXPECT_FALSE(out.drivers[1].declares_commands) << "a 1.0 driver stays one that declares nothing";
    EXPECT_TRUE(out.drivers[1].commands.empty());
    EXPECT_TRUE(out.drivers[2].declares_commands) << "declaring an empty list is not declaring none";
    EXPECT_TRUE(out.drivers[2].commands.empty());
}

TEST(PluginInfoCodec, AHelloWithCommandsTheLoaderWouldRefuseIsMalformed) {
    using pk_t = msgpack::packer<msgpack::sbuffer>;
    EXPECT_EQ(refusal(true, [](pk_t &pk) { pk.pack_array(1), one(pk, "close_valve", "", FL_COMMAND_ACTUATES); }), "");

    const std::vector<std::pair<std::string, std::string>> cases = {
        {"bad name", refusal(true, [](pk_t &pk) { pk.pack_array(1), one(pk, "Close Valve", "", 1); })},
        {"empty name", refusal(true, [](pk_t &pk) { pk.pack_array(1), one(pk, "", "", 1); })},
        {"65-byte name", refusal(true, [](pk_t &pk) { pk.pack_array(1), one(pk, std::string(65, 'a'), "", 1); })},
        {"257-byte description",
         refusal(true, [](pk_t &pk) { pk.pack_array(1), one(pk, "trip", std::string(257, 'd'), 1); })},
        {"invalid UTF-8", refusal(true, [](pk_t &pk) { pk.pack_array(1), one(pk, "trip", "\xc3\x28", 1); })},
        {"a newline", refusal(true, [](pk_t &pk) { pk.pack_array(1), one(pk, "trip", "a\nrefused x", 1); })},
        {"unknown flag", refusal(true, [](pk_t &pk) { pk.pack_array(1), one(pk, "trip", "", 1 | 4); })},
        {"restores alone",
         refusal(true, [](pk_t &pk) { pk.pack_array(1), one(pk, "open_valve", "", FL_COMMAND_RESTORES); })},
        {"duplicate", refusal(true, [](pk_t &pk) { pk.pack_array(2), one(pk, "trip", "", 1), one(pk, "trip", "", 1); })},
        {"65 commands",
         refusal(true,
                 [](pk_t &pk) {
                     pk.pack_array(65);
                     for (int k = 0; k < 65; ++k) one(pk, "c" + std::to_string(k), "", 0);
                 })},
        {"not [name, description, flags]", refusal(true, [](pk_t &pk) { pk.pack_array(1), pk.pack("trip"); })},
        {"flags not an integer",
         refusal(true, [](pk_t &pk) { pk.pack_array(1), pk.pack_array(3), pk.pack("trip"), pk.pack(""), pk.pack(""); })},
        {"commands not an array", refusal(true, [](pk_t &pk) { pk.pack("trip"); })},
        {"commands without declaring", refusal(false, [](pk_t &pk) { pk.pack_array(1), one(pk, "trip", "", 1); })},
    };
    for (const auto &[what, why] : cases) {
        EXPECT_NE(why, "") << what << " was taken";
        EXPECT_NE(why.find("driver 'gv20'"), std::string::npos) << what << ": " << why;
    }

    // Through the channel's decoder: a malformed hello, which kills the runner with the reason.
    msgpack::sbuffer buf;
    msgpack::packer<msgpack::sbuffer> pk(buf);
    pk.pack_array(3);
    pk.pack(static_cast<int>(iso::msg::hello));
    const auto bad = with_commands(true, [](pk_t &p) { p.pack_array(1), one(p, "trip", "", 8); });
    pk.pack(bad.get());
    pk.pack(false);
    const auto hello = msgpack::unpack(buf.data(), buf.size());
    try {
        (void)iso::decode_runner_message(hello.get());
        ADD_FAILURE() << "a hello with an unknown command flag was decoded";
    } catch (const iso::malformed &e) {
        EXPECT_NE(std::string(e.what()).find("hello: plugin info: driver 'gv20': commands #0"), std::string::npos)
            << e.what();
    }
}
