// The check macros name the failed condition, the file:line and the details.
#include <catch2/catch.hpp>

#include <string>

#include "kumiki/core/error.hpp"

TEST_CASE("KUMIKI_CHECK names condition, location and details", "[core][error]") {
  int n = -3;
  try {
    KUMIKI_CHECK(n > 0, "n must be positive, got ", n);
    FAIL("KUMIKI_CHECK did not throw");
  } catch (kumiki::Error const& e) {
    std::string const what = e.what();
    CHECK_THAT(what, Catch::Contains("check failed: n > 0"));
    CHECK_THAT(what, Catch::Contains("test_error.cpp:"));
    CHECK_THAT(what, Catch::Contains("n must be positive, got -3"));
  }
  CHECK_NOTHROW([] { KUMIKI_CHECK(1 + 1 == 2); }());
  CHECK_THROWS_WITH(KUMIKI_FAIL("broken ", 42), Catch::Contains("broken 42"));
}

TEST_CASE("Input errors carry the message alone and keep the location aside", "[core][error]") {
  int w = 0;
  try {
    KUMIKI_REQUIRE(w > 0, "--data-path: weight ", w, " of 'a' must be > 0");
    FAIL("KUMIKI_REQUIRE did not throw");
  } catch (kumiki::InputError const& e) {
    CHECK(std::string(e.what()) == "--data-path: weight 0 of 'a' must be > 0");
    CHECK_THAT(e.where(), Catch::Contains("test_error.cpp:"));
  }
  try {
    KUMIKI_FAIL("recipe 'r.toml': key 'x' (line 3): unknown key");
    FAIL("KUMIKI_FAIL did not throw");
  } catch (kumiki::InputError const& e) {
    CHECK(std::string(e.what()) == "recipe 'r.toml': key 'x' (line 3): unknown key");
  }
  // An internal check is not an input error: callers can tell a bug from bad input.
  try {
    KUMIKI_CHECK(w > 0);
    FAIL("KUMIKI_CHECK did not throw");
  } catch (kumiki::Error const& e) {
    CHECK(dynamic_cast<kumiki::InputError const*>(&e) == nullptr);
    CHECK_THAT(std::string(e.what()), Catch::Contains("test_error.cpp:"));
  }
}
