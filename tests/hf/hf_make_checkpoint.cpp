// Test helper: writes a kumiki checkpoint of the tiny_test (or tiny_moe_test) model with random
// (seeded) weights.
// Usage: hf_make_checkpoint <checkpoint root> <seed> [scale [config]]   (prints the checkpoint directory)
// `scale` multiplies every matrix (default 1), so parity runs see sharp, far-from-uniform logits and,
// for an MoE model, decisive routing; `config` is tiny_test (default) or tiny_moe_test.
//        hf_make_checkpoint dataset <prefix> <seed>          (a small uint16 dataset, ids < 50)
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include "kumiki/cpu.hpp"
#include "kumiki/core/philox.hpp"
#include "kumiki/data/indexed_dataset.hpp"
#include "kumiki/models/configs.hpp"
#include "kumiki/nn/transformer.hpp"
#include "kumiki/optim/adamw.hpp"
#include "kumiki/train/checkpoint.hpp"

namespace {

template <auto Cfg>
void make_checkpoint(char const* root, std::uint64_t seed, float scale, std::string const& name) {
  using namespace kumiki;
  nn::Transformer<Cfg, Cpu, float> m;
  m.init(seed);
  for (std::size_t i = 0; i < m.params().layout().size(); ++i) {
    auto const& e = m.params().layout()[i];
    if (e.shape.rank() != 2) continue;
    float* p = m.params().template get<float>(i).data();
    for (std::size_t k = 0; k < e.numel(); ++k) p[k] *= scale;
  }
  optim::AdamW<Cpu> opt(m.params().layout());
  train::TrainState st;
  st.step = 3;
  auto const dir = train::save_checkpoint(root, m.params(), opt, st,
                                          "model = \"" + name + "\"\nseq_len = 16\nglobal_batch = 2\nmicro_batch = 1\n");
  std::printf("%s\n", dir.string().c_str());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 4 && std::string(argv[1]) == "dataset") {
    try {
      kumiki::data::IndexedDatasetWriter w(argv[2], kumiki::data::IndexDType::uint16);
      kumiki::PhiloxStream const rng{std::strtoull(argv[3], nullptr, 10), 0};
      std::uint64_t k = 0;
      for (int doc = 0; doc < 40; ++doc) {
        std::vector<std::uint16_t> ids(20 + doc % 7);
        for (auto& v : ids) v = static_cast<std::uint16_t>(rng.u32(k++) % 50);
        w.add_document(ids);
      }
      w.finalize();
    } catch (std::exception const& e) {
      std::fprintf(stderr, "error: %s\n", e.what());
      return 1;
    }
    return 0;
  }
  if (argc < 3 || argc > 5) {
    std::fprintf(stderr, "usage: %s <checkpoint root> <seed> [scale [tiny_test|tiny_moe_test]]\n", argv[0]);
    return 2;
  }
  try {
    std::uint64_t const seed = std::strtoull(argv[2], nullptr, 10);
    float const scale = argc >= 4 ? std::strtof(argv[3], nullptr) : 1.0f;
    std::string const name = argc == 5 ? argv[4] : "tiny_test";
    if (name == "tiny_test") {
      make_checkpoint<kumiki::models::tiny_test>(argv[1], seed, scale, name);
    } else if (name == "tiny_moe_test") {
      make_checkpoint<kumiki::models::tiny_moe_test>(argv[1], seed, scale, name);
    } else {
      std::fprintf(stderr, "error: config '%s' is not tiny_test or tiny_moe_test\n", name.c_str());
      return 2;
    }
  } catch (std::exception const& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
