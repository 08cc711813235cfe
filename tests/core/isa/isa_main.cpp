// Checks that CPU code built for two instruction sets in one program stays two sets of symbols.
#include <cstdio>

#include "isa_probe.hpp"

int main() {
  IsaProbe const a = probe_x86_64(), b = probe_x86_64_v2();
  std::printf("x86-64:    isa %s, Cpu = %s, gemm<float> at %p, Linear<Cpu>::forward<float> at %p\n", a.isa.c_str(),
              a.cpu_type.c_str(), a.gemm, a.linear);
  std::printf("x86-64-v2: isa %s, Cpu = %s, gemm<float> at %p, Linear<Cpu>::forward<float> at %p\n", b.isa.c_str(),
              b.cpu_type.c_str(), b.gemm, b.linear);
  bool const ok = a.isa != b.isa && a.cpu_type != b.cpu_type && a.gemm != b.gemm && a.linear != b.linear;
  std::printf("%s\n", ok ? "ok: each unit keeps its own CPU kernels"
                         : "FAIL: the two units share CPU kernel symbols; the linker kept one for both");
  return ok ? 0 : 1;
}
