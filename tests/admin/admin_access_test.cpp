// The admin token file: its format, its errors (FILE:LINE and what is expected), its mode, and what a header grants.
#include <firelink/admin/admin_access.hpp>

#include <stdexcept>
#include <string>

#include <gtest/gtest.h>

#include "admin_test_util.hpp"

using firelink::admin::access_list;
using firelink::admin::role;
using namespace admin_test;

namespace {

// sha256("hunter2"), as `printf %s hunter2 | sha256sum` prints it.
constexpr const char *hunter2_sha256 = "f52fbd32b2b3b86ff88ef6c490628285f482af15ddcb29541f94bcf526a3f6c7";

// The message load() throws for `text`, or "" when it loads.
std::string load_error(const temp_dir &dir, const std::string &text, mode_t mode = 0600) {
    const auto file = write_file(dir.path() / "tokens", text, mode);
    try {
        access_list::load(file);
        return "";
    } catch (const std::runtime_error &e) {
        return e.what();
    }
}

}  // namespace

TEST(AdminAccess, LoadsPlainAndHashedTokensWithCommentsAndBlankLines) {
    temp_dir dir;
    const auto file = write_file(dir.path() / "tokens",
                                 "# operators of site 3\n"
                                 "\n"
                                 "read prometheus scrape-token-1   # the scraper\n"
                                 "operate alice@site-3 sha256:" + std::string(hunter2_sha256) + "\n"
                                 "  admin   ops.lead_2   root-token\r\n");
    const auto list = access_list::load(file);
    EXPECT_EQ(list.size(), 3u);
    const auto scraper = list.find("scrape-token-1");
    ASSERT_TRUE(scraper);
    EXPECT_EQ(scraper->name, "prometheus");
    EXPECT_EQ(scraper->role, role::read);
    const auto alice = list.find("hunter2");
    ASSERT_TRUE(alice);
    EXPECT_EQ(alice->name, "alice@site-3");
    EXPECT_EQ(alice->role, role::operate);
    const auto lead = list.find("root-token");  // the \r of a CRLF line is not part of the token
    ASSERT_TRUE(lead);
    EXPECT_EQ(lead->role, role::admin);
    EXPECT_FALSE(list.find("sha256:" + std::string(hunter2_sha256)));  // the hash is not itself a token
    EXPECT_FALSE(list.find("hunter"));
    EXPECT_FALSE(list.find(""));
}

TEST(AdminAccess, AuthorizeTakesBearerAndBasic) {
    temp_dir dir;
    const auto list = access_list::load(write_file(dir.path() / "tokens", "operate alice hunter2\n"));
    EXPECT_EQ(list.authorize("Bearer hunter2")->name, "alice");
    EXPECT_EQ(list.authorize("bearer hunter2")->name, "alice");  // the scheme is case-insensitive
    EXPECT_EQ(list.authorize("Basic YWxpY2U6aHVudGVyMg==")->name, "alice");  // base64("alice:hunter2")
    EXPECT_EQ(list.authorize("Basic eDpodW50ZXIy")->name, "alice");          // base64("x:hunter2"): any user
    EXPECT_FALSE(list.authorize("Basic aHVudGVyMg=="));                     // base64("hunter2"): no colon
    EXPECT_FALSE(list.authorize("Bearer hunter3"));
    EXPECT_FALSE(list.authorize("Token hunter2"));
    EXPECT_FALSE(list.authorize("hunter2"));
    EXPECT_FALSE(list.authorize(""));
}

TEST(AdminAccess, BadLinesNameFileLineAndWhatIsExpected) {
    temp_dir dir;
    const std::string file = (dir.path() / "tokens").string();
    const std::string good = "read prometheus t-1\n";
    EXPECT_EQ(load_error(dir, good), "");

    auto e = load_error(dir, good + "operate alice\n");
    EXPECT_NE(e.find(file + ":2: expected '<read|operate|admin> <principal-name> <token|sha256:HEX64>', got 2 word"),
              std::string::npos)
        << e;
    e = load_error(dir, good + "operate alice t-2 extra\n");
    EXPECT_NE(e.find(file + ":2: expected"), std::string::npos) << e;
    e = load_error(dir, "\n# c\n" + good + "operator alice t-2\n");
    EXPECT_NE(e.find(file + ":4: unknown role 'operator' (expected read, operate or admin)"), std::string::npos) << e;
    e = load_error(dir, good + "operate al/ice t-2\n");
    EXPECT_NE(e.find(file + ":2: the principal name 'al/ice' is not 1 to 64 of"), std::string::npos) << e;
    e = load_error(dir, good + "operate " + std::string(65, 'a') + " t-2\n");
    EXPECT_NE(e.find(file + ":2: the principal name"), std::string::npos) << e;
    EXPECT_EQ(load_error(dir, good + "operate " + std::string(64, 'a') + " t-2\n"), "");
    e = load_error(dir, good + "operate alice sha256:abc\n");
    EXPECT_NE(e.find(file + ":2: 'sha256:' must be followed by 64 hex digits"), std::string::npos) << e;
    e = load_error(dir, good + "operate alice sha256:" + std::string(63, 'a') + "g\n");
    EXPECT_NE(e.find(file + ":2: 'sha256:'"), std::string::npos) << e;
}

TEST(AdminAccess, ATokenHasOneGrantAndANameOneGrantPerRole) {
    temp_dir dir;
    const std::string file = (dir.path() / "tokens").string();
    auto e = load_error(dir, "read prometheus hunter2\noperate alice hunter2\n");
    EXPECT_NE(e.find(file + ":2: the same token is listed twice"), std::string::npos) << e;
    // The same token, once plain and once hashed, is still the same token.
    e = load_error(dir, "read prometheus hunter2\noperate alice sha256:" + std::string(hunter2_sha256) + "\n");
    EXPECT_NE(e.find(file + ":2: the same token is listed twice"), std::string::npos) << e;
    e = load_error(dir, "operate alice t-1\nread bob t-2\noperate alice t-3\n");
    EXPECT_NE(e.find(file + ":3: 'alice' already has a operate grant"), std::string::npos) << e;
    EXPECT_EQ(load_error(dir, "operate alice t-1\nadmin alice t-2\n"), "");  // one per role
}

TEST(AdminAccess, AFileGroupOrOthersMayReadIsRefusedWithTheFix) {
    temp_dir dir;
    const std::string file = (dir.path() / "tokens").string();
    for (const mode_t mode : {0640, 0604, 0620, 0660, 0644}) {
        const auto e = load_error(dir, "admin root t-1\n", mode);
        EXPECT_NE(e.find("the token file '" + file + "' has mode 0"), std::string::npos) << e;
        EXPECT_NE(e.find("chmod 600 " + file), std::string::npos) << e;
    }
    EXPECT_EQ(load_error(dir, "admin root t-1\n", 0600), "");
    EXPECT_EQ(load_error(dir, "admin root t-1\n", 0400), "");
}

TEST(AdminAccess, AMissingOrEmptyFileIsAnError) {
    temp_dir dir;
    try {
        access_list::load(dir.path() / "absent");
        ADD_FAILURE() << "loaded a file that does not exist";
    } catch (const std::runtime_error &e) {
        EXPECT_NE(std::string(e.what()).find("cannot read the token file '" + (dir.path() / "absent").string()),
                  std::string::npos)
            << e.what();
    }
    const auto e = load_error(dir, "# nobody yet\n\n");
    EXPECT_NE(e.find("grants nothing"), std::string::npos) << e;
}

TEST(AdminAccess, CertLinesGrantByTheSubjectCn) {
    temp_dir dir;
    const std::string file = (dir.path() / "tokens").string();
    const auto list = access_list::load(write_file(
        dir.path() / "tokens", "cert operate alice@site-3 alice.site-3.example\ncert read scraper prom-1\n"));
    EXPECT_EQ(list.size(), 2u);
    EXPECT_EQ(list.find_cert("alice.site-3.example")->name, "alice@site-3");
    EXPECT_EQ(list.find_cert("alice.site-3.example")->role, role::operate);
    EXPECT_FALSE(list.find_cert("alice"));
    EXPECT_FALSE(list.find_cert(""));
    EXPECT_FALSE(list.find("alice.site-3.example"));  // a CN is not a token

    auto e = load_error(dir, "cert operate alice\n");
    EXPECT_NE(e.find(file + ":1: expected 'cert <read|operate|admin> <principal-name> <subject-CN>', got 3 word"),
              std::string::npos)
        << e;
    e = load_error(dir, "cert operator alice cn-1\n");
    EXPECT_NE(e.find(file + ":1: unknown role 'operator'"), std::string::npos) << e;
    e = load_error(dir, "cert read a cn-1\ncert operate b cn-1\n");
    EXPECT_NE(e.find(file + ":2: the subject CN 'cn-1' is listed twice"), std::string::npos) << e;
    e = load_error(dir, "operate alice t-1\ncert operate alice cn-1\n");
    EXPECT_NE(e.find(file + ":2: 'alice' already has a operate grant"), std::string::npos) << e;
}
