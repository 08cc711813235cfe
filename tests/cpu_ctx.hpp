// tests/cpu_ctx.hpp: the op context of the tests' CPU calls (empty on the CPU), one object shared by
// every test file of an executable (their sources are compiled as one translation unit).
#pragma once

#include "kumiki/core/device.hpp"
#include "kumiki/ops/context.hpp"

namespace kumiki_test {
inline kumiki::ops::Ctx<kumiki::Cpu> ctx;
}  // namespace kumiki_test
