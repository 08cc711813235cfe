// kumiki/core/toml.hpp: kumiki's own strict TOML 1.0 reader and writer (recipes): no dependency, every
// value keeps its line and column, every error is an InputError naming them, nesting is bounded, and
// any byte sequence is either a document or such an error.
#pragma once

#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <ostream>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "kumiki/config.hpp"
#include "kumiki/core/error.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace toml {

// What is left out of TOML 1.0 (recipes have no use for it): offset / local date-times, dates and
// times are refused with their own message. Everything else follows the specification, including
// its rules against redefining keys and tables. Beyond it, arrays, inline tables and key paths may
// nest at most `max_depth` levels, so that hostile input cannot exhaust the stack of the recursive
// reader (or of the destructors).

/// The deepest a value may sit below the root table (key parts, arrays and inline tables together).
inline constexpr int max_depth = 64;

enum class Type : std::uint8_t { boolean, integer, floating, string, array, table };

/// "a string", "an integer", ...: for messages such as "must be a number, got a string".
constexpr std::string_view type_name(Type t) {
  switch (t) {
    case Type::boolean: return "a boolean";
    case Type::integer: return "an integer";
    case Type::floating: return "a float";
    case Type::string: return "a string";
    case Type::array: return "an array";
    case Type::table: return "a table";
  }
  return "a value";
}

class Value;
using Array = std::vector<Value>;

namespace detail {
class Parser;
}

/// A table: keys in the order they were defined, looked up by name.
class Table {
 public:
  using Entry = std::pair<std::string, Value>;
  using const_iterator = std::vector<Entry>::const_iterator;

  Value const* get(std::string_view key) const;
  Value* get(std::string_view key);
  bool contains(std::string_view key) const { return index_.find(key) != index_.end(); }
  /// Sets `key` (kept at its place when it exists, appended otherwise) and returns the stored value.
  Value& insert_or_assign(std::string key, Value v);
  // Defined after Value (complete there): every compiler may then instantiate what they need.
  std::size_t size() const;
  bool empty() const;
  const_iterator begin() const;
  const_iterator end() const;

 private:
  friend class detail::Parser;
  // How the reader came to create the table: what may still be added to it and how (TOML 1.0).
  enum class Origin : std::uint8_t { code, header, implicit, dotted, inline_table };

  std::vector<Entry> entries_;
  std::map<std::string, std::size_t, std::less<>> index_;
  Origin origin_ = Origin::code;
};

/// One TOML value. `line()` and `column()` say where it starts in the document it was read from
/// (1-based; 0 for a value built in code); for a table, where its header or first key is.
class Value {
 public:
  Value() : v_(Table{}) {}
  Value(bool b) : v_(b) {}
  template <class I>
    requires std::is_integral_v<I> && (!std::is_same_v<I, bool>)
  Value(I i) : v_(static_cast<std::int64_t>(i)) {}
  Value(double d) : v_(d) {}
  Value(std::string s) : v_(std::move(s)) {}
  Value(std::string_view s) : v_(std::string(s)) {}
  Value(char const* s) : v_(std::string(s)) {}
  Value(Array a) : v_(std::move(a)) {}
  Value(Table t) : v_(std::move(t)) {}

  Type type() const { return static_cast<Type>(v_.index()); }
  bool is_table() const { return type() == Type::table; }
  bool is_array() const { return type() == Type::array; }

  bool const* as_bool() const { return std::get_if<bool>(&v_); }
  std::int64_t const* as_integer() const { return std::get_if<std::int64_t>(&v_); }
  double const* as_float() const { return std::get_if<double>(&v_); }
  std::string const* as_string() const { return std::get_if<std::string>(&v_); }
  Array const* as_array() const { return std::get_if<Array>(&v_); }
  Array* as_array() { return std::get_if<Array>(&v_); }
  Table const* as_table() const { return std::get_if<Table>(&v_); }
  Table* as_table() { return std::get_if<Table>(&v_); }

  int line() const { return line_; }
  int column() const { return column_; }

 private:
  friend class detail::Parser;
  // Order as in Type.
  std::variant<bool, std::int64_t, double, std::string, Array, Table> v_;
  int line_ = 0;
  int column_ = 0;
  bool table_array_ = false;  ///< an array made by [[header]]s (only those take more [[header]]s)
};

inline std::size_t Table::size() const { return entries_.size(); }
inline bool Table::empty() const { return entries_.empty(); }
inline Table::const_iterator Table::begin() const { return entries_.begin(); }
inline Table::const_iterator Table::end() const { return entries_.end(); }
inline Value const* Table::get(std::string_view key) const {
  auto const it = index_.find(key);
  return it == index_.end() ? nullptr : &entries_[it->second].second;
}
inline Value* Table::get(std::string_view key) {
  auto const it = index_.find(key);
  return it == index_.end() ? nullptr : &entries_[it->second].second;
}
inline Value& Table::insert_or_assign(std::string key, Value v) {
  auto const it = index_.find(key);
  if (it != index_.end()) return entries_[it->second].second = std::move(v);
  index_.emplace(key, entries_.size());
  entries_.emplace_back(std::move(key), std::move(v));
  return entries_.back().second;
}

/// Equal content (types and values; key order, positions and origins are ignored; NaN != NaN).
inline bool operator==(Value const& a, Value const& b);
inline bool operator==(Table const& a, Table const& b) {
  if (a.size() != b.size()) return false;
  for (auto const& [k, v] : a) {
    Value const* w = b.get(k);
    if (w == nullptr || !(v == *w)) return false;
  }
  return true;
}
inline bool operator==(Value const& a, Value const& b) {
  if (a.type() != b.type()) return false;
  switch (a.type()) {
    case Type::boolean: return *a.as_bool() == *b.as_bool();
    case Type::integer: return *a.as_integer() == *b.as_integer();
    case Type::floating: return *a.as_float() == *b.as_float();
    case Type::string: return *a.as_string() == *b.as_string();
    case Type::array: return *a.as_array() == *b.as_array();
    case Type::table: return *a.as_table() == *b.as_table();
  }
  return false;
}

namespace detail {

constexpr bool is_bare_key_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}
constexpr bool is_digit(char c) { return c >= '0' && c <= '9'; }
constexpr int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/// Length of the valid UTF-8 sequence at s[i], or 0 when it is not one (overlong forms, surrogates
/// and code points above U+10FFFF are invalid).
inline std::size_t utf8_length(std::string_view s, std::size_t i) {
  auto const b = [&](std::size_t k) { return i + k < s.size() ? static_cast<unsigned char>(s[i + k]) : 0u; };
  auto const cont = [&](std::size_t k) { return (b(k) & 0xC0u) == 0x80u; };
  unsigned const c = b(0);
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    unsigned const lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    return b(1) >= lo && b(1) <= hi && cont(2) ? 3 : 0;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    unsigned const lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    return b(1) >= lo && b(1) <= hi && cont(2) && cont(3) ? 4 : 0;
  }
  return 0;
}

/// The UTF-8 encoding of a Unicode scalar value.
inline void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

/// A key as written, quoted when it is not a bare key.
inline std::string key_text(std::string_view key);

class Parser {
 public:
  Parser(std::string_view text, std::string_view source) : s_(text), source_(source) {}

  Table parse() {
    check_utf8();
    if (s_.substr(0, 3) == "\xEF\xBB\xBF") pos_ = line_start_ = 3;  // a byte-order mark
    Table root;
    root.origin_ = Table::Origin::header;
    Section section{&root, 0, ""};
    while (!eof()) {
      skip_ws();
      if (eof()) break;
      char const c = peek();
      if (c == '[') {
        section = parse_header(root);
      } else if (c != '#' && c != '\n' && c != '\r') {
        parse_keyval(*section.table, section.depth, section.path);
      }
      end_of_line();
    }
    return root;
  }

 private:
  struct Mark {
    int line = 0, column = 0;
  };
  struct KeyPart {
    std::string name;
    Mark at;
  };
  struct Section {
    Table* table;
    int depth;
    std::string path;
  };

  std::string_view s_;
  std::string_view source_;
  std::size_t pos_ = 0;
  int line_ = 1;
  std::size_t line_start_ = 0;

  bool eof() const { return pos_ >= s_.size(); }
  char peek(std::size_t k = 0) const { return pos_ + k < s_.size() ? s_[pos_ + k] : '\0'; }
  bool at(std::string_view t) const { return s_.substr(pos_, t.size()) == t; }

  // Columns count characters, not bytes. The count is cached so that a long line costs linear time.
  mutable std::size_t col_line_start_ = 0, col_pos_ = 0;
  mutable int col_ = 1;

  int column_of(std::size_t pos) const {
    if (col_line_start_ != line_start_ || pos < col_pos_) {
      col_line_start_ = col_pos_ = line_start_;
      col_ = 1;
    }
    for (; col_pos_ < pos && col_pos_ < s_.size(); ++col_pos_)
      if ((static_cast<unsigned char>(s_[col_pos_]) & 0xC0u) != 0x80u) ++col_;
    return col_;
  }
  Mark here() const { return {line_, column_of(pos_)}; }

  [[noreturn]] void fail(Mark m, std::string const& what) const {
    std::string where = source_.empty() ? std::string("recipe") : "recipe '" + std::string(source_) + "'";
    KUMIKI_FAIL(where, " line ", m.line, ", column ", m.column, ": ", what);
  }
  [[noreturn]] void fail(std::string const& what) const { fail(here(), what); }

  /// The character at the current position, for messages: 'x', or U+XXXX when it is not printable ASCII.
  std::string describe_here() const {
    if (eof()) return "the end of the file";
    unsigned char const c = static_cast<unsigned char>(peek());
    if (c == '\n' || c == '\r') return "the end of the line";
    if (c >= 0x20 && c < 0x7F) return std::string("'") + static_cast<char>(c) + "'";
    std::uint32_t cp = c;
    std::size_t const n = utf8_length(s_, pos_);
    if (n > 1) {
      cp = c & (n == 2 ? 0x1Fu : n == 3 ? 0x0Fu : 0x07u);
      for (std::size_t k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s_[pos_ + k]) & 0x3Fu);
    }
    return "U+" + hex(cp, 4);
  }
  static std::string hex(std::uint32_t v, int digits) {
    static constexpr char d[] = "0123456789ABCDEF";
    std::string out;
    while (v != 0 || digits > 0) {
      out.insert(out.begin(), d[v & 0xFu]);
      v >>= 4;
      --digits;
    }
    return out;
  }

  void check_utf8() {
    std::size_t line_start = 0;
    int line = 1;
    for (std::size_t i = 0; i < s_.size();) {
      std::size_t const n = utf8_length(s_, i);
      if (n == 0) {
        line_ = line;
        line_start_ = line_start;
        fail({line, column_of(i)}, "invalid UTF-8 (byte 0x" + hex(static_cast<unsigned char>(s_[i]), 2) +
                                       "); a recipe must be UTF-8 text");
      }
      if (s_[i] == '\n') {
        ++line;
        line_start = i + 1;
      }
      i += n;
    }
  }

  void newline_consumed() {
    ++line_;
    line_start_ = pos_;
  }
  /// Consumes "\n" or "\r\n" when one is next.
  bool take_newline() {
    if (peek() == '\n') {
      ++pos_;
      newline_consumed();
      return true;
    }
    if (peek() == '\r' && peek(1) == '\n') {
      pos_ += 2;
      newline_consumed();
      return true;
    }
    return false;
  }
  void skip_ws() {
    while (peek() == ' ' || peek() == '\t') ++pos_;
  }
  static bool is_control(unsigned char c) { return (c < 0x20 && c != '\t') || c == 0x7F; }
  void skip_comment() {
    if (peek() != '#') return;
    ++pos_;
    while (!eof() && peek() != '\n') {
      if (peek() == '\r' && peek(1) == '\n') break;
      if (is_control(static_cast<unsigned char>(peek()))) fail("control character " + describe_here() + " in a comment");
      ++pos_;
    }
  }
  /// Whitespace, a comment, then a line break or the end of the file.
  void end_of_line() {
    skip_ws();
    skip_comment();
    if (eof() || take_newline()) return;
    if (peek() == '\r') fail("a carriage return must be followed by a line feed");
    fail("expected the end of the line, got " + describe_here());
  }
  /// Whitespace, comments and line breaks, as allowed between the values of an array.
  void skip_blank() {
    for (;;) {
      skip_ws();
      skip_comment();
      if (!take_newline()) break;
    }
    if (peek() == '\r') fail("a carriage return must be followed by a line feed");
  }

  // ---- keys ------------------------------------------------------------------------------------

  KeyPart parse_simple_key() {
    KeyPart k{{}, here()};
    if (peek() == '"') {
      if (at("\"\"\"")) fail("a multi-line string cannot be a key");
      k.name = parse_basic_string();
    } else if (peek() == '\'') {
      if (at("'''")) fail("a multi-line string cannot be a key");
      k.name = parse_literal_string();
    } else {
      std::size_t const start = pos_;
      while (is_bare_key_char(peek())) ++pos_;
      if (pos_ == start) fail("expected a key, got " + describe_here());
      k.name = std::string(s_.substr(start, pos_ - start));
    }
    return k;
  }
  std::vector<KeyPart> parse_key() {
    std::vector<KeyPart> parts;
    for (;;) {
      skip_ws();
      parts.push_back(parse_simple_key());
      if (parts.size() > static_cast<std::size_t>(max_depth)) fail(parts.back().at, "a key of more than 64 parts");
      skip_ws();
      if (peek() != '.') break;
      ++pos_;
    }
    return parts;
  }
  static std::string join(std::string const& path, std::string_view key) {
    return path.empty() ? key_text(key) : path + "." + key_text(key);
  }
  static std::string line_of(Value const& v) { return v.line() > 0 ? " (line " + std::to_string(v.line()) + ")" : ""; }
  static std::string first_at(Value const& v) {
    return v.line() > 0 ? " (first at line " + std::to_string(v.line()) + ")" : "";
  }

  // ---- tables ----------------------------------------------------------------------------------

  static Table& new_table(Table& parent, KeyPart const& k, Table::Origin origin) {
    Table t;
    t.origin_ = origin;
    Value v(std::move(t));
    v.line_ = k.at.line;
    v.column_ = k.at.column;
    return *parent.insert_or_assign(k.name, std::move(v)).as_table();
  }

  /// [a.b.c] or [[a.b.c]]: the table that the following key/value lines fill.
  Section parse_header(Table& root) {
    Mark const start = here();
    bool const array = peek(1) == '[';
    pos_ += array ? 2 : 1;
    std::vector<KeyPart> const keys = parse_key();
    if (array ? !at("]]") : peek() != ']')
      fail(std::string("expected '") + (array ? "]]" : "]") + "' to close the table header, got " + describe_here());
    pos_ += array ? 2 : 1;

    Table* t = &root;
    int depth = 0;
    std::string path;
    for (std::size_t i = 0; i + 1 < keys.size(); ++i) {
      KeyPart const& k = keys[i];
      path = join(path, k.name);
      if (++depth > max_depth) fail(k.at, "tables nested deeper than 64 levels");
      Value* v = t->get(k.name);
      if (v == nullptr) {
        t = &new_table(*t, k, Table::Origin::implicit);
      } else if (Table* sub = v->as_table()) {
        if (sub->origin_ == Table::Origin::inline_table)
          fail(k.at, "'" + path + "' is an inline table" + line_of(*v) + "; it cannot be extended");
        t = sub;
      } else if (v->table_array_) {
        if (++depth > max_depth) fail(k.at, "tables nested deeper than 64 levels");
        t = v->as_array()->back().as_table();
      } else {
        fail(k.at, "'" + path + "' already holds " + std::string(type_name(v->type())) + line_of(*v) + ", not a table");
      }
    }
    KeyPart const& k = keys.back();
    path = join(path, k.name);
    if (++depth > max_depth) fail(k.at, "tables nested deeper than 64 levels");
    Value* v = t->get(k.name);
    std::string const shown = array ? "[[" + path + "]]" : "[" + path + "]";
    if (!array) {
      if (v == nullptr) return {&new_table(*t, {k.name, start}, Table::Origin::header), depth, path};
      Table* sub = v->as_table();
      if (sub == nullptr)
        fail(start, shown + ": '" + path + "' already holds " + std::string(type_name(v->type())) + line_of(*v));
      switch (sub->origin_) {
        case Table::Origin::implicit:
          sub->origin_ = Table::Origin::header;
          return {sub, depth, path};
        case Table::Origin::dotted: fail(start, shown + ": the table was already defined by dotted keys" + line_of(*v));
        case Table::Origin::inline_table: fail(start, shown + ": the table was already defined as an inline table" + line_of(*v));
        default: fail(start, shown + ": the table is defined twice" + first_at(*v));
      }
    }
    if (v == nullptr) {
      Value a(Array{});
      a.line_ = start.line;
      a.column_ = start.column;
      a.table_array_ = true;
      v = &t->insert_or_assign(k.name, std::move(a));
    } else if (!v->table_array_) {
      fail(start, shown + ": '" + path + "' already holds " + std::string(type_name(v->type())) + line_of(*v) +
                      ", not an array of tables");
    }
    if (++depth > max_depth) fail(k.at, "tables nested deeper than 64 levels");
    Table t2;
    t2.origin_ = Table::Origin::header;
    Value e(std::move(t2));
    e.line_ = start.line;
    e.column_ = start.column;
    v->as_array()->push_back(std::move(e));
    return {v->as_array()->back().as_table(), depth, path};
  }

  /// key = value into `t` (at `depth` below the root; `path` is its key path, for messages).
  void parse_keyval(Table& t, int depth, std::string const& path_of_t) {
    std::vector<KeyPart> const keys = parse_key();
    if (peek() != '=') fail("expected '=' after the key, got " + describe_here());
    ++pos_;
    skip_ws();
    Table* target = &t;
    std::string path = path_of_t;
    for (std::size_t i = 0; i + 1 < keys.size(); ++i) {
      KeyPart const& k = keys[i];
      path = join(path, k.name);
      if (++depth > max_depth) fail(k.at, "tables nested deeper than 64 levels");
      Value* v = target->get(k.name);
      if (v == nullptr) {
        target = &new_table(*target, k, Table::Origin::dotted);
        continue;
      }
      Table* sub = v->as_table();
      if (sub == nullptr)
        fail(k.at, "'" + path + "' already holds " + std::string(type_name(v->type())) + line_of(*v) + ", not a table");
      if (sub->origin_ == Table::Origin::inline_table)
        fail(k.at, "'" + path + "' is an inline table" + line_of(*v) + "; it cannot be extended");
      if (sub->origin_ != Table::Origin::dotted)
        fail(k.at, "dotted keys cannot add to the table '" + path + "' defined by a [header]" + line_of(*v));
      target = sub;
    }
    KeyPart const& k = keys.back();
    path = join(path, k.name);
    if (Value const* old = target->get(k.name))
      fail(k.at, "'" + path + "' is defined twice" + first_at(*old));
    Value v = parse_value(depth + 1);
    v.line_ = k.at.line;  // where the key is: what a message about the value points to
    v.column_ = k.at.column;
    target->insert_or_assign(k.name, std::move(v));
  }

  // ---- values ----------------------------------------------------------------------------------

  Value parse_value(int depth) {
    if (depth > max_depth) fail("values nested deeper than 64 levels");
    Mark const m = here();
    Value v;
    switch (peek()) {
      case '"': v = Value(at("\"\"\"") ? parse_multiline_basic() : parse_basic_string()); break;
      case '\'': v = Value(at("'''") ? parse_multiline_literal() : parse_literal_string()); break;
      case '[': v = parse_array(depth); break;
      case '{': v = parse_inline_table(depth); break;
      default: v = parse_scalar(); break;
    }
    v.line_ = m.line;
    v.column_ = m.column;
    return v;
  }

  Value parse_array(int depth) {
    Mark const open = here();
    ++pos_;
    Array out;
    for (;;) {
      skip_blank();
      if (peek() == ']') break;
      if (eof()) fail(open, "the array is not closed ']'");
      out.push_back(parse_value(depth + 1));
      skip_blank();
      if (eof()) fail(open, "the array is not closed ']'");
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() == ']') break;
      fail("expected ',' or ']' in the array opened at line " + std::to_string(open.line) + ", got " + describe_here());
    }
    ++pos_;
    return Value(std::move(out));
  }

  static void freeze(Table& t) {
    t.origin_ = Table::Origin::inline_table;
    for (auto& e : t.entries_)
      if (Table* sub = e.second.as_table()) freeze(*sub);
  }

  Value parse_inline_table(int depth) {
    Mark const open = here();
    ++pos_;
    Table t;
    t.origin_ = Table::Origin::dotted;  // its dotted keys may fill it until the closing brace
    skip_ws();
    if (peek() == '}') {
      ++pos_;
    } else {
      for (;;) {
        skip_ws();
        if (peek() == '\n' || peek() == '\r' || eof())
          fail(open, "the inline table is not closed '}' on its line (TOML 1.0 inline tables are one line)");
        parse_keyval(t, depth, "");
        skip_ws();
        if (peek() == ',') {
          ++pos_;
          continue;
        }
        if (peek() == '}') {
          ++pos_;
          break;
        }
        if (peek() == '\n' || peek() == '\r' || eof())
          fail(open, "the inline table is not closed '}' on its line (TOML 1.0 inline tables are one line)");
        fail("expected ',' or '}' in the inline table, got " + describe_here());
      }
    }
    freeze(t);
    return Value(std::move(t));
  }

  // ---- strings ---------------------------------------------------------------------------------

  void check_string_char(Mark open, bool multiline) {
    unsigned char const c = static_cast<unsigned char>(peek());
    if (!multiline && (c == '\n' || c == '\r'))
      fail(open, "the string is not closed on its line");
    if (c == '\r') fail("a carriage return must be followed by a line feed");
    if (is_control(c) && c != '\n') fail("control character " + describe_here() + " in a string (write it as an escape)");
  }

  void parse_escape(std::string& out) {
    Mark const m = here();
    ++pos_;  // the backslash
    char const c = peek();
    switch (c) {
      case 'b': out += '\b'; break;
      case 't': out += '\t'; break;
      case 'n': out += '\n'; break;
      case 'f': out += '\f'; break;
      case 'r': out += '\r'; break;
      case '"': out += '"'; break;
      case '\\': out += '\\'; break;
      case 'u':
      case 'U': {
        int const n = c == 'u' ? 4 : 8;
        std::uint32_t cp = 0;
        for (int i = 1; i <= n; ++i) {
          int const h = hex_value(peek(static_cast<std::size_t>(i)));
          if (h < 0) fail(m, std::string("\\") + c + " needs " + std::to_string(n) + " hexadecimal digits");
          cp = (cp << 4) | static_cast<std::uint32_t>(h);
        }
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
          fail(m, "\\" + std::string(1, c) + hex(cp, n) + " is not a Unicode scalar value");
        append_utf8(out, cp);
        pos_ += static_cast<std::size_t>(n);
        break;
      }
      default:
        fail(m, "invalid escape: '\\' followed by " + describe_here() +
                    " (TOML knows \\b \\t \\n \\f \\r \\\" \\\\ \\uXXXX \\UXXXXXXXX)");
    }
    ++pos_;
  }

  std::string parse_basic_string() {
    Mark const open = here();
    ++pos_;
    std::string out;
    for (;;) {
      if (eof()) fail(open, "the string is not closed");
      char const c = peek();
      if (c == '"') {
        ++pos_;
        return out;
      }
      if (c == '\\') {
        parse_escape(out);
        continue;
      }
      check_string_char(open, false);
      out += c;
      ++pos_;
    }
  }

  std::string parse_literal_string() {
    Mark const open = here();
    ++pos_;
    std::string out;
    for (;;) {
      if (eof()) fail(open, "the string is not closed");
      char const c = peek();
      if (c == '\'') {
        ++pos_;
        return out;
      }
      check_string_char(open, false);
      out += c;
      ++pos_;
    }
  }

  /// At a run of `q` quote characters inside a multi-line string: true when it closes the string
  /// (the closing delimiter may follow up to two quotes of content).
  bool close_multiline(std::string& out, char q) {
    std::size_t n = 0;
    while (peek(n) == q) ++n;
    if (n < 3) {
      out.append(n, q);
      pos_ += n;
      return false;
    }
    if (n > 5) fail(std::string("more than five ") + (q == '"' ? "'\"'" : "\"'\"") + " in a row in a multi-line string");
    out.append(n - 3, q);
    pos_ += n;
    return true;
  }

  std::string parse_multiline_basic() {
    Mark const open = here();
    pos_ += 3;
    take_newline();  // a line break right after the delimiter is not part of the string
    std::string out;
    for (;;) {
      if (eof()) fail(open, "the multi-line string is not closed");
      char const c = peek();
      if (c == '"') {
        if (close_multiline(out, '"')) return out;
        continue;
      }
      if (c == '\\') {
        // A backslash ending a line trims the line break and the whitespace that follows.
        std::size_t k = 1;
        while (peek(k) == ' ' || peek(k) == '\t') ++k;
        if (peek(k) == '\n' || (peek(k) == '\r' && peek(k + 1) == '\n')) {
          pos_ += k;
          for (;;) {
            skip_ws();
            if (!take_newline()) break;
          }
          continue;
        }
        parse_escape(out);
        continue;
      }
      if (take_newline()) {
        out += '\n';
        continue;
      }
      check_string_char(open, true);
      out += c;
      ++pos_;
    }
  }

  std::string parse_multiline_literal() {
    Mark const open = here();
    pos_ += 3;
    take_newline();
    std::string out;
    for (;;) {
      if (eof()) fail(open, "the multi-line string is not closed");
      char const c = peek();
      if (c == '\'') {
        if (close_multiline(out, '\'')) return out;
        continue;
      }
      if (take_newline()) {
        out += '\n';
        continue;
      }
      check_string_char(open, true);
      out += c;
      ++pos_;
    }
  }

  // ---- numbers and booleans --------------------------------------------------------------------

  static bool is_token_char(char c) {
    return is_bare_key_char(c) || c == '+' || c == '.' || c == ':';
  }

  Value parse_scalar() {
    Mark const m = here();
    std::size_t const start = pos_;
    while (is_token_char(peek())) ++pos_;
    std::string_view const t = s_.substr(start, pos_ - start);
    if (t.empty()) fail("expected a value, got " + describe_here());
    if (t == "true") return Value(true);
    if (t == "false") return Value(false);
    double constexpr inf = std::numeric_limits<double>::infinity(), nan = std::numeric_limits<double>::quiet_NaN();
    if (t == "inf" || t == "+inf") return Value(inf);
    if (t == "-inf") return Value(-inf);
    if (t == "nan" || t == "+nan") return Value(nan);
    if (t == "-nan") return Value(-nan);
    bool const date = t.find(':') != std::string_view::npos ||
                      (t.size() >= 5 && is_digit(t[0]) && is_digit(t[1]) && is_digit(t[2]) && is_digit(t[3]) && t[4] == '-');
    if (date) fail(m, "dates and times are not supported in recipes ('" + std::string(t) + "')");
    return parse_number(t, m);
  }

  /// Digits (by `digit`) with single underscores between them, from t[i]; returns the end or npos.
  template <class Digit>
  static std::size_t digits(std::string_view t, std::size_t i, Digit digit) {
    if (i >= t.size() || !digit(t[i])) return std::string_view::npos;
    ++i;
    while (i < t.size()) {
      if (digit(t[i])) {
        ++i;
      } else if (t[i] == '_' && i + 1 < t.size() && digit(t[i + 1])) {
        i += 2;
      } else {
        break;
      }
    }
    return i;
  }

  Value parse_number(std::string_view t, Mark m) {
    auto const bad = [&](std::string const& why) -> Value { fail(m, "invalid number '" + std::string(t) + "'" + why); };
    std::size_t i = 0;
    bool const negative = t[0] == '-';
    bool const sign = t[0] == '-' || t[0] == '+';
    if (sign) i = 1;
    std::string_view const body = t.substr(i);
    // Hexadecimal, octal, binary: no sign, leading zeros allowed.
    if (body.size() >= 2 && body[0] == '0' && (body[1] == 'x' || body[1] == 'o' || body[1] == 'b')) {
      if (sign) return bad(": hexadecimal, octal and binary integers take no sign");
      int const radix = body[1] == 'x' ? 16 : body[1] == 'o' ? 8 : 2;
      auto const dig = [radix](char c) { int const h = hex_value(c); return h >= 0 && h < radix; };
      std::size_t const end = digits(body, 2, dig);
      if (end != body.size()) return bad("");
      std::uint64_t v = 0;
      for (std::size_t k = 2; k < body.size(); ++k) {
        if (body[k] == '_') continue;
        auto const d = static_cast<std::uint64_t>(hex_value(body[k]));
        if (v > (static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) - d) / static_cast<std::uint64_t>(radix))
          fail(m, "integer '" + std::string(t) + "' is out of the 64-bit range");
        v = v * static_cast<std::uint64_t>(radix) + d;
      }
      return Value(static_cast<std::int64_t>(v));
    }
    // Decimal: an integer part without leading zeros, then a fraction and / or an exponent for a float.
    auto const dec = [](char c) { return is_digit(c); };
    std::size_t const int_end = digits(body, 0, dec);
    if (int_end == std::string_view::npos)
      fail(m, "expected a value, got '" + std::string(t) + "' (a string needs quotes)");
    if (body[0] == '0' && int_end > 1) return bad(": leading zeros are not allowed");
    std::size_t k = int_end;
    bool is_float = false;
    if (k < body.size() && body[k] == '.') {
      k = digits(body, k + 1, dec);
      if (k == std::string_view::npos) return bad(": a decimal point needs digits on both sides");
      is_float = true;
    }
    if (k < body.size() && (body[k] == 'e' || body[k] == 'E')) {
      ++k;
      if (k < body.size() && (body[k] == '+' || body[k] == '-')) ++k;
      k = digits(body, k, dec);
      if (k == std::string_view::npos) return bad(": the exponent needs digits");
      is_float = true;
    }
    if (k != body.size()) return bad("");  // e.g. "1x", "1.5.2"
    std::string clean;
    if (negative) clean += '-';
    for (char c : body)
      if (c != '_') clean += c;
    if (is_float) {
      double d = 0;
      auto const r = std::from_chars(clean.data(), clean.data() + clean.size(), d);
      if (r.ec == std::errc::result_out_of_range)
        fail(m, "float '" + std::string(t) + "' is out of the range of a 64-bit float");
      if (r.ec != std::errc() || r.ptr != clean.data() + clean.size()) return bad("");
      return Value(d);
    }
    std::int64_t v = 0;
    auto const r = std::from_chars(clean.data(), clean.data() + clean.size(), v);
    if (r.ec == std::errc::result_out_of_range) fail(m, "integer '" + std::string(t) + "' is out of the 64-bit range");
    if (r.ec != std::errc() || r.ptr != clean.data() + clean.size()) return bad("");
    return Value(v);
  }
};

inline std::string key_text(std::string_view key) {
  bool bare = !key.empty();
  for (char c : key) bare = bare && is_bare_key_char(c);
  if (bare) return std::string(key);
  std::string out = "\"";
  for (char c : key) {
    unsigned char const u = static_cast<unsigned char>(c);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\t': out += "\\t"; break;
      case '\n': out += "\\n"; break;
      case '\f': out += "\\f"; break;
      case '\r': out += "\\r"; break;
      default:
        if (u < 0x20 || u == 0x7F) {
          static constexpr char d[] = "0123456789ABCDEF";
          out += "\\u00";
          out += d[u >> 4];
          out += d[u & 0xF];
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

// ---- writer --------------------------------------------------------------------------------------

inline std::string string_text(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    std::size_t const n = utf8_length(s, i);
    KUMIKI_CHECK(n > 0, "toml: a string to write is not valid UTF-8");
    i += n;
  }
  std::string out = key_text(s);
  if (out.front() != '"') out = "\"" + out + "\"";  // bare-key-like text still needs quotes as a value
  return out;
}

inline std::string float_text(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d < 0 ? "-inf" : "inf";
  char buf[64];
  auto const r = std::to_chars(buf, buf + sizeof buf, d);  // the shortest text that reads back exactly
  std::string out(buf, r.ptr);
  if (out.find_first_of(".e") == std::string::npos) out += ".0";
  return out;
}

inline void write_inline(std::string& out, Value const& v);

inline void write_inline_table(std::string& out, Table const& t) {
  if (t.empty()) {
    out += "{}";
    return;
  }
  out += "{ ";
  bool first = true;
  for (auto const& [k, v] : t) {
    if (!first) out += ", ";
    first = false;
    out += key_text(k) + " = ";
    write_inline(out, v);
  }
  out += " }";
}

inline void write_inline(std::string& out, Value const& v) {
  switch (v.type()) {
    case Type::boolean: out += *v.as_bool() ? "true" : "false"; break;
    case Type::integer: out += std::to_string(*v.as_integer()); break;
    case Type::floating: out += float_text(*v.as_float()); break;
    case Type::string: out += string_text(*v.as_string()); break;
    case Type::array: {
      out += '[';
      bool first = true;
      for (Value const& e : *v.as_array()) {
        if (!first) out += ", ";
        first = false;
        write_inline(out, e);
      }
      out += ']';
      break;
    }
    case Type::table: write_inline_table(out, *v.as_table()); break;
  }
}

inline bool is_table_array(Value const& v) {
  Array const* a = v.as_array();
  if (a == nullptr || a->empty()) return false;
  for (Value const& e : *a)
    if (!e.is_table()) return false;
  return true;
}

/// The body of table `t` whose key path is `path`: its plain keys, then its tables as [path.key]
/// sections and its arrays of tables as [[path.key]] sections.
inline void write_body(std::string& out, Table const& t, std::string const& path) {
  for (auto const& [k, v] : t) {
    if (v.is_table() || is_table_array(v)) continue;
    out += key_text(k) + " = ";
    write_inline(out, v);
    out += '\n';
  }
  for (auto const& [k, v] : t) {
    std::string const sub = path.empty() ? key_text(k) : path + "." + key_text(k);
    if (Table const* st = v.as_table()) {
      out += (out.empty() ? "[" : "\n[") + sub + "]\n";
      write_body(out, *st, sub);
    } else if (is_table_array(v)) {
      for (Value const& e : *v.as_array()) {
        out += (out.empty() ? "[[" : "\n[[") + sub + "]]\n";
        write_body(out, *e.as_table(), sub);
      }
    }
  }
}

}  // namespace detail

/// Parses a TOML document. `source` names it in messages ("recipe 'SOURCE' line N, column C: ...");
/// every error is a kumiki::InputError.
inline Table parse(std::string_view text, std::string_view source = {}) { return detail::Parser(text, source).parse(); }

/// The table as TOML text that `parse` reads back to an equal table (plain keys first, then
/// [sub.tables] and [[arrays.of.tables]]; floats in the shortest form that reads back exactly).
inline std::string write(Table const& t) {
  std::string out;
  detail::write_body(out, t, "");
  return out;
}
/// One value as inline TOML text ("3e-4", "\"WSD\"", "[1, 2]", "{ a = 1 }").
inline std::string write(Value const& v) {
  std::string out;
  detail::write_inline(out, v);
  return out;
}

inline std::ostream& operator<<(std::ostream& os, Table const& t) { return os << write(t); }

}  // namespace toml
KUMIKI_NAMESPACE_END
