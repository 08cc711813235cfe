// Strict JSON reading of user files: every failure an InputError, short descriptions of values.
#include <catch2/catch.hpp>

#include <cstdint>
#include <string>

#include "kumiki/core/json.hpp"

using kumiki::InputError;
using kumiki::detail::json_describe;
using kumiki::detail::json_quote;
using kumiki::detail::parse_int64_strict;
using kumiki::detail::parse_json_strict;
using Catch::Contains;

TEST_CASE("parse_json_strict refuses malformed text, deep nesting and repeated keys", "[core][json]") {
  CHECK(parse_json_strict(R"({"a": [1, {"b": null}], "c": "x"})", "f")["a"][1].contains("b"));
  CHECK(parse_json_strict(std::string(64, '[') + std::string(64, ']'), "f").is_array());  // 64 levels
  CHECK_THROWS_AS(parse_json_strict("{", "f"), InputError);
  CHECK_THROWS_WITH(parse_json_strict("{", "config 'c.json'"), Contains("config 'c.json' is not valid JSON: "));
  CHECK_THROWS_WITH(parse_json_strict("", "f"), Contains("f is not valid JSON"));
  CHECK_THROWS_WITH(parse_json_strict("{\"a\xff\": 1}", "f"), Contains("not valid JSON"));  // not UTF-8
  CHECK_THROWS_WITH(parse_json_strict("[1e400]", "f"), Contains("not valid JSON"));          // overflows a double
  CHECK_THROWS_WITH(parse_json_strict(std::string(65, '[') + std::string(65, ']'), "f"), Contains("f nests deeper than 64 levels"));
  CHECK_THROWS_WITH(parse_json_strict(std::string(100000, '['), "f"), Contains("nests deeper"));
  CHECK_THROWS_WITH(parse_json_strict(R"({"a": 1, "b": {"a": 2, "a": 3}})", "f"), Contains("f repeats the key \"a\" in one object"));
  CHECK_NOTHROW(parse_json_strict(R"({"a": 1, "b": {"a": 2}, "c": [{"a": 1}, {"a": 2}]})", "f"));
}

TEST_CASE("json_describe and json_quote keep messages short and printable", "[core][json]") {
  using nlohmann::json;
  CHECK(json_describe(json::object()) == "an empty object");
  CHECK(json_describe(json{{"a", 1}}) == "an object");
  CHECK(json_describe(json::array({1})) == "an array");
  CHECK(json_describe(json(nullptr)) == "null");
  CHECK(json_describe(json(false)) == "false");
  CHECK(json_describe(json(-5)) == "the number -5");
  CHECK(json_describe(json(18446744073709551615ull)) == "the number 18446744073709551615");
  CHECK(json_describe(json(2.5)) == "the number 2.5");
  CHECK(json_describe(json("1")) == "the string \"1\"");
  CHECK(json_describe(json("caf\xc3\xa9\n")) == "the string \"caf\\u00e9\\n\"");
  CHECK(json_describe(json(std::string(1000, 'x'))).size() < 70);
  CHECK(json_quote("../x") == "\"../x\"");
  CHECK(json_quote(std::string("a\0b\x1b[31m", 8)) == "\"a\\u0000b\\u001b[31m\"");
  CHECK(json_quote("\xff") == "\"\\ufffd\"");  // invalid UTF-8 is replaced, not thrown
  CHECK(json_quote(std::string(1000, 'y')).size() < 90);
}

TEST_CASE("parse_int64_strict accepts whole decimal integers only", "[core][json]") {
  CHECK(parse_int64_strict("0", "v") == 0);
  CHECK(parse_int64_strict("-42", "v") == -42);
  CHECK(parse_int64_strict("9223372036854775807", "v") == INT64_MAX);
  CHECK(parse_int64_strict("-9223372036854775808", "v") == INT64_MIN);
  for (char const* bad : {"", "-", "x1", "1x", " 1", "1 ", "+1", "1.0", "0x1f", "1e3"}) {
    INFO(bad);
    CHECK_THROWS_AS(parse_int64_strict(bad, "v"), InputError);
  }
  CHECK_THROWS_WITH(parse_int64_strict("12a", "step_count of 'o'"), Contains("step_count of 'o' is \"12a\", not a decimal integer"));
  CHECK_THROWS_WITH(parse_int64_strict("9223372036854775808", "v"), Contains("outside the range of a 64-bit integer"));
}
