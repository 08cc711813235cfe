// tests/core/isa: two translation units of one program built for different instruction sets
// (-march=x86-64 and -march=x86-64-v2) each report the name of their `kumiki::Cpu` tag and the
// address of their instantiation of the CPU GEMM. Both must differ: otherwise the linker keeps one
// unit's vectorized Eigen code for both and the other unit's kernel silently changes meaning.
#pragma once

#include <string>

struct IsaProbe {
  std::string isa;       // KUMIKI_CPU_ISA of the unit
  std::string cpu_type;  // typeid(kumiki::Cpu).name()
  void const* gemm;      // &kumiki::ops::cpu::gemm<float> as that unit sees it
  void const* linear;    // &kumiki::ops::Linear<kumiki::Cpu>::forward<float>
};

IsaProbe probe_x86_64();
IsaProbe probe_x86_64_v2();

#define KUMIKI_ISA_STR2(x) #x
#define KUMIKI_ISA_STR(x) KUMIKI_ISA_STR2(x)
#define KUMIKI_ISA_PROBE_BODY                                                                              \
  return IsaProbe{KUMIKI_ISA_STR(KUMIKI_CPU_ISA), typeid(kumiki::Cpu).name(),                              \
                  reinterpret_cast<void const*>(&kumiki::ops::cpu::gemm<float>),                           \
                  reinterpret_cast<void const*>(&kumiki::ops::Linear<kumiki::Cpu>::forward<float>)}
