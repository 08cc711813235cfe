// Built with -march=x86-64-v2 (tests/core/CMakeLists.txt); see isa_probe.hpp.
#include <typeinfo>

#include "isa_probe.hpp"
#include "kumiki/ops/cpu/gemm.hpp"
#include "kumiki/ops/cpu/linear.hpp"

IsaProbe probe_x86_64_v2() { KUMIKI_ISA_PROBE_BODY; }
