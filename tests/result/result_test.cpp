// firelink::result: a value or a failure, never both and never a failure that reads as success.
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include <gtest/gtest.h>

#include <firelink/result.hpp>

using firelink::failure;
using firelink::result;

// A status is not a value: returning FL_INVALID_ARGUMENT from a result of a vector must not build a vector of
// 2^64 - 4 elements (std::vector has an explicit constructor from a size).
static_assert(!std::is_convertible_v<fl_status, result<std::vector<std::uint8_t>>>);
static_assert(std::is_convertible_v<std::vector<std::uint8_t>, result<std::vector<std::uint8_t>>>);
static_assert(std::is_convertible_v<failure, result<std::vector<std::uint8_t>>>);
static_assert(std::is_convertible_v<failure, result<>>);

TEST(Result, AValueIsASuccess) {
    const result<std::string> r = std::string("gas-1");
    ASSERT_TRUE(r);
    EXPECT_EQ(*r, "gas-1");
    EXPECT_EQ(r, FL_OK);
    EXPECT_EQ(r.status(), FL_OK);
    EXPECT_TRUE(r.why().empty());
}

TEST(Result, AFailureCarriesItsStatusAndReason) {
    const result<std::string> r = result<std::string>::fail(FL_BUSY, "the driver is busy; try again");
    ASSERT_FALSE(r);
    EXPECT_EQ(r, FL_BUSY);
    EXPECT_NE(r, FL_OK);
    EXPECT_EQ(r, (failure{FL_BUSY, "the driver is busy; try again"}));
    EXPECT_FALSE(r == (failure{FL_BUSY, "another reason"}));
    std::ostringstream printed;
    printed << r;
    EXPECT_EQ(printed.str(), "status -7: the driver is busy; try again");
}

TEST(Result, AFailureWithFlOkIsAnErrorNotASuccessInDisguise) {
    const result<> r = failure{FL_OK, "a bug upstream"};
    ASSERT_FALSE(r);
    EXPECT_EQ(r.status(), FL_ERROR);
    EXPECT_NE(r, FL_OK);
    EXPECT_EQ(result<int>::fail(FL_OK, "x").status(), FL_ERROR);
}

TEST(Result, OfTurnsAnAbiStatusIntoAResult) {
    EXPECT_TRUE(result<>::of(FL_OK, "ignored"));
    EXPECT_EQ(result<>::of(FL_TIMEOUT, "late"), (failure{FL_TIMEOUT, "late"}));
}

TEST(Result, ARicherErrorIsKeptWhole) {
    struct config_errors {
        std::vector<std::string> lines;
    };
    const result<int, config_errors> r = config_errors{{"site.toml:3: id: missing", "site.toml:9: class: unknown"}};
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().lines.size(), 2u);
    const result<int, config_errors> ok = 7;
    ASSERT_TRUE(ok);
    EXPECT_EQ(*ok, 7);
}
