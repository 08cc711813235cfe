// io microbenchmarks: safetensors write (atomic, fsync'd) and open/validate/copy throughput,
// f32 -> bf16 conversion. Files go to the system temp directory; reads hit the page cache.
#include <benchmark/benchmark.h>

#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "kumiki/ops/cpu/fill.hpp"  // philox_fill_*: host fills
#include "kumiki/core/arena.hpp"
#include "kumiki/core/philox.hpp"
#include "kumiki/io/convert.hpp"
#include "kumiki/io/safetensors.hpp"

using namespace kumiki;

namespace {

std::filesystem::path bench_dir() {
  static std::filesystem::path const d = [] {
    auto p = std::filesystem::temp_directory_path() / ("kumiki_bench_io_" + std::to_string(::getpid()));
    std::filesystem::create_directories(p);
    return p;
  }();
  return d;
}

// A LLaMA-like parameter arena: `layers` x (4 C x C + 3 C x F + 2 C) + embeddings, f32.
Arena<Cpu> model_arena(int layers, std::int64_t c, std::int64_t f, std::int64_t v) {
  ArenaLayout l;
  l.add("model.embed_tokens.weight", DType::f32, {v, c});
  for (int i = 0; i < layers; ++i) {
    std::string const p = "model.layers." + std::to_string(i) + ".";
    for (char const* n : {"q", "k", "v", "o"}) l.add(p + "self_attn." + n + "_proj.weight", DType::f32, {c, c});
    l.add(p + "mlp.gate_proj.weight", DType::f32, {f, c});
    l.add(p + "mlp.up_proj.weight", DType::f32, {f, c});
    l.add(p + "mlp.down_proj.weight", DType::f32, {c, f});
    l.add(p + "input_layernorm.weight", DType::f32, {c});
    l.add(p + "post_attention_layernorm.weight", DType::f32, {c});
  }
  l.add("model.norm.weight", DType::f32, {c});
  l.add("lm_head.weight", DType::f32, {v, c});
  Arena<Cpu> a(l);
  for (std::size_t i = 0; i < l.size(); ++i) {
    auto t = a.get<float>(i);
    philox_fill_normal(t.data(), static_cast<std::size_t>(t.numel()), {1, i}, 0.0f, 0.02f);
  }
  return a;
}

// ~64 MiB of f32 in 12 layers (C = 256, F = 688, V = 8192): 111 tensors.
Arena<Cpu> const& arena64() {
  static Arena<Cpu> const a = model_arena(12, 256, 688, 8192);
  return a;
}

void BM_SafetensorsWrite(benchmark::State& state) {
  Arena<Cpu> const& a = arena64();
  io::WriteOptions opt;
  if (state.range(0)) opt.floating_dtype = DType::bf16;
  auto const path = bench_dir() / "w.safetensors";
  std::uint64_t bytes = 0;
  for (auto _ : state) bytes = io::write_safetensors(path, a, {{"format", "pt"}}, opt);
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * bytes));
  state.SetLabel(state.range(0) ? "f32 arena stored as bf16, fsync'd" : "f32, fsync'd");
}
BENCHMARK(BM_SafetensorsWrite)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_SafetensorsOpen(benchmark::State& state) {  // map + parse + validate the header; no data touched
  auto const path = bench_dir() / "open.safetensors";
  io::write_safetensors(path, arena64());
  for (auto _ : state) {
    io::SafetensorsFile f(path);
    benchmark::DoNotOptimize(f.size());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * arena64().layout().size()));
  state.SetLabel("items = tensors");
}
BENCHMARK(BM_SafetensorsOpen)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_SafetensorsLoad(benchmark::State& state) {  // open + copy every tensor into an arena (bf16 file: convert)
  auto const path = bench_dir() / "load.safetensors";
  io::WriteOptions opt;
  if (state.range(0)) opt.floating_dtype = DType::bf16;
  io::write_safetensors(path, arena64(), {}, opt);
  Arena<Cpu> dst(arena64().layout());
  for (auto _ : state) {
    io::SafetensorsFile f(path);
    for (auto const& e : dst.layout().entries()) f.copy_to(e.name, dst.view(e.name));
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * dst.layout().numel() * 4));
  state.SetLabel(state.range(0) ? "bf16 file -> f32 arena (bytes = f32 out)" : "f32 file -> f32 arena");
}
BENCHMARK(BM_SafetensorsLoad)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_ConvertF32ToBf16(benchmark::State& state) {
  auto const n = static_cast<std::int64_t>(state.range(0));
  std::vector<float> src(static_cast<std::size_t>(n));
  philox_fill_normal(src.data(), src.size(), {2, 0}, 0.0f, 1.0f);
  std::vector<bf16> dst(src.size());
  for (auto _ : state) {
    io::convert(AnyView{src.data(), DType::f32, {n}, DeviceKind::cpu}, AnyView{dst.data(), DType::bf16, {n}, DeviceKind::cpu});
    benchmark::DoNotOptimize(dst.data());
  }
  state.SetBytesProcessed(state.iterations() * n * 6);  // 4 read + 2 written
}
BENCHMARK(BM_ConvertF32ToBf16)->Arg(1 << 16)->Arg(1 << 22)->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  std::error_code ec;
  std::filesystem::remove_all(bench_dir(), ec);
  return 0;
}
