// kumiki/core/json.hpp: reading JSON that users hand to kumiki (checkpoint manifests and state, model
// configs, shard indexes) strictly: every failure is a kumiki::InputError, never a parser exception.
#pragma once

#include <charconv>
#include <cstdint>
#include <limits>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <nlohmann/json.hpp>

#include "kumiki/config.hpp"
#include "kumiki/core/error.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace detail {

/// No file kumiki reads nests deeper than a few levels; the limit keeps recursive code (dump, copies,
/// comparisons) away from a hostile file's million-deep array.
inline constexpr int json_max_depth = 64;

/// A JSON value as an error message shows it: its type, with its text when that is short (a megabyte
/// array is not pasted into a message). ASCII only, so it is safe to print and to embed anywhere.
inline std::string json_describe(nlohmann::json const& v) {
  using T = nlohmann::json::value_t;
  switch (v.type()) {
    case T::object: return v.empty() ? "an empty object" : "an object";
    case T::array: return v.empty() ? "an empty array" : "an array";
    case T::null: return "null";
    case T::boolean: return v.get<bool>() ? "true" : "false";
    case T::string: {
      std::string s = v.dump(-1, ' ', /*ensure_ascii=*/true);
      if (s.size() > 48) s = s.substr(0, 44) + "...\"";
      return "the string " + s;
    }
    case T::number_integer:
    case T::number_unsigned:
    case T::number_float: return "the number " + v.dump();
    default: return "an unexpected value";
  }
}

/// A name taken from a file (a tensor, a file name), quoted and escaped for an error message: control
/// characters or a terminal escape in a hostile file are shown, not sent to the terminal.
inline std::string json_quote(std::string_view s) {
  std::string out = nlohmann::json(std::string(s))
                        .dump(-1, ' ', /*ensure_ascii=*/true, nlohmann::json::error_handler_t::replace);
  if (out.size() > 80) out = out.substr(0, 76) + "...\"";
  return out;
}

/// Parses the whole of `text` as one JSON document. Throws kumiki::InputError naming `what` (e.g.
/// "checkpoint manifest '/r/step_000000010/manifest.json'") when the text is not JSON, nests deeper
/// than json_max_depth, or repeats a key within an object (parsers disagree on which duplicate wins,
/// so a file that relies on one is ambiguous).
inline nlohmann::json parse_json_strict(std::string_view text, std::string const& what) {
  std::vector<std::set<std::string>> keys;  // the keys seen in each open object
  auto check = [&](int depth, nlohmann::json::parse_event_t ev, nlohmann::json& parsed) {
    using E = nlohmann::json::parse_event_t;
    if ((ev == E::object_start || ev == E::array_start) && depth >= json_max_depth)
      KUMIKI_FAIL(what, " nests deeper than ", json_max_depth, " levels");
    if (ev == E::object_start) keys.emplace_back();
    if (ev == E::object_end && !keys.empty()) keys.pop_back();
    if (ev == E::key && !keys.empty()) {
      std::string const& k = parsed.get_ref<std::string const&>();
      if (!keys.back().insert(k).second) KUMIKI_FAIL(what, " repeats the key ", json_quote(k), " in one object");
    }
    return true;
  };
  try {
    return nlohmann::json::parse(text.begin(), text.end(), check);
  } catch (nlohmann::json::exception const& e) {
    KUMIKI_FAIL(what, " is not valid JSON: ", e.what());
  }
}

/// Parses a whole string as a decimal int64 (optional '-', digits, nothing else): no whitespace, no
/// '+', no trailing text, in range. Throws kumiki::InputError naming `what` otherwise.
inline std::int64_t parse_int64_strict(std::string_view text, std::string const& what) {
  std::int64_t v = 0;
  auto const [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec == std::errc::result_out_of_range)
    KUMIKI_FAIL(what, " is ", json_quote(text), ", outside the range of a 64-bit integer");
  if (ec != std::errc() || end != text.data() + text.size())
    KUMIKI_FAIL(what, " is ", json_quote(text), ", not a decimal integer");
  return v;
}

}  // namespace detail
KUMIKI_NAMESPACE_END
