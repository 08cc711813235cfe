// kumiki/train/soup.hpp: model souping, the weighted average of the parameters of several
// checkpoints of one model (OLMo 2's and LLM-jp's final mid-training step: the runs of three seeds
// averaged), streamed tensor by tensor so that memory stays near one checkpoint.
//
// Arithmetic, fixed so that a soup can be recomputed bit for bit (tests/train/soup_test.py does):
//   weights  w_i = given_i / sum(given), in double (uniform: 1 / n);
//   f32      out = f32( sum_i w_i * x_i ), the sum in double in checkpoint order, one rounding (RNE);
//   bf16     as LLM-jp souped its bf16 models: each input first rounded to bf16 (RNE, as a bf16 export
//            holds it), the sum as above in double, then rounded to f32 and to bf16 (both RNE); the
//            checkpoint keeps that bf16 value in its fp32 weights (exact).
// Products and sums are separate roundings: the file is compiled without FMA contraction.
#pragma once

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "kumiki/config.hpp"
#include "kumiki/core/arena.hpp"
#include "kumiki/core/bf16.hpp"
#include "kumiki/core/error.hpp"
#include "kumiki/io/hf.hpp"
#include "kumiki/io/safetensors.hpp"
#include "kumiki/train/checkpoint.hpp"
#include "kumiki/train/checkpoint_dir.hpp"
#include "kumiki/train/hf_interop.hpp"

// The sums must not be contracted into FMAs (the f32 soup is one rounding of the exact double sums).
// nvcc's front end does not know this pragma; the host half of a .cu file is compiled for baseline
// x86-64 (kumiki passes -march only to C++ files), which has no FMA to contract into.
#if !defined(__CUDACC__)
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
#endif

KUMIKI_NAMESPACE_BEGIN
namespace train {

enum class SoupPrecision : std::uint8_t { f32, bf16 };

/// The souped model: its configuration, the averaged fp32 weights, and what made it.
struct Soup {
  std::string config_name;
  models::TransformerConfig config;           ///< the configuration of the program's list it names
  Arena<Cpu> params;
  std::vector<std::filesystem::path> inputs;  ///< the checkpoint directories, resolved
  std::vector<double> weights;                ///< normalized, summing to 1
  std::string recipe_text;                    ///< the first input's recipe (names the model)
};

/// Normalized soup weights for `n` checkpoints: uniform when `given` is empty, else given / sum.
inline std::vector<double> soup_weights(std::size_t n, std::vector<double> const& given) {
  KUMIKI_REQUIRE(n >= 2, "a soup needs at least two checkpoints, got ", n);
  if (given.empty()) return std::vector<double>(n, 1.0 / static_cast<double>(n));
  KUMIKI_REQUIRE(given.size() == n, "--weights gives ", given.size(), " weights for ", n, " checkpoints; give one each");
  double sum = 0;
  for (std::size_t i = 0; i < n; ++i) {
    KUMIKI_REQUIRE(std::isfinite(given[i]) && given[i] >= 0, "--weights: weight ", i + 1, " is ", given[i],
                   "; weights must be finite and >= 0");
    sum += given[i];
  }
  KUMIKI_REQUIRE(sum > 0, "--weights are all 0; at least one must be positive");
  std::vector<double> w(n);
  for (std::size_t i = 0; i < n; ++i) w[i] = given[i] / sum;
  return w;
}

namespace detail {
/// Averages tensor `name` (f32, `shape`) of `files` with weights `w` into `out`, with the arithmetic
/// of the file comment; `x` and `acc` are scratch.
inline void average_tensor(std::vector<io::SafetensorsFile> const& files, std::string const& name, Shape const& shape,
                           std::vector<double> const& w, SoupPrecision precision, float* out, std::vector<float>& x,
                           std::vector<double>& acc) {
  auto const n = static_cast<std::size_t>(shape.numel());
  x.resize(n);
  acc.assign(n, 0.0);
  for (std::size_t k = 0; k < files.size(); ++k) {
    files[k].copy_to(name, AnyView{x.data(), DType::f32, shape, DeviceKind::cpu});
    if (precision == SoupPrecision::bf16)
      for (std::size_t i = 0; i < n; ++i) acc[i] += w[k] * static_cast<double>(static_cast<float>(bf16(x[i])));
    else
      for (std::size_t i = 0; i < n; ++i) acc[i] += w[k] * static_cast<double>(x[i]);
  }
  for (std::size_t i = 0; i < n; ++i) {
    float const f = static_cast<float>(acc[i]);
    out[i] = precision == SoupPrecision::bf16 ? static_cast<float>(bf16(f)) : f;
  }
}
}  // namespace detail

/// Averages the weights of `checkpoints` (checkpoint directories, directories holding step_*
/// checkpoints, or run directories: the newest valid checkpoint is taken). All must be checkpoints of
/// one model configuration with the same tensors; the first difference is an InputError naming both
/// checkpoints; the model must be a configuration of `Configs`. `progress(done, total)` is called after
/// each tensor.
template <class Configs = models::BuiltinConfigs, class Progress>
Soup soup_checkpoints(std::vector<std::filesystem::path> const& checkpoints, std::vector<double> const& given_weights,
                      SoupPrecision precision, Progress&& progress) {
  Soup s;
  s.weights = soup_weights(checkpoints.size(), given_weights);
  std::vector<std::string> names;
  for (auto const& c : checkpoints) {
    std::filesystem::path const dir = resolve_checkpoint(c);
    verify_training_checkpoint(dir);
    s.inputs.push_back(dir);
    names.push_back(checkpoint_model_name(dir));
    KUMIKI_REQUIRE(names.back() == names.front(), "checkpoint '", dir.string(), "' holds a '", names.back(),
                   "' model but checkpoint '", s.inputs.front().string(), "' a '", names.front(),
                   "' model: a soup averages checkpoints of one model");
  }
  s.config_name = names.front();
  s.config = checkpoint_configuration<Configs>(s.inputs.front());
  for (std::size_t k = 1; k < s.inputs.size(); ++k)  // the first is checked above; every name was read
    detail::require_checkpoint_model(s.inputs[k], names[k], s.config);
  s.recipe_text = detail::read_text(s.inputs.front() / ckpt_recipe_file);
  s.params = Arena<Cpu>(models::hf::param_layout(s.config, DType::f32));

  std::vector<io::SafetensorsFile> files;
  for (auto const& d : s.inputs) files.emplace_back(d / ckpt_model_file);
  for (std::size_t k = 1; k < files.size(); ++k)  // the same tensors: the first difference, named
    for (auto const& e : files[0].entries()) {
      KUMIKI_REQUIRE(files[k].contains(e.name), "checkpoint '", s.inputs[k].string(), "' has no tensor '", e.name,
                     "' (checkpoint '", s.inputs[0].string(), "' has)");
      io::SafetensorsEntry const& o = files[k].entry(e.name);
      KUMIKI_REQUIRE(o.dtype == e.dtype && o.shape == e.shape, "tensor '", e.name, "' is ",
                     io::safetensors_dtype_name(o.dtype), " ", o.shape.str(), " in checkpoint '",
                     s.inputs[k].string(), "' but ", io::safetensors_dtype_name(e.dtype), " ",
                     e.shape.str(), " in checkpoint '", s.inputs[0].string(), "'");
    }

  std::vector<float> x;
  std::vector<double> acc;
  auto const& layout = s.params.layout();
  for (std::size_t t = 0; t < layout.size(); ++t) {
    ArenaEntry const& e = layout[t];
    KUMIKI_REQUIRE(files[0].contains(e.name), "checkpoint '", s.inputs[0].string(), "' has no tensor '", e.name,
                   "' of model '", s.config_name, "'");
    detail::average_tensor(files, e.name, e.shape, s.weights, precision, s.params.view(t).as<float>().data(), x, acc);
    progress(t + 1, layout.size());
  }
  return s;
}

/// The uniform f32 soup, into `out`, of the tensors `prefix` + name (for each tensor of out's layout)
/// of file `file` of every checkpoint in `dirs`: the weights (`model.safetensors`, no prefix) or one
/// AdamW moment (`optimizer.safetensors`, "exp_avg." / "exp_avg_sq."). The seed runs of a recipe stage
/// with `seeds` are souped this way, moments too, so that training can go on from the soup.
inline void soup_arena(std::vector<std::filesystem::path> const& dirs, char const* file, std::string const& prefix,
                       Arena<Cpu>& out) {
  std::vector<double> const w = soup_weights(dirs.size(), {});
  std::vector<io::SafetensorsFile> files;
  for (auto const& d : dirs) files.emplace_back(d / file);
  std::vector<float> x;
  std::vector<double> acc;
  for (std::size_t t = 0; t < out.layout().size(); ++t) {
    ArenaEntry const& e = out.layout()[t];
    for (auto const& f : files)
      KUMIKI_REQUIRE(f.contains(prefix + e.name) && f.entry(prefix + e.name).shape == e.shape, "checkpoint file '",
                     f.source(), "' has no tensor '", prefix + e.name, "' of shape ", e.shape.str());
    detail::average_tensor(files, prefix + e.name, e.shape, w, SoupPrecision::f32, out.view(t).as<float>().data(), x, acc);
  }
}

/// Writes a soup as a weights-only checkpoint under `root` (step_000000000, zero AdamW moments, the
/// first input's recipe): it evaluates, trains (--init-from) and exports like any checkpoint. The
/// model file's metadata records the inputs, weights and precision.
inline std::filesystem::path save_soup(std::filesystem::path const& root, Soup const& s, SoupPrecision precision) {
  std::string inputs, weights;
  for (std::size_t k = 0; k < s.inputs.size(); ++k) {
    inputs += (k ? ";" : "") + s.inputs[k].string();
    char w[32];
    std::snprintf(w, sizeof w, "%.17g", s.weights[k]);
    weights += (k ? ";" : "") + std::string(w);
  }
  io::Metadata meta{{"kumiki_soup_inputs", inputs},
                    {"kumiki_soup_weights", weights},
                    {"kumiki_soup_dtype", precision == SoupPrecision::bf16 ? "bf16" : "f32"}};
  for (auto const& [k, v] : config_metadata(s.config)) meta[k] = v;
  return save_weights_checkpoint(root, s.params, s.recipe_text, meta);
}

}  // namespace train
KUMIKI_NAMESPACE_END

#if !defined(__CUDACC__)
#pragma GCC pop_options
#endif
