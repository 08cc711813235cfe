// kumiki/core/toml_reader.hpp: strict reading of one TOML table for recipes and schedules: unknown
// keys are named (with their line and the closest valid key) before anything is read, renamed keys
// say their new name, and every other error names the full key path and its line.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kumiki/config.hpp"
#include "kumiki/core/error.hpp"
#include "kumiki/core/toml.hpp"

KUMIKI_NAMESPACE_BEGIN

/// A key (or value) that an earlier kumiki read under another name: `new_key` is what to write
/// instead, `note` says more ("Megatron's --lr-decay-iters"). With no one replacement `new_key` is
/// empty and `note` is the whole message.
struct RenamedKey {
  std::string_view old_key;
  std::string_view new_key;
  std::string_view note = {};

  /// "renamed: use 'NEW' (NOTE)", with `quote` around the new name; or NOTE.
  std::string message(char quote = '\'') const {
    if (new_key.empty()) return std::string(note);
    std::string m = "renamed: use " + std::string(1, quote) + std::string(new_key) + std::string(1, quote);
    return note.empty() ? m : m + " (" + std::string(note) + ")";
  }
};

namespace detail {

/// Optimal string alignment distance (Levenshtein with adjacent transpositions): "warmpu" is one
/// edit from "warmup".
inline std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i)
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t const cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[a.size()][b.size()];
}

/// The candidate closest to `word`, when it is close enough to be a likely misspelling.
inline std::optional<std::string_view> closest(std::string_view word, std::vector<std::string_view> const& candidates) {
  std::optional<std::string_view> best;
  std::size_t best_d = std::numeric_limits<std::size_t>::max();
  for (auto c : candidates) {
    std::size_t const d = edit_distance(word, c);
    if (d < best_d) {
      best_d = d;
      best = c;
    }
  }
  if (!best || best_d > std::max<std::size_t>(2, word.size() / 3)) return std::nullopt;
  return best;
}

}  // namespace detail

/// Reads the keys of one TOML table. `path` is the key path of the table in the document
/// ("stages[1].lr"), used in messages; a key missing from the table leaves the output untouched.
/// Messages read "key 'stages[1].lr.lr' (line 20): must be a number, got a string"; a caller adds
/// the file ("recipe 'r.toml': ...").
class TomlReader {
 public:
  /// `t` is the table at `path`; `line` is where it starts (0: the document root, or unknown).
  TomlReader(toml::Table const& t, std::string path, int line = 0) : t_(t), path_(std::move(path)), line_(line) {}
  TomlReader(toml::Value const& v, std::string path) : t_(*v.as_table()), path_(std::move(path)), line_(v.line()) {}

  toml::Table const& table() const { return t_; }
  std::string const& path() const { return path_; }
  std::string key_path(std::string_view key) const {
    return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
  }
  /// The table holds command-line options (`kumiki lr` builds one from its flags): messages name
  /// the key lr_decay_iters as the flag --lr-decay-iters.
  void name_keys_as_flags() { flags_ = true; }
  /// "key 'stages[0].lr.lr'", or "--lr" for a table of command-line options.
  std::string name(std::string_view key) const {
    if (!flags_) return "key '" + key_path(key) + "'";
    std::string f = "--" + std::string(key);
    std::replace(f.begin(), f.end(), '_', '-');
    return f;
  }
  static std::string where(toml::Value const& n) { return n.line() > 0 ? " (line " + std::to_string(n.line()) + ")" : ""; }
  /// "key 'P' (line N): what".
  [[noreturn]] void fail(std::string_view key, toml::Value const* n, std::string const& what) const {
    KUMIKI_FAIL(name(key), n ? where(*n) : std::string(), ": ", what);
  }
  /// As fail, for the key's own value (or no line when the key is absent).
  [[noreturn]] void fail(std::string_view key, std::string const& what) const { fail(key, t_.get(key), what); }
  [[noreturn]] void missing(std::string_view key, std::string const& what = {}) const {
    std::string const in = line_ > 0 ? " (in the table at line " + std::to_string(line_) + ")" : "";
    KUMIKI_FAIL(name(key), " is missing", in, what.empty() ? "" : ": ", what);
  }

  /// Fails on the first key of the table (in document order) that is not in `keys`: a renamed key
  /// says its new name, any other names the closest valid key (or lists them). Call it before any
  /// read, so that a misspelt key is reported as such rather than as a missing one.
  void allow(std::vector<std::string_view> const& keys, std::span<RenamedKey const> renamed = {}) {
    std::set<std::string_view> const allowed(keys.begin(), keys.end());
    for (auto const& [k, v] : t_) {
      if (allowed.contains(k)) continue;
      for (auto const& r : renamed)
        if (r.old_key == k) fail(k, &v, r.message());
      // Old names count as candidates too ("warmpu" is close to "warmup", now lr_warmup_iters).
      std::vector<std::string_view> candidates(keys.begin(), keys.end());
      for (auto const& r : renamed)
        if (!r.new_key.empty()) candidates.push_back(r.old_key);
      if (auto c = detail::closest(k, candidates)) {
        for (auto const& r : renamed)
          if (r.old_key == *c) c = r.new_key;
        KUMIKI_FAIL("unknown key '", key_path(k), "'", where(v), ": did you mean '", *c, "'?");
      }
      std::string list;
      for (auto c : keys) list += (list.empty() ? "" : ", ") + std::string(c);
      KUMIKI_FAIL("unknown key '", key_path(k), "'", where(v), " (valid keys here: ", list, ")");
    }
  }
  /// Fails when one of `keys` is present: `why` says why it does not apply ("lr_decay_style 'constant' has no min_lr").
  void refuse(std::vector<std::string_view> const& keys, std::string const& why) const {
    for (auto k : keys)
      if (auto const* n = t_.get(k)) fail(k, n, why);
  }

  toml::Value const* find(std::string_view key) const { return t_.get(key); }
  bool contains(std::string_view key) const { return t_.contains(key); }

  void read(std::string_view key, double& out) const {
    if (auto const* n = find(key)) {
      if (auto const* f = n->as_float()) out = *f;
      else if (auto const* i = n->as_integer()) out = static_cast<double>(*i);
      else wrong_type(key, "a number", *n);
    }
  }
  void read(std::string_view key, std::int64_t& out) const {
    if (auto const* n = find(key)) {
      if (auto const* i = n->as_integer()) out = *i;
      else wrong_type(key, "an integer", *n);
    }
  }
  void read(std::string_view key, bool& out) const {
    if (auto const* n = find(key)) {
      if (auto const* b = n->as_bool()) out = *b;
      else wrong_type(key, "a boolean", *n);
    }
  }
  void read(std::string_view key, std::string& out) const {
    if (auto const* n = find(key)) {
      if (auto const* s = n->as_string()) out = *s;
      else wrong_type(key, "a string", *n);
    }
  }
  template <class T>
  void read(std::string_view key, std::optional<T>& out) const {
    if (!contains(key)) return;
    T v{};
    read(key, v);
    out = v;
  }
  /// A number that must be finite (a learning rate, a factor): "inf" and "nan" are refused.
  void read_finite(std::string_view key, double& out) const {
    read(key, out);
    if (contains(key) && !std::isfinite(out)) fail(key, "must be a finite number, got " + toml::write(*find(key)));
  }
  /// A required key: reported as missing before its type is checked.
  template <class T>
  T require(std::string_view key, std::string const& what = {}) const {
    if (!contains(key)) missing(key, what);
    T v{};
    read(key, v);
    return v;
  }
  std::string read_string(std::string_view key, bool required) const {
    if (required && !contains(key)) missing(key);
    std::string s;
    read(key, s);
    return s;
  }
  /// Parses a string key through `parse` (returning std::optional<Enum>); `allowed` lists the values.
  /// `renamed` maps old spellings of values to what to write instead.
  template <class Enum, class Parse>
  void read_enum(std::string_view key, Enum& out, Parse parse, char const* allowed,
                 std::span<RenamedKey const> renamed = {}) const {
    if (!contains(key)) return;
    std::string const s = read_string(key, false);
    auto const v = parse(s);
    if (!v.has_value()) {
      for (auto const& r : renamed)
        if (r.old_key == s) fail(key, "value \"" + s + "\" " + (r.new_key.empty() ? "" : "was ") + r.message('"'));
      fail(key, "unknown value \"" + s + "\" (expected " + allowed + ")");
    }
    out = *v;
  }
  /// A sub-table (nullptr when absent).
  toml::Value const* table_value(std::string_view key) const {
    auto const* n = find(key);
    if (n != nullptr && !n->is_table()) wrong_type(key, "a table", *n);
    return n;
  }
  toml::Array const* array(std::string_view key) const {
    auto const* n = find(key);
    if (n == nullptr) return nullptr;
    auto const* a = n->as_array();
    if (a == nullptr) wrong_type(key, "an array", *n);
    return a;
  }
  [[noreturn]] void wrong_type(std::string_view key, char const* expected, toml::Value const& n) const {
    fail(key, &n, std::string("must be ") + expected + ", got " + std::string(toml::type_name(n.type())));
  }
  static char const* type_name(toml::Value const& n) { return toml::type_name(n.type()).data(); }

 private:
  toml::Table const& t_;
  std::string path_;
  int line_ = 0;
  bool flags_ = false;
};

KUMIKI_NAMESPACE_END
