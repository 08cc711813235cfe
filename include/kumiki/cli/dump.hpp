// kumiki/cli/dump.hpp: `kumiki dump --model DIR|CKPT --tokens FILE --out DUMP.safetensors`: one forward and
// backward on the given tokens, writing loss, logits and every parameter gradient (`grad.<Hugging Face
// name>`) for parity debugging against another implementation. For an MoE model also the summed router losses
// `moe_aux_loss` and `moe_z_loss`; `loss` stays the LM loss and the gradients are of the objective loss +
// moe_aux_loss + moe_z_loss.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "kumiki/cli/app.hpp"
#include "kumiki/cpu.hpp"
#include "kumiki/data/batch.hpp"
#include "kumiki/io/hf.hpp"
#include "kumiki/train/hf_interop.hpp"
#include "kumiki/io/safetensors.hpp"
#include "kumiki/models/configs.hpp"
#include "kumiki/nn/transformer.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace cli {
namespace detail::cmd_dump {

namespace fs = std::filesystem;

struct Tokens {
  std::int64_t rows = 0, cols = 0;  // (B, T + 1)
  std::vector<std::int32_t> ids;
};

inline std::vector<char> read_all(fs::path const& p) {
  std::ifstream in(p, std::ios::binary);
  KUMIKI_REQUIRE(in.good(), "cannot read tokens file '", p.string(), "'");
  return std::vector<char>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

/// A 2-D C-order .npy of little-endian int32 or int64 (version 1, 2 or 3 header).
inline Tokens read_npy(fs::path const& p) {
  std::vector<char> const b = read_all(p);
  std::string const src = p.string();
  KUMIKI_REQUIRE(b.size() >= 10 && std::memcmp(b.data(), "\x93NUMPY", 6) == 0, "'", src, "' is not a .npy file");
  std::uint8_t const major = static_cast<std::uint8_t>(b[6]);
  std::size_t hlen = 0, hstart = 0;
  if (major == 1) {
    hlen = static_cast<std::uint8_t>(b[8]) | (static_cast<std::size_t>(static_cast<std::uint8_t>(b[9])) << 8);
    hstart = 10;
  } else {
    KUMIKI_REQUIRE(b.size() >= 12 && (major == 2 || major == 3), "'", src, "': unsupported .npy version ", int(major));
    std::uint32_t n = 0;
    std::memcpy(&n, b.data() + 8, 4);
    hlen = n;
    hstart = 12;
  }
  KUMIKI_REQUIRE(hstart + hlen <= b.size(), "'", src, "': .npy header runs past the end of the file");
  std::string const h(b.data() + hstart, hlen);
  auto field = [&](std::string const& key) {
    auto const k = h.find("'" + key + "'");
    KUMIKI_REQUIRE(k != std::string::npos, "'", src, "': .npy header has no '", key, "'");
    auto const colon = h.find(':', k);
    KUMIKI_REQUIRE(colon != std::string::npos, "'", src, "': malformed .npy header");
    return h.substr(colon + 1);
  };
  std::string const descr = field("descr");
  std::size_t width = 0;
  if (descr.find("'<i4'") != std::string::npos || descr.find("'|i4'") != std::string::npos) width = 4;
  else if (descr.find("'<i8'") != std::string::npos) width = 8;
  KUMIKI_REQUIRE(width != 0, "'", src, "': tokens must be little-endian int32 or int64, got ", descr.substr(0, descr.find(',')));
  KUMIKI_REQUIRE(field("fortran_order").find("False") < field("fortran_order").find(','), "'", src,
               "': Fortran-order arrays are not supported");
  std::string const shape = field("shape");
  Tokens t;
  long long r = 0, c = 0;
  KUMIKI_REQUIRE(std::sscanf(shape.c_str(), " (%lld, %lld)", &r, &c) == 2 && r > 0 && c > 0, "'", src,
               "': tokens must be a 2-D array [B, T+1], shape is ", shape.substr(0, shape.find(')') + 1));
  t.rows = r, t.cols = c;
  std::size_t const n = static_cast<std::size_t>(r * c);
  std::size_t const data = hstart + hlen;
  KUMIKI_REQUIRE(b.size() - data == n * width, "'", src, "': data holds ", b.size() - data, " bytes, shape needs ", n * width);
  t.ids.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    std::int64_t v = 0;
    if (width == 4) {
      std::int32_t x = 0;
      std::memcpy(&x, b.data() + data + 4 * i, 4);
      v = x;
    } else {
      std::memcpy(&v, b.data() + data + 8 * i, 8);
    }
    KUMIKI_REQUIRE(v >= 0 && v <= INT32_MAX, "'", src, "': token ", v, " at index ", i, " is not a valid id");
    t.ids[i] = static_cast<std::int32_t>(v);
  }
  return t;
}

inline Tokens read_raw(fs::path const& p, std::int64_t batch) {
  KUMIKI_REQUIRE(batch > 0, "raw tokens file '", p.string(), "' needs --batch B (rows of [B, T+1] int32)");
  std::vector<char> const b = read_all(p);
  KUMIKI_REQUIRE(b.size() % 4 == 0, "raw tokens file '", p.string(), "' is ", b.size(), " bytes, not a multiple of 4 (int32)");
  std::int64_t const n = static_cast<std::int64_t>(b.size() / 4);
  KUMIKI_REQUIRE(n > 0 && n % batch == 0, "raw tokens file '", p.string(), "' holds ", n, " int32, not a multiple of --batch ", batch);
  Tokens t;
  t.rows = batch, t.cols = n / batch;
  t.ids.resize(static_cast<std::size_t>(n));
  std::memcpy(t.ids.data(), b.data(), b.size());
  return t;
}

struct DumpArgs {
  std::string model, tokens, out;
  std::int64_t batch = 0;
};

template <class Configs>
void dump(DumpArgs const& a) {
  using namespace kumiki;
  Tokens const tk = fs::path(a.tokens).extension() == ".npy" ? read_npy(a.tokens) : read_raw(a.tokens, a.batch);
  KUMIKI_REQUIRE(a.batch <= 0 || a.batch == tk.rows, "--batch ", a.batch, " disagrees with the tokens' ", tk.rows, " rows");
  KUMIKI_REQUIRE(tk.cols >= 2, "tokens need at least 2 columns ([B, T+1]), got ", tk.cols);
  std::int64_t const B = tk.rows, T = tk.cols - 1;
  std::vector<std::int32_t> in(static_cast<std::size_t>(B * T)), tgt(static_cast<std::size_t>(B * T));
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t t = 0; t < T; ++t) {
      in[b * T + t] = tk.ids[b * tk.cols + t];
      tgt[b * T + t] = tk.ids[b * tk.cols + t + 1];
    }

  fs::path const mp = a.model;
  bool const is_hf = fs::is_regular_file(mp / "config.json");
  train::CheckpointModel const weights = train::read_model_weights<Configs>(mp);
  std::string const& name = weights.config_name;
  Configs::dispatch(name, [&](auto tag) {
    constexpr auto Cfg = decltype(tag)::config;
    data::check_token_ids(tk.ids, Cfg.vocab_size, "tokens file '" + a.tokens + "'");
    nn::Transformer<Cfg, Cpu, float> model;
    copy(model.params(), weights.params);
    std::int64_t const Vp = Cfg.padded_vocab();
    std::vector<float> logits(static_cast<std::size_t>(B * T * Vp));
    nn::StepOptions opt;
    // The fused LM head never holds all logits during training, so they come from a forward pass;
    // the loss written is the one of the forward + backward the gradients belong to.
    model.forward(in.data(), tgt.data(), B, T, opt, nullptr, logits.data());
    model.zero_grad();
    nn::LossResult const res = model.forward_backward(in.data(), tgt.data(), B, T, opt);
    double const loss = res.loss;
    // Scalars as f32 [1] tensors, full precision in the metadata.
    std::vector<std::pair<std::string, double>> scalars{{"loss", loss}};
    if constexpr (Cfg.is_moe()) scalars.insert(scalars.end(), {{"moe_aux_loss", res.moe_aux}, {"moe_z_loss", res.moe_z}});
    std::vector<float> scalars_f;
    for (auto const& s : scalars) scalars_f.push_back(static_cast<float>(s.second));
    std::vector<io::NamedTensor> out;
    io::Metadata meta{{"model", name}, {"source", mp.string()}, {"batch", std::to_string(B)}, {"seq", std::to_string(T)},
                      {"vocab_size", std::to_string(Cfg.vocab_size)}, {"padded_vocab_size", std::to_string(Vp)}};
    for (std::size_t i = 0; i < scalars.size(); ++i) {
      out.push_back({scalars[i].first, AnyView{&scalars_f[i], DType::f32, Shape{1}, DeviceKind::cpu}});
      char buf[40];
      std::snprintf(buf, sizeof buf, "%.17g", scalars[i].second);
      meta[scalars[i].first] = buf;
    }
    out.push_back({"logits", AnyView{logits.data(), DType::f32, Shape{B, T, Vp}, DeviceKind::cpu}});
    for (std::size_t i = 0; i < model.grads().layout().size(); ++i)
      out.push_back({"grad." + model.grads().layout()[i].name, model.grads().view(i)});
    io::write_safetensors(a.out, out, meta);
    std::printf("model %s (%s), tokens [%lld, %lld]: loss %.9g", name.c_str(), is_hf ? "Hugging Face" : "checkpoint",
                static_cast<long long>(B), static_cast<long long>(T + 1), loss);
    if constexpr (Cfg.is_moe()) std::printf(", moe_aux_loss %.9g, moe_z_loss %.9g", res.moe_aux, res.moe_z);
    std::printf(" -> %s\n", a.out.c_str());
  });
}

}  // namespace detail::cmd_dump

template <class Configs>
void add_dump(CLI::App& app) {
  using namespace detail::cmd_dump;
  auto a = std::make_shared<DumpArgs>();
  auto* cmd = app.add_subcommand("dump", "One forward + backward on given tokens; write loss, logits and gradients "
                                          "(MoE: also moe_aux_loss, moe_z_loss)");
  cmd->add_option("--model", a->model, "Hugging Face directory (config.json) or kumiki checkpoint")->required();
  cmd->add_option("--tokens", a->tokens, "int32 [B, T+1]: .npy, or raw little-endian (then --batch)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--batch", a->batch, "rows B of a raw tokens file");
  cmd->add_option("--out", a->out, "output safetensors: loss, logits [B,T,V_pad], grad.<name>")->required();
  cmd->callback([a] { dump<Configs>(*a); });
}

}  // namespace cli
KUMIKI_NAMESPACE_END
