// kumiki/core/error.hpp: the one exception type and the KUMIKI_CHECK family of macros.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>

#include "kumiki/config.hpp"

KUMIKI_NAMESPACE_BEGIN

/// Every failure kumiki reports is an `Error`; `what()` names the failed check and its file:line.
class Error : public std::runtime_error {
 public:
  explicit Error(std::string const& message) : std::runtime_error(message) {}
};

namespace detail {

template <class... Args>
inline std::string concat(Args const&... args) {
  std::ostringstream out;
  (out << ... << args);
  return out.str();
}

/// Builds "what failed (file:line): details" for the check macros.
template <class... Args>
[[noreturn]] inline void fail(std::string_view what, char const* file, int line, Args const&... details) {
  std::string msg(what);
  msg += " (";
  msg += file;
  msg += ':';
  msg += std::to_string(line);
  msg += ')';
  if constexpr (sizeof...(Args) > 0) {
    msg += ": ";
    msg += concat(details...);
  }
  throw Error(msg);
}

}  // namespace detail

KUMIKI_NAMESPACE_END

/// Throws kumiki::Error naming the condition and file:line when `cond` is false; further arguments
/// are streamed into the message: KUMIKI_CHECK(n > 0, "n must be positive, got ", n).
#define KUMIKI_CHECK(cond, ...)                                                                 \
  do {                                                                                          \
    if (!(cond)) [[unlikely]]                                                                   \
      ::kumiki::detail::fail("check failed: " #cond, __FILE__, __LINE__ __VA_OPT__(, ) __VA_ARGS__); \
  } while (0)

/// Unconditional failure with a message.
#define KUMIKI_FAIL(...) ::kumiki::detail::fail("error", __FILE__, __LINE__ __VA_OPT__(, ) __VA_ARGS__)
