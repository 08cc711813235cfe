// kumiki/core/toml_reader.hpp: strict reading of one TOML table (toml++) for recipes and schedules:
// every key read is remembered, leftovers are "unknown key" errors, and every error names the full
// key path and its line in the file.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>

#include <toml++/toml.h>

#include "kumiki/config.hpp"
#include "kumiki/core/error.hpp"

KUMIKI_NAMESPACE_BEGIN

/// Reads the keys of one TOML table. `path` is the key path of the table in the document
/// ("stages[1].lr"), used in messages; a key missing from the table leaves the output untouched.
class TomlReader {
 public:
  TomlReader(toml::table const& t, std::string path) : t_(t), path_(std::move(path)) {}

  toml::table const& table() const { return t_; }
  std::string key_path(std::string_view key) const {
    return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
  }
  /// " (line N)" for a node that came from a parsed file, "" otherwise.
  static std::string where(toml::node const& n) {
    auto const& src = n.source();
    if (src.begin.line == 0) return {};
    return " (line " + std::to_string(src.begin.line) + ")";
  }
  [[noreturn]] void fail(std::string_view key, toml::node const* n, std::string const& what) const {
    KUMIKI_FAIL("recipe key '", key_path(key), "'", n ? where(*n) : where(t_), ": ", what);
  }

  toml::node const* find(std::string_view key) {
    used_.insert(std::string(key));
    return t_.get(key);
  }
  bool contains(std::string_view key) const { return t_.contains(key); }

  void read(std::string_view key, double& out) {
    if (auto const* n = find(key)) {
      if (auto const* f = n->as_floating_point()) out = f->get();
      else if (auto const* i = n->as_integer()) out = static_cast<double>(i->get());
      else wrong_type(key, "a number", *n);
    }
  }
  void read(std::string_view key, float& out) {
    double d = out;
    read(key, d);
    out = static_cast<float>(d);
  }
  void read(std::string_view key, std::int64_t& out) {
    if (auto const* n = find(key)) {
      if (auto const* i = n->as_integer()) out = i->get();
      else wrong_type(key, "an integer", *n);
    }
  }
  void read(std::string_view key, bool& out) {
    if (auto const* n = find(key)) {
      if (auto const* b = n->as_boolean()) out = b->get();
      else wrong_type(key, "a boolean", *n);
    }
  }
  void read(std::string_view key, std::string& out) {
    if (auto const* n = find(key)) {
      if (auto const* s = n->as_string()) out = s->get();
      else wrong_type(key, "a string", *n);
    }
  }
  template <class T>
  void read(std::string_view key, std::optional<T>& out) {
    if (!t_.contains(key)) {
      find(key);
      return;
    }
    T v{};
    read(key, v);
    out = v;
  }
  std::string read_string(std::string_view key, bool required) {
    if (required && !t_.contains(key)) fail(key, nullptr, "is missing");
    std::string s;
    read(key, s);
    return s;
  }
  /// Parses a string key through `parse` (returning std::optional<Enum>); `allowed` lists the values.
  template <class Enum, class Parse>
  void read_enum(std::string_view key, Enum& out, Parse parse, char const* allowed) {
    if (!t_.contains(key)) {
      find(key);
      return;
    }
    std::string const s = read_string(key, false);
    auto const v = parse(s);
    if (!v.has_value()) fail(key, t_.get(key), "unknown value \"" + s + "\" (expected " + allowed + ")");
    out = *v;
  }
  toml::table const& sub_table(std::string_view key) {
    auto const* n = find(key);
    if (n == nullptr) fail(key, nullptr, "is missing");
    auto const* t = n->as_table();
    if (t == nullptr) wrong_type(key, "a table", *n);
    return *t;
  }
  toml::array const* array(std::string_view key) {
    auto const* n = find(key);
    if (n == nullptr) return nullptr;
    auto const* a = n->as_array();
    if (a == nullptr) wrong_type(key, "an array", *n);
    return a;
  }
  /// Fails on the first key of the table that no read asked for.
  void finish() const {
    for (auto const& [k, v] : t_)
      if (!used_.contains(std::string(k.str()))) fail(k.str(), &v, "unknown key");
  }
  [[noreturn]] void wrong_type(std::string_view key, char const* expected, toml::node const& n) const {
    fail(key, &n, std::string("must be ") + expected + ", got " + type_name(n));
  }
  static char const* type_name(toml::node const& n) {
    switch (n.type()) {
      case toml::node_type::string: return "a string";
      case toml::node_type::integer: return "an integer";
      case toml::node_type::floating_point: return "a float";
      case toml::node_type::boolean: return "a boolean";
      case toml::node_type::table: return "a table";
      case toml::node_type::array: return "an array";
      default: return "a date or time";
    }
  }

 private:
  toml::table const& t_;
  std::string path_;
  std::set<std::string> used_;
};

KUMIKI_NAMESPACE_END
