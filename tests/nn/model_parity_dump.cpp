// Writes a small random GQA model's weights, inputs, logits, loss and every parameter gradient
// (fp32) to a folder, for tests/parity/model_reference.py to recompute in PyTorch.
// Usage: model_parity_dump <out_dir>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kumiki/cpu.hpp"
#include "kumiki/nn/transformer.hpp"

using namespace kumiki;

namespace {
constexpr models::TransformerConfig cfg{
    .vocab_size = 100, .make_vocab_divisible_by = 64, .hidden = 48, .ffn_hidden = 80, .num_layers = 2,
    .num_heads = 6, .num_query_groups = 2, .rope_base = 10000.0, .rms_eps = 1e-5, .max_seq_len = 40,
    .untie_embeddings = true, .z_loss = 1e-3, .init_std = 0.2};

template <class T>
void write(std::filesystem::path const& p, T const* data, std::size_t n) {
  std::ofstream f(p, std::ios::binary);
  f.write(reinterpret_cast<char const*>(data), static_cast<std::streamsize>(n * sizeof(T)));
  if (!f) throw std::runtime_error("cannot write " + p.string());
}

// Concatenates every tensor of the arena (layout order, no padding) into one float32 file.
void write_arena(std::filesystem::path const& p, Arena<Cpu> const& a) {
  std::vector<float> all;
  for (std::size_t i = 0; i < a.layout().size(); ++i) {
    auto v = a.get<float>(i);
    all.insert(all.end(), v.begin(), v.end());
  }
  write(p, all.data(), all.size());
}
}  // namespace

int main(int argc, char** argv) try {
  if (argc != 2) {
    std::fprintf(stderr, "usage: model_parity_dump <out_dir>\n");
    return 2;
  }
  std::filesystem::path const dir = argv[1];
  std::filesystem::create_directories(dir);
  nn::Transformer<cfg> m;
  m.init(2024);
  // Norm weights away from 1 so the test sees them.
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.0f, 0.2f);
  for (std::size_t i = 0; i < m.params().layout().size(); ++i)
    if (m.params().layout()[i].shape.rank() == 1)
      for (float& w : m.params().get<float>(i)) w = 1.0f + nd(rng);
  write_arena(dir / "params.bin", m.params());

  nlohmann::json meta;
  meta["config"] = {{"vocab_size", cfg.vocab_size}, {"padded_vocab", cfg.padded_vocab()}, {"hidden", cfg.hidden},
                    {"ffn_hidden", cfg.ffn_hidden}, {"num_layers", cfg.num_layers}, {"num_heads", cfg.num_heads},
                    {"num_query_groups", cfg.num_query_groups}, {"rope_base", cfg.rope_base},
                    {"rms_eps", cfg.rms_eps}, {"z_loss", cfg.z_loss}};
  for (auto const& e : m.params().layout().entries()) {
    std::vector<std::int64_t> shape;
    for (int d = 0; d < e.shape.rank(); ++d) shape.push_back(e.shape[d]);
    meta["params"].push_back({{"name", e.name}, {"shape", shape}});
  }
  std::int64_t const B = 2, T = 40;
  std::uniform_int_distribution<std::int32_t> tok(0, static_cast<std::int32_t>(cfg.vocab_size) - 1);
  for (int c = 0; c < 2; ++c) {
    bool const reset = c == 1;
    std::vector<std::int32_t> tokens(B * T), targets(B * T);
    for (auto& t : tokens) t = tok(rng);
    for (auto& t : targets) t = tok(rng);
    targets[3] = -100;
    targets[B * T - 1] = -100;
    nn::StepOptions opt;
    opt.loss_chunk = 32;  // several LM-head chunks
    if (reset) {
      opt.reset_attention_mask = true;
      opt.eod_token = 7;
      for (std::int64_t p : {5, 21, 22, 40 + 30}) tokens[p] = 7;
    }
    std::vector<float> logits(B * T * cfg.padded_vocab());
    m.zero_grad();
    auto const fw = m.forward(tokens.data(), targets.data(), B, T, opt, nullptr, logits.data());
    auto const r = m.forward_backward(tokens.data(), targets.data(), B, T, opt);
    std::string const name = reset ? "reset" : "causal";
    write(dir / (name + ".tokens.bin"), tokens.data(), tokens.size());
    write(dir / (name + ".targets.bin"), targets.data(), targets.size());
    write(dir / (name + ".logits.bin"), logits.data(), logits.size());
    write_arena(dir / (name + ".grads.bin"), m.grads());
    meta["cases"].push_back({{"name", name}, {"batch", B}, {"seq", T}, {"loss", r.loss}, {"forward_loss", fw.loss},
                             {"reset_attention_mask", reset}, {"eod_token", opt.eod_token}, {"ignore_index", -100}});
  }
  std::ofstream(dir / "meta.json") << meta.dump(1);
  std::printf("wrote %s\n", dir.c_str());
  return 0;
} catch (std::exception const& e) {
  std::fprintf(stderr, "model_parity_dump: %s\n", e.what());
  return 1;
}
