// kumiki's TOML reader and writer: documents from the TOML 1.0 specification against values written
// out by hand here, invalid documents against their exact messages (line and column), the inputs that
// crashed toml++, bounded nesting, and writer -> reader round trips.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "kumiki/core/toml.hpp"

namespace toml = kumiki::toml;
using toml::Array;
using toml::Table;
using toml::Value;

namespace {

Table table(std::vector<std::pair<std::string, Value>> entries) {
  Table t;
  for (auto& [k, v] : entries) t.insert_or_assign(k, std::move(v));
  return t;
}

Table parse(std::string_view text) { return toml::parse(text, "t.toml"); }

/// The message of the InputError that parsing `text` throws ("" when it parses).
std::string error_of(std::string_view text) {
  try {
    parse(text);
  } catch (kumiki::InputError const& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("valid TOML documents read into the values the specification gives", "[core][toml]") {
  struct Case {
    std::string text;
    Table expected;
  };
  std::int64_t const i64_max = std::numeric_limits<std::int64_t>::max(), i64_min = std::numeric_limits<std::int64_t>::min();
  double const inf = std::numeric_limits<double>::infinity();
  std::vector<Case> const cases{
      // comments, bare and quoted keys
      {"# a comment\nkey = \"value\"  # and another\nbare_key = 1\nbare-key = 2\n1234 = 3\n",
       table({{"key", "value"}, {"bare_key", 1}, {"bare-key", 2}, {"1234", 3}})},
      {"\"127.0.0.1\" = \"v\"\n\"character encoding\" = \"x\"\n'key2' = 1\n\"ʎǝʞ\" = 2\n\"\" = 3",
       table({{"127.0.0.1", "v"}, {"character encoding", "x"}, {"key2", 1}, {"\xCA\x8E\xC7\x9D\xCA\x9E", 2}, {"", 3}})},
      // dotted keys, whitespace around the dots
      {"name = \"Orange\"\nphysical.color = \"orange\"\nphysical.shape = \"round\"\nsite.\"google.com\" = true\n"
       "fruit . flavor = 'banana'",
       table({{"name", "Orange"},
              {"physical", table({{"color", "orange"}, {"shape", "round"}})},
              {"site", table({{"google.com", true}})},
              {"fruit", table({{"flavor", "banana"}})}})},
      {"3.14159 = \"pi\"", table({{"3", table({{"14159", "pi"}})}})},
      // basic strings and every escape
      {"s = \"I'm a string. \\\"You can quote me\\\". Name\\tJos\\u00E9\\nLocation\\tSF.\"",
       table({{"s", "I'm a string. \"You can quote me\". Name\tJos\xC3\xA9\nLocation\tSF."}})},
      {"s = \"\\b\\f\\r\\\\\\U0001F600\\u0000\"", table({{"s", std::string("\b\f\r\\\xF0\x9F\x98\x80\0", 9)}})},
      {"s = \"\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E\"  # \xE6\xB3\xA8", table({{"s", "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E"}})},
      // multi-line basic strings: first line break trimmed, line-ending backslash, quotes inside
      {"s = \"\"\"\nRoses are red\nViolets are blue\"\"\"", table({{"s", "Roses are red\nViolets are blue"}})},
      {"s = \"\"\"\nThe quick brown \\\n\n\n  fox jumps over \\\n    the lazy dog.\"\"\"",
       table({{"s", "The quick brown fox jumps over the lazy dog."}})},
      {"s = \"\"\"\\\n       The quick brown \\\n       fox jumps over \\\n       the lazy dog.\\\n       \"\"\"",
       table({{"s", "The quick brown fox jumps over the lazy dog."}})},
      {"s = \"\"\"Here are two quotation marks: \"\". Simple enough.\"\"\"",
       table({{"s", "Here are two quotation marks: \"\". Simple enough."}})},
      {"s = \"\"\"Here are fifteen quotation marks: \"\"\\\"\"\"\\\"\"\"\\\"\"\"\\\"\"\"\\\".\"\"\"",
       table({{"s", "Here are fifteen quotation marks: \"\"\"\"\"\"\"\"\"\"\"\"\"\"\"."}})},
      {"s = \"\"\"\"This,\" she said, \"is just a pointless statement.\"\"\"\"",
       table({{"s", "\"This,\" she said, \"is just a pointless statement.\""}})},
      {"s = \"\"\"a\r\nb\"\"\"", table({{"s", "a\nb"}})},
      // literal strings
      {"winpath = 'C:\\Users\\nodejs\\templates'\nregex = '<\\i\\c*\\s*>'\nquoted = 'Tom \"Dubs\" Preston-Werner'",
       table({{"winpath", "C:\\Users\\nodejs\\templates"}, {"regex", "<\\i\\c*\\s*>"}, {"quoted", "Tom \"Dubs\" Preston-Werner"}})},
      {"re = '''I [dw]on't need \\d{2} apples'''\nlines = '''\nThe first newline is\ntrimmed in raw strings.\n   All other "
       "whitespace\n   is preserved.\n'''",
       table({{"re", "I [dw]on't need \\d{2} apples"},
              {"lines", "The first newline is\ntrimmed in raw strings.\n   All other whitespace\n   is preserved.\n"}})},
      {"q = ''''That,' she said, 'is still pointless.''''", table({{"q", "'That,' she said, 'is still pointless.'"}})},
      // integers
      {"int1 = +99\nint2 = 42\nint3 = 0\nint4 = -17\nint5 = 1_000\nint6 = 5_349_221\nint7 = 53_49_221\nint8 = 1_2_3_4_5\n"
       "hex1 = 0xDEADBEEF\nhex2 = 0xdeadbeef\nhex3 = 0xdead_beef\noct1 = 0o01234567\noct2 = 0o755\nbin1 = 0b11010110\n"
       "max = 9223372036854775807\nmin = -9223372036854775808\nhexmax = 0x7fffffffffffffff\nplus0 = +0\nminus0 = -0",
       table({{"int1", 99},
              {"int2", 42},
              {"int3", 0},
              {"int4", -17},
              {"int5", 1000},
              {"int6", 5349221},
              {"int7", 5349221},
              {"int8", 12345},
              {"hex1", std::int64_t{3735928559}},
              {"hex2", std::int64_t{3735928559}},
              {"hex3", std::int64_t{3735928559}},
              {"oct1", 342391},
              {"oct2", 493},
              {"bin1", 214},
              {"max", i64_max},
              {"min", i64_min},
              {"hexmax", i64_max},
              {"plus0", 0},
              {"minus0", 0}})},
      // floats
      {"flt1 = +1.0\nflt2 = 3.1415\nflt3 = -0.01\nflt4 = 5e+22\nflt5 = 1e06\nflt6 = -2E-2\nflt7 = 6.626e-34\n"
       "flt8 = 224_617.445_991_228\nsf1 = inf\nsf2 = +inf\nsf3 = -inf\nz = 0e0\nsmall = 5e-324",
       table({{"flt1", 1.0},
              {"flt2", 3.1415},
              {"flt3", -0.01},
              {"flt4", 5e22},
              {"flt5", 1e6},
              {"flt6", -0.02},
              {"flt7", 6.626e-34},
              {"flt8", 224617.445991228},
              {"sf1", inf},
              {"sf2", inf},
              {"sf3", -inf},
              {"z", 0.0},
              {"small", 5e-324}})},
      {"bool1 = true\nbool2 = false", table({{"bool1", true}, {"bool2", false}})},
      // arrays: mixed, nested, over several lines with comments and a trailing comma
      {"integers = [ 1, 2, 3 ]\nnested = [ [ 1, 2 ], [\"a\", 'b'] ]\nstrings = [ \"all\", 'strings', \"\"\"are the same\"\"\", "
       "'''type''' ]\nnumbers = [ 0.1, 1 ]\nempty = []\n"
       "contributors = [\n  \"Foo Bar <foo@example.com>\",  # a comment\n  { name = \"Baz Qux\", url = \"https://example.com\" },\n]",
       table({{"integers", Array{1, 2, 3}},
              {"nested", Array{Array{1, 2}, Array{"a", "b"}}},
              {"strings", Array{"all", "strings", "are the same", "type"}},
              {"numbers", Array{0.1, 1}},
              {"empty", Array{}},
              {"contributors",
               Array{"Foo Bar <foo@example.com>", table({{"name", "Baz Qux"}, {"url", "https://example.com"}})}}})},
      // tables, quoted and spaced header keys, a super-table defined after its child
      {"[table-1]\nkey1 = \"some string\"\nkey2 = 123\n\n[table-2]\nkey1 = \"another string\"\n\n"
       "[dog.\"tater.man\"]\ntype.name = \"pug\"\n[ g .  h  . i ]\n[ j . \"\xCA\x9E\" . 'l' ]\n[x.y.z.w]\n[x]\nv = 1",
       table({{"table-1", table({{"key1", "some string"}, {"key2", 123}})},
              {"table-2", table({{"key1", "another string"}})},
              {"dog", table({{"tater.man", table({{"type", table({{"name", "pug"}})}})}})},
              {"g", table({{"h", table({{"i", Table{}}})}})},
              {"j", table({{"\xCA\x9E", table({{"l", Table{}}})}})},
              {"x", table({{"y", table({{"z", table({{"w", Table{}}})}})}, {"v", 1}})}})},
      // the specification's sub-table of a table defined by dotted keys
      {"[fruit]\napple.color = \"red\"\napple.taste.sweet = true\n[fruit.apple.texture]\nsmooth = true",
       table({{"fruit", table({{"apple", table({{"color", "red"},
                                                 {"taste", table({{"sweet", true}})},
                                                 {"texture", table({{"smooth", true}})}})}})}})},
      // inline tables
      {"name = { first = \"Tom\", last = \"Preston-Werner\" }\npoint = { x = 1, y = 2 }\nanimal = { type.name = \"pug\" }\n"
       "none = {}",
       table({{"name", table({{"first", "Tom"}, {"last", "Preston-Werner"}})},
              {"point", table({{"x", 1}, {"y", 2}})},
              {"animal", table({{"type", table({{"name", "pug"}})}})},
              {"none", Table{}}})},
      // arrays of tables, nested
      {"[[fruits]]\nname = \"apple\"\n[fruits.physical]\ncolor = \"red\"\n[[fruits.varieties]]\nname = \"red delicious\"\n"
       "[[fruits.varieties]]\nname = \"granny smith\"\n\n[[fruits]]\nname = \"banana\"\n[[fruits.varieties]]\nname = \"plantain\"",
       table({{"fruits",
               Array{table({{"name", "apple"},
                            {"physical", table({{"color", "red"}})},
                            {"varieties", Array{table({{"name", "red delicious"}}), table({{"name", "granny smith"}})}}}),
                     table({{"name", "banana"}, {"varieties", Array{table({{"name", "plantain"}})}}})}}})},
      // CRLF line ends, a byte-order mark, tabs, an empty document, a last line without a line break
      {"\xEF\xBB\xBF" "a = 1\r\n\tb = 'x'  \r\n# end\r\n", table({{"a", 1}, {"b", "x"}})},
      {"", Table{}},
      {"\n\n# only comments\n", Table{}},
      // the toml++ crash input CA 97 is valid UTF-8 (U+0297) and reads fine inside a string
      {"a=\"\xCA\x97\"", table({{"a", "\xCA\x97"}})},
  };
  for (auto const& c : cases) {
    INFO(c.text);
    Table got;
    REQUIRE_NOTHROW(got = parse(c.text));
    CHECK(got == c.expected);
  }
}

TEST_CASE("nan, -0.0 and positions read as written", "[core][toml]") {
  Table const t = parse("n1 = nan\nn2 = -nan\nz = -0.0\n\n  key =   [1,\n   2]\n[tab]\nx = 1");
  CHECK(std::isnan(*t.get("n1")->as_float()));
  CHECK(std::isnan(*t.get("n2")->as_float()));
  CHECK(*t.get("z")->as_float() == 0.0);
  CHECK(std::signbit(*t.get("z")->as_float()));
  CHECK(t.get("n2")->line() == 2);
  CHECK(t.get("key")->line() == 5);  // a value points at its key
  CHECK(t.get("key")->column() == 3);
  CHECK((*t.get("key")->as_array())[1].line() == 6);
  CHECK((*t.get("key")->as_array())[1].column() == 4);
  CHECK(t.get("tab")->line() == 7);
  CHECK(t.get("tab")->as_table()->get("x")->line() == 8);
}

TEST_CASE("invalid documents are input errors naming line, column and what is wrong", "[core][toml]") {
  struct Case {
    std::string text, message;
  };
  std::string const deep65(65, '[');
  std::vector<Case> const cases{
      // the inputs that crash Debian's toml++ 3.3.0 (assertions, undefined behaviour)
      {"[#", "recipe 't.toml' line 1, column 2: expected a key, got '#'"},
      {"a=[}", "recipe 't.toml' line 1, column 4: expected a value, got '}'"},
      {"\xCA\x97", "recipe 't.toml' line 1, column 1: expected a key, got U+0297"},
      // UTF-8
      {"a = 1\nb = \"\xC0\xAF\"", "recipe 't.toml' line 2, column 6: invalid UTF-8 (byte 0xC0); a recipe must be UTF-8 text"},
      {"a = '\xED\xA0\x80'", "recipe 't.toml' line 1, column 6: invalid UTF-8 (byte 0xED); a recipe must be UTF-8 text"},
      {"# \xE3\x81", "recipe 't.toml' line 1, column 3: invalid UTF-8 (byte 0xE3); a recipe must be UTF-8 text"},
      {"a = \"\xF4\x90\x80\x80\"", "recipe 't.toml' line 1, column 6: invalid UTF-8 (byte 0xF4); a recipe must be UTF-8 text"},
      {"a = \"\xFF\"", "recipe 't.toml' line 1, column 6: invalid UTF-8 (byte 0xFF); a recipe must be UTF-8 text"},
      // redefinitions
      {"a = 1\na = 2", "recipe 't.toml' line 2, column 1: 'a' is defined twice (first at line 1)"},
      {"[t]\nx.y = 1\nx.y = 2", "recipe 't.toml' line 3, column 3: 't.x.y' is defined twice (first at line 2)"},
      {"[a]\n[a]", "recipe 't.toml' line 2, column 1: [a]: the table is defined twice (first at line 1)"},
      {"a.b = 1\n[a]", "recipe 't.toml' line 2, column 1: [a]: the table was already defined by dotted keys (line 1)"},
      {"[a]\nb = 1\n[a.b]", "recipe 't.toml' line 3, column 1: [a.b]: 'a.b' already holds an integer (line 2)"},
      {"a = {}\n[a]", "recipe 't.toml' line 2, column 1: [a]: the table was already defined as an inline table (line 1)"},
      {"a = {b = 1}\na.c = 2", "recipe 't.toml' line 2, column 1: 'a' is an inline table (line 1); it cannot be extended"},
      {"a = {b = 1}\n[a.c]", "recipe 't.toml' line 2, column 2: 'a' is an inline table (line 1); it cannot be extended"},
      {"[a.b]\n[a]\nb.c = 1", "recipe 't.toml' line 3, column 1: dotted keys cannot add to the table 'a.b' defined by a [header] (line 1)"},
      {"a = [1]\n[[a]]", "recipe 't.toml' line 2, column 1: [[a]]: 'a' already holds an array (line 1), not an array of tables"},
      {"[[a]]\n[a]", "recipe 't.toml' line 2, column 1: [a]: 'a' already holds an array (line 1)"},
      {"a = 1\n[a.b]", "recipe 't.toml' line 2, column 2: 'a' already holds an integer (line 1), not a table"},
      // dates and times
      {"a = 1979-05-27T07:32:00Z", "recipe 't.toml' line 1, column 5: dates and times are not supported in recipes ('1979-05-27T07:32:00Z')"},
      {"a = 1979-05-27", "recipe 't.toml' line 1, column 5: dates and times are not supported in recipes ('1979-05-27')"},
      {"a = 07:32:00", "recipe 't.toml' line 1, column 5: dates and times are not supported in recipes ('07:32:00')"},
      // numbers
      {"a = 01", "recipe 't.toml' line 1, column 5: invalid number '01': leading zeros are not allowed"},
      {"a = 1__0", "recipe 't.toml' line 1, column 5: invalid number '1__0'"},
      {"a = 1_", "recipe 't.toml' line 1, column 5: invalid number '1_'"},
      {"a = 0x", "recipe 't.toml' line 1, column 5: invalid number '0x'"},
      {"a = 0b102", "recipe 't.toml' line 1, column 5: invalid number '0b102'"},
      {"a = -0x1", "recipe 't.toml' line 1, column 5: invalid number '-0x1': hexadecimal, octal and binary integers take no sign"},
      {"a = 1.", "recipe 't.toml' line 1, column 5: invalid number '1.': a decimal point needs digits on both sides"},
      {"a = .5", "recipe 't.toml' line 1, column 5: expected a value, got '.5' (a string needs quotes)"},
      {"a = 1e", "recipe 't.toml' line 1, column 5: invalid number '1e': the exponent needs digits"},
      {"a = 1.5.2", "recipe 't.toml' line 1, column 5: invalid number '1.5.2'"},
      {"a = 9223372036854775808", "recipe 't.toml' line 1, column 5: integer '9223372036854775808' is out of the 64-bit range"},
      {"a = 0x8000000000000000", "recipe 't.toml' line 1, column 5: integer '0x8000000000000000' is out of the 64-bit range"},
      {"a = 1e999", "recipe 't.toml' line 1, column 5: float '1e999' is out of the range of a 64-bit float"},
      {"a = tru", "recipe 't.toml' line 1, column 5: expected a value, got 'tru' (a string needs quotes)"},
      {"a = Inf", "recipe 't.toml' line 1, column 5: expected a value, got 'Inf' (a string needs quotes)"},
      // strings
      {"a = \"abc", "recipe 't.toml' line 1, column 5: the string is not closed"},
      {"a = \"abc\nb = 1", "recipe 't.toml' line 1, column 5: the string is not closed on its line"},
      {"a = 'abc\nb = 1", "recipe 't.toml' line 1, column 5: the string is not closed on its line"},
      {"a = \"\"\"abc\n", "recipe 't.toml' line 1, column 5: the multi-line string is not closed"},
      {"a = \"\\q\"",
       "recipe 't.toml' line 1, column 6: invalid escape: '\\' followed by 'q' (TOML knows \\b \\t \\n \\f \\r \\\" \\\\ \\uXXXX "
       "\\UXXXXXXXX)"},
      {"a = \"\\uD800\"", "recipe 't.toml' line 1, column 6: \\uD800 is not a Unicode scalar value"},
      {"a = \"\\U00110000\"", "recipe 't.toml' line 1, column 6: \\U00110000 is not a Unicode scalar value"},
      {"a = \"\\u12\"", "recipe 't.toml' line 1, column 6: \\u needs 4 hexadecimal digits"},
      {std::string("a = \"x\x01\""), "recipe 't.toml' line 1, column 7: control character U+0001 in a string (write it as an escape)"},
      {std::string("a = 'x\x7F'"), "recipe 't.toml' line 1, column 7: control character U+007F in a string (write it as an escape)"},
      {std::string("a = \"x\0\"", 8), "recipe 't.toml' line 1, column 7: control character U+0000 in a string (write it as an escape)"},
      {"a = \"\"\"x\"\"\"\"\"\"", "recipe 't.toml' line 1, column 9: more than five '\"' in a row in a multi-line string"},
      {"\"\"\"key\"\"\" = 1", "recipe 't.toml' line 1, column 1: a multi-line string cannot be a key"},
      // structure
      {"# a comment with \x7F", "recipe 't.toml' line 1, column 18: control character U+007F in a comment"},
      {"a = 1 b = 2", "recipe 't.toml' line 1, column 7: expected the end of the line, got 'b'"},
      {"a = \"\xE6\x97\xA5\xE6\x9C\xAC\" x", "recipe 't.toml' line 1, column 10: expected the end of the line, got 'x'"},
      {"a = 1\rb = 2", "recipe 't.toml' line 1, column 6: a carriage return must be followed by a line feed"},
      {"a = { b = 1,\n c = 2 }",
       "recipe 't.toml' line 1, column 5: the inline table is not closed '}' on its line (TOML 1.0 inline tables are one line)"},
      {"a = { b = 1, }", "recipe 't.toml' line 1, column 14: expected a key, got '}'"},
      {"a = { b = 1 c = 2 }", "recipe 't.toml' line 1, column 13: expected ',' or '}' in the inline table, got 'c'"},
      {"a = [1 2]", "recipe 't.toml' line 1, column 8: expected ',' or ']' in the array opened at line 1, got '2'"},
      {"a = [1,,2]", "recipe 't.toml' line 1, column 8: expected a value, got ','"},
      {"a = [1,\n2", "recipe 't.toml' line 1, column 5: the array is not closed ']'"},
      {"= 1", "recipe 't.toml' line 1, column 1: expected a key, got '='"},
      {"a", "recipe 't.toml' line 1, column 2: expected '=' after the key, got the end of the file"},
      {"a =", "recipe 't.toml' line 1, column 4: expected a value, got the end of the file"},
      {"a = # nothing", "recipe 't.toml' line 1, column 5: expected a value, got '#'"},
      {"[a]]", "recipe 't.toml' line 1, column 4: expected the end of the line, got ']'"},
      {"[[a]", "recipe 't.toml' line 1, column 4: expected ']]' to close the table header, got ']'"},
      {"[]", "recipe 't.toml' line 1, column 2: expected a key, got ']'"},
      {"a.b. = 1", "recipe 't.toml' line 1, column 6: expected a key, got '='"},
      // nesting beyond 64 levels (a stack-exhaustion attempt fails at the 65th)
      {"a = " + deep65, "recipe 't.toml' line 1, column 69: values nested deeper than 64 levels"},
      {"a = " + std::string(100000, '['), "recipe 't.toml' line 1, column 69: values nested deeper than 64 levels"},
  };
  for (auto const& c : cases) {
    INFO(c.text);
    CHECK(error_of(c.text) == c.message);
  }
}

TEST_CASE("nesting is bounded at 64 levels in every form", "[core][toml]") {
  auto nested_arrays = [](int n) { return "a = " + std::string(static_cast<std::size_t>(n), '[') + std::string(static_cast<std::size_t>(n), ']'); };
  CHECK(error_of(nested_arrays(64)).empty());
  CHECK(error_of(nested_arrays(65)) == "recipe 't.toml' line 1, column 69: values nested deeper than 64 levels");
  auto nested_inline = [](int n) {
    std::string s = "a = ";
    for (int i = 0; i < n; ++i) s += "{ b = ";
    s += "1";
    for (int i = 0; i < n; ++i) s += " }";
    return s;
  };
  CHECK(error_of(nested_inline(63)).empty());  // a and the tables inside it are levels 1..63, the value 1 level 64
  CHECK(error_of(nested_inline(64)) == "recipe 't.toml' line 1, column " + std::to_string(5 + 64 * 6) +
                                           ": values nested deeper than 64 levels");
  auto dotted = [](int n) {
    std::string s = "k";
    for (int i = 1; i < n; ++i) s += ".k";
    return s + " = 1";
  };
  CHECK(error_of(dotted(64)).empty());
  CHECK(error_of(dotted(65)) == "recipe 't.toml' line 1, column 129: a key of more than 64 parts");
  auto header = [](int n) {
    std::string s = "[k";
    for (int i = 1; i < n; ++i) s += ".k";
    return s + "]\nx = 1";
  };
  CHECK(error_of(header(63)).empty());  // the table at level 63, its key x at 64
  CHECK(error_of(header(64)) == "recipe 't.toml' line 2, column 5: values nested deeper than 64 levels");
  CHECK(error_of(header(65)) == "recipe 't.toml' line 1, column 130: a key of more than 64 parts");
  CHECK(error_of("[a]\n" + dotted(64)) == "recipe 't.toml' line 2, column 131: values nested deeper than 64 levels");
}

TEST_CASE("the writer's text reads back to an equal table", "[core][toml]") {
  Table const t = table({
      {"name", "demo"},
      {"quoted key", "tab\there \"quoted\" back\\slash \x01 \x7F \xE6\x97\xA5 newline\n"},
      {"", 0},
      {"ints", Array{std::numeric_limits<std::int64_t>::min(), std::int64_t{-1}, 0, std::numeric_limits<std::int64_t>::max()}},
      {"floats", Array{1.0, 0.1, 3e-4, 1e300, -0.0, 5e-324, 1.0 / 3.0, std::numeric_limits<double>::infinity(),
                       -std::numeric_limits<double>::infinity()}},
      {"flags", Array{true, false}},
      {"mixed", Array{1, "two", Array{3.0, Array{}}, table({{"four", 4}, {"deeper", table({{"x", 1}})}})}},
      {"optimizer", table({{"beta1", 0.9}, {"sub", table({{"k", "v"}, {"a.b", table({})}})}})},
      {"stages", Array{table({{"name", "en"}, {"lr", table({{"lr", 3e-4}})}, {"eval", Array{table({{"name", "x"}})}}}),
                       table({{"name", "ja"}})}},
      {"empty_table", Table{}},
      {"empty_array", Array{}},
  });
  std::string const text = toml::write(t);
  INFO(text);
  Table back;
  REQUIRE_NOTHROW(back = parse(text));
  CHECK(back == t);
  CHECK(std::signbit(*(*back.get("floats")->as_array())[4].as_float()));
  // Floats always read back as floats, integers as integers.
  CHECK(toml::write(Value(1.0)) == "1.0");
  CHECK(toml::write(Value(3e-4)) == "3e-04");
  CHECK(toml::write(Value(std::int64_t{7})) == "7");
  CHECK(toml::write(Value(std::numeric_limits<double>::quiet_NaN())) == "nan");
  CHECK(toml::write(Value("a\"b")) == "\"a\\\"b\"");
  CHECK(toml::write(table({{"a", 1}, {"b c", table({{"d", true}})}})) == "a = 1\n\n[\"b c\"]\nd = true\n");
}

TEST_CASE("a parsed document written and read again is unchanged", "[core][toml]") {
  std::string const doc =
      "model = \"demo\"\nseed = 1234\n[optimizer]\nbeta1 = 0.9\n[[stages]]\nname = \"english\"\ndata = [1.0, \"en\"]\n"
      "eval = [ { name = \"en\", prefix = \"data/en_val\" } ]\n[stages.lr]\nlr_decay_style = \"WSD\"\nlr = 2e-3\n"
      "[[stages]]\nname = \"ja\"\nsite.\"google.com\" = true\n";
  Table const first = parse(doc);
  Table const second = parse(toml::write(first));
  CHECK(second == first);
  CHECK(toml::write(second) == toml::write(first));
}
