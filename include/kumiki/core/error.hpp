// kumiki/core/error.hpp: the exception types and the KUMIKI_CHECK / KUMIKI_REQUIRE / KUMIKI_FAIL macros.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include "kumiki/config.hpp"

KUMIKI_NAMESPACE_BEGIN

/// Every failure kumiki reports is an `Error`. A plain `Error` is a broken internal invariant (a bug
/// in kumiki or in the calling code): `what()` names the failed check and the library's file:line.
/// `where()` is that file:line alone.
class Error : public std::runtime_error {
 public:
  explicit Error(std::string const& message, std::string where = {})
      : std::runtime_error(message), where_(std::move(where)) {}
  std::string const& where() const noexcept { return where_; }

 private:
  std::string where_;
};

/// The user's input is wrong (a file, a recipe key, a flag, a value): `what()` says what and what to
/// do, in the user's terms, without library source locations; `where()` keeps the file:line of the
/// check for `--verbose` output and bug reports.
class InputError : public Error {
 public:
  using Error::Error;
};

namespace detail {

template <class... Args>
inline std::string concat(Args const&... args) {
  std::ostringstream out;
  (out << ... << args);
  return out.str();
}

inline std::string source_location(char const* file, int line) { return std::string(file) + ':' + std::to_string(line); }

/// Internal invariant: "check failed: cond (file:line): details".
template <class... Args>
[[noreturn]] inline void fail(std::string_view what, char const* file, int line, Args const&... details) {
  std::string const where = source_location(file, line);
  std::string msg(what);
  msg += " (" + where + ')';
  if constexpr (sizeof...(Args) > 0) {
    msg += ": ";
    msg += concat(details...);
  }
  throw Error(msg, where);
}

/// Input error: the message alone.
template <class... Args>
[[noreturn]] inline void fail_input(char const* file, int line, Args const&... details) {
  throw InputError(concat(details...), source_location(file, line));
}

}  // namespace detail

KUMIKI_NAMESPACE_END

/// Internal invariant: throws kumiki::Error naming the condition and file:line when `cond` is false;
/// further arguments are streamed into the message: KUMIKI_CHECK(n > 0, "n must be positive, got ", n).
#define KUMIKI_CHECK(cond, ...)                                                                 \
  do {                                                                                          \
    if (!(cond)) [[unlikely]]                                                                   \
      ::kumiki::detail::fail("check failed: " #cond, __FILE__, __LINE__ __VA_OPT__(, ) __VA_ARGS__); \
  } while (0)

/// Input requirement: throws kumiki::InputError with the streamed message alone when `cond` is false.
/// The message says, in the user's terms, which file / key / flag / value is wrong and what to do:
/// KUMIKI_REQUIRE(w > 0, "--data-path: weight ", w, " of '", prefix, "' must be > 0").
#define KUMIKI_REQUIRE(cond, ...)                                                       \
  do {                                                                                  \
    if (!(cond)) [[unlikely]]                                                           \
      ::kumiki::detail::fail_input(__FILE__, __LINE__ __VA_OPT__(, ) __VA_ARGS__);       \
  } while (0)

/// Unconditional input error (kumiki::InputError) with a message in the user's terms.
#define KUMIKI_FAIL(...) ::kumiki::detail::fail_input(__FILE__, __LINE__ __VA_OPT__(, ) __VA_ARGS__)
