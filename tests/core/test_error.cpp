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
