// Uses a few kumiki types; prints the version and checks a known Philox answer.
#include <kumiki/kumiki.hpp>

#include <cstdio>

int main() {
  kumiki::ArenaLayout layout;
  layout.add("w", kumiki::DType::f32, {4, 4});
  kumiki::Arena<kumiki::Cpu> arena(layout);
  auto w = arena.get<float>("w");
  kumiki::philox_fill_normal(w.data(), static_cast<std::size_t>(w.numel()), {1, 0}, 0.0f, 0.02f);
  bool const ok = kumiki::Philox4x32::block<10>({0, 0, 0, 0}, {0, 0})[0] == 0x6627e8d5u &&
                  kumiki::bf16(1.0f).bits == 0x3f80 && w(0, 0) != 0.0f;
  std::printf("kumiki %s consumer: %s\n", kumiki::version_string, ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
