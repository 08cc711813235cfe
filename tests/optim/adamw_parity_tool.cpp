// Runs kumiki's AdamW on parameters and gradients written by tests/parity/adamw_torch.py and writes
// the results back for comparison with torch.optim.AdamW.
//
// Usage: adamw_parity_tool DIR. DIR/spec.txt lines:
//   config BETA1 BETA2 EPS WD         (fp32 values)
//   lrs LR_1 ... LR_S                 (one lr per step)
//   group PREFIX LR_MULT WD_MULT      (tensors whose name starts with PREFIX; any number of lines)
//   tensor NAME RANK D0 D1 ...        (layout order)
// DIR/params.bin: the fp32 parameters concatenated in layout order; DIR/grads.bin: S such blocks.
// Writes DIR/out_params.bin, out_m.bin, out_v.bin (fp32) and out_bf16.bin (the bf16 model arena
// produced by the master-weight path, as uint16 bits).
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "kumiki/cpu.hpp"
#include "kumiki/core/arena.hpp"
#include "kumiki/optim/adamw.hpp"

using namespace kumiki;

namespace {
/// The op context of these CPU calls (empty on the CPU).
ops::Ctx<Cpu> ctx;
}  // namespace

namespace {

std::vector<char> read_file(std::string const& path) {
  std::ifstream in(path, std::ios::binary);
  KUMIKI_CHECK(in.good(), "cannot open ", path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Concatenated tensors <-> arena (the arena has padding between tensors; the files do not).
void unpack(char const* src, Arena<Cpu>& a) {
  for (std::size_t i = 0; i < a.layout().size(); ++i) {
    auto const& e = a.layout()[i];
    std::memcpy(a.data() + e.offset, src, e.bytes);
    src += e.bytes;
  }
}
void pack(Arena<Cpu> const& a, std::string const& path) {
  std::ofstream out(path, std::ios::binary);
  for (auto const& e : a.layout().entries()) out.write(reinterpret_cast<char const*>(a.data() + e.offset), static_cast<std::streamsize>(e.bytes));
  KUMIKI_CHECK(out.good(), "cannot write ", path);
}

int run(std::string const& dir) {
  std::ifstream spec(dir + "/spec.txt");
  KUMIKI_CHECK(spec.good(), "cannot open ", dir, "/spec.txt");
  optim::AdamWConfig cfg;
  std::vector<float> lrs;
  std::vector<optim::ParamGroup> groups;
  ArenaLayout layout, model;
  std::string line;
  while (std::getline(spec, line)) {
    std::istringstream ls(line);
    std::string kind;
    ls >> kind;
    if (kind == "config") {
      ls >> cfg.beta1 >> cfg.beta2 >> cfg.eps >> cfg.weight_decay;
    } else if (kind == "lrs") {
      float lr;
      while (ls >> lr) lrs.push_back(lr);
    } else if (kind == "group") {
      std::string prefix;
      float lr_mult, wd_mult;
      ls >> prefix >> lr_mult >> wd_mult;
      groups.push_back({prefix, [prefix](ArenaEntry const& e) { return e.name.starts_with(prefix); }, lr_mult, wd_mult});
    } else if (kind == "tensor") {
      std::string name;
      int rank;
      ls >> name >> rank;
      std::vector<std::int64_t> dims(static_cast<std::size_t>(rank));
      for (auto& d : dims) ls >> d;
      layout.add(name, DType::f32, Shape::from_range(dims.data(), dims.data() + rank));
      model.add(name, DType::bf16, Shape::from_range(dims.data(), dims.data() + rank));
    } else if (!kind.empty()) {
      KUMIKI_FAIL("spec.txt: unknown line '", line, "'");
    }
  }
  std::size_t const bytes = layout.numel() * sizeof(float);
  auto const params = read_file(dir + "/params.bin");
  auto const grads = read_file(dir + "/grads.bin");
  KUMIKI_CHECK(params.size() == bytes && grads.size() == bytes * lrs.size(), "input sizes do not match the spec");

  Arena<Cpu> p(layout), g(layout), bf(model);
  unpack(params.data(), p);
  optim::AdamW<Cpu> opt(layout, cfg, groups);
  for (std::size_t s = 0; s < lrs.size(); ++s) {
    unpack(grads.data() + s * bytes, g);
    opt.step(ctx, p, g, lrs[s], cfg.weight_decay, &bf);  // master-weight path: p is the fp32 master
  }
  pack(p, dir + "/out_params.bin");
  pack(opt.exp_avg(), dir + "/out_m.bin");
  pack(opt.exp_avg_sq(), dir + "/out_v.bin");
  pack(bf, dir + "/out_bf16.bin");
  std::printf("adamw_parity_tool: %zu tensors, %zu elements, %zu steps\n", layout.size(), layout.numel(), lrs.size());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  try {
    return run(argv[1]);
  } catch (std::exception const& e) {
    std::fprintf(stderr, "adamw_parity_tool: %s\n", e.what());
    return 1;
  }
}
