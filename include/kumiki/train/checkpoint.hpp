// kumiki/train/checkpoint.hpp: what a training checkpoint holds and how it is saved and loaded:
// fp32 weights under Hugging Face Llama names and AdamW's moments as safetensors, the training
// position (step, stage, tokens, consumed samples per dataset, seeds) as JSON, and the recipe.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kumiki/config.hpp"
#include "kumiki/core/arena.hpp"
#include "kumiki/core/error.hpp"
#include "kumiki/core/atomic_file.hpp"
#include "kumiki/io/safetensors.hpp"
#include "kumiki/optim/adamw.hpp"
#include "kumiki/train/checkpoint_dir.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace train {

inline constexpr char const ckpt_model_file[] = "model.safetensors";
inline constexpr char const ckpt_optimizer_file[] = "optimizer.safetensors";
inline constexpr char const ckpt_state_file[] = "state.json";
inline constexpr char const ckpt_recipe_file[] = "recipe.toml";

/// The training position. All randomness in kumiki is counter-based (Philox keyed by seeds), so the
/// seeds below plus the step are the complete RNG state: nothing else needs saving.
struct TrainState {
  std::int64_t step = 0;             ///< optimizer steps completed over all stages
  std::int64_t tokens = 0;           ///< training tokens consumed
  std::int64_t stage_index = 0;      ///< stage of the next step
  std::int64_t stage_step = 0;       ///< steps completed within that stage
  std::string stage;                 ///< its name
  std::int64_t nonfinite_run = 0;    ///< consecutive non-finite steps before this point
  std::int64_t skipped_total = 0;    ///< non-finite steps skipped so far
  std::uint64_t init_seed = 0;       ///< model initialization seed
  std::uint64_t data_seed = 0;       ///< data-order seed of the current stage
  std::vector<std::int64_t> consumed_per_dataset;  ///< samples of the current stage's blend, per dataset
  std::vector<std::string> datasets;               ///< the blend's prefixes, same order
};

inline nlohmann::json to_json(TrainState const& s) {
  return {{"step", s.step},
          {"tokens", s.tokens},
          {"stage_index", s.stage_index},
          {"stage_step", s.stage_step},
          {"stage", s.stage},
          {"nonfinite_run", s.nonfinite_run},
          {"skipped_total", s.skipped_total},
          {"rng", {{"kind", "philox4x32-10 (counter-based; seeds are the whole state)"},
                   {"init_seed", s.init_seed},
                   {"data_seed", s.data_seed}}},
          {"data", {{"datasets", s.datasets}, {"consumed_samples", s.consumed_per_dataset}}}};
}

inline TrainState train_state_from_json(nlohmann::json const& j, std::string const& source) {
  try {
    TrainState s;
    s.step = j.at("step").get<std::int64_t>();
    s.tokens = j.at("tokens").get<std::int64_t>();
    s.stage_index = j.at("stage_index").get<std::int64_t>();
    s.stage_step = j.at("stage_step").get<std::int64_t>();
    s.stage = j.at("stage").get<std::string>();
    s.nonfinite_run = j.at("nonfinite_run").get<std::int64_t>();
    s.skipped_total = j.at("skipped_total").get<std::int64_t>();
    s.init_seed = j.at("rng").at("init_seed").get<std::uint64_t>();
    s.data_seed = j.at("rng").at("data_seed").get<std::uint64_t>();
    s.datasets = j.at("data").at("datasets").get<std::vector<std::string>>();
    s.consumed_per_dataset = j.at("data").at("consumed_samples").get<std::vector<std::int64_t>>();
    return s;
  } catch (nlohmann::json::exception const& e) {
    KUMIKI_FAIL("checkpoint state '", source, "' is malformed: ", e.what());
  }
}

namespace detail {

/// Copies every tensor of `arena` from the safetensors file, names and shapes required to match.
inline void load_arena(io::SafetensorsView const& file, Arena<Cpu>& arena, std::string const& prefix = "") {
  for (std::size_t i = 0; i < arena.layout().size(); ++i) {
    ArenaEntry const& e = arena.layout()[i];
    std::string const name = prefix + e.name;
    KUMIKI_CHECK(file.contains(name), "checkpoint file '", file.source(), "' has no tensor '", name, "'");
    io::SafetensorsEntry const& se = file.entry(name);
    KUMIKI_CHECK(se.dtype == e.dtype && se.shape == e.shape, "checkpoint tensor '", name, "' is ",
                 dtype_name(se.dtype), " ", se.shape, ", the model expects ", dtype_name(e.dtype), " ", e.shape);
    auto const bytes = file.bytes(se);
    std::memcpy(arena.view(i).data, bytes.data(), bytes.size());
  }
  KUMIKI_CHECK(file.size() == arena.layout().size(), "checkpoint file '", file.source(), "' holds ", file.size(),
               " tensors, the model has ", arena.layout().size());
}

inline std::vector<io::NamedTensor> prefixed(Arena<Cpu> const& arena, std::string const& prefix) {
  std::vector<io::NamedTensor> out;
  for (std::size_t i = 0; i < arena.layout().size(); ++i) out.push_back({prefix + arena.layout()[i].name, arena.view(i)});
  return out;
}

inline std::string read_text(std::filesystem::path const& p) {
  std::ifstream in(p);
  KUMIKI_CHECK(in.good(), "cannot read '", p.string(), "'");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace detail

namespace detail {
/// The four files of a checkpoint at state.step under `root` (see CheckpointWriter: it appears
/// complete or not at all): fp32 weights with `model_metadata` added to their header, the AdamW
/// moments `moments` (exp_avg.* then exp_avg_sq.*) with `step_count`, state.json and the recipe.
inline std::filesystem::path write_checkpoint(std::filesystem::path const& root, Arena<Cpu> const& params,
                                              io::Metadata const& model_metadata,
                                              std::vector<io::NamedTensor> const& moments, std::int64_t step_count,
                                              TrainState const& state, std::string const& recipe_text,
                                              std::function<void()> const& before_commit) {
  CheckpointWriter w(root, state.step);
  io::Metadata meta{{"format", "pt"}, {"kumiki", "fp32 master weights"}};
  for (auto const& [k, v] : model_metadata) meta[k] = v;
  io::write_safetensors(w.path(ckpt_model_file), params, meta);
  io::write_safetensors(w.path(ckpt_optimizer_file), moments,
                        {{"optimizer", "adamw"}, {"step_count", std::to_string(step_count)}});
  write_file_atomic(w.path(ckpt_state_file), to_json(state).dump(2) + "\n");
  write_file_atomic(w.path(ckpt_recipe_file), recipe_text);
  if (before_commit) before_commit();
  return w.commit();
}
}  // namespace detail

/// Writes one checkpoint under `root` (see CheckpointWriter: appears complete or not at all).
/// `before_commit` runs after the files are written and before the manifest (tests crash there).
inline std::filesystem::path save_checkpoint(std::filesystem::path const& root, Arena<Cpu> const& params,
                                             optim::AdamW<Cpu> const& opt, TrainState const& state,
                                             std::string const& recipe_text,
                                             std::function<void()> const& before_commit = {}) {
  std::vector<io::NamedTensor> moments = detail::prefixed(opt.exp_avg(), "exp_avg.");
  for (auto& t : detail::prefixed(opt.exp_avg_sq(), "exp_avg_sq.")) moments.push_back(std::move(t));
  return detail::write_checkpoint(root, params, {}, moments, opt.step_count(), state, recipe_text, before_commit);
}

/// Writes `params` as a weights-only checkpoint at step 0 under `root`: the same files as
/// save_checkpoint, with zero AdamW moments (every moment tensor views one zero buffer as large as the
/// largest parameter, so no optimizer state is allocated) and a fresh TrainState.
inline std::filesystem::path save_weights_checkpoint(std::filesystem::path const& root, Arena<Cpu> const& params,
                                                     std::string const& recipe_text,
                                                     io::Metadata const& model_metadata = {}) {
  std::size_t largest = 0;
  for (ArenaEntry const& e : params.layout().entries()) largest = std::max(largest, e.bytes);
  std::vector<float> zeros(largest / sizeof(float), 0.0f);
  std::vector<io::NamedTensor> moments;
  for (char const* prefix : {"exp_avg.", "exp_avg_sq."})
    for (ArenaEntry const& e : params.layout().entries())
      moments.push_back({prefix + e.name, AnyView{zeros.data(), DType::f32, e.shape, DeviceKind::cpu}});
  return detail::write_checkpoint(root, params, model_metadata, moments, 0, TrainState{}, recipe_text, {});
}

/// Loads a verified checkpoint into `params` and `opt`; returns the position and the recipe text.
inline TrainState load_checkpoint(std::filesystem::path const& dir, Arena<Cpu>& params, optim::AdamW<Cpu>& opt,
                                  std::string* recipe_text = nullptr) {
  verify_checkpoint(dir);
  {
    io::SafetensorsFile const model(dir / ckpt_model_file);
    detail::load_arena(model, params);
  }
  {
    io::SafetensorsFile const o(dir / ckpt_optimizer_file);
    KUMIKI_CHECK(o.size() == 2 * opt.layout().size(), "optimizer file '", o.source(), "' holds ", o.size(),
                 " tensors, expected ", 2 * opt.layout().size());
    for (auto const& [prefix, arena] : {std::pair{"exp_avg.", &opt.exp_avg()}, std::pair{"exp_avg_sq.", &opt.exp_avg_sq()}})
      for (std::size_t i = 0; i < arena->layout().size(); ++i) {
        std::string const name = prefix + arena->layout()[i].name;
        KUMIKI_CHECK(o.contains(name), "optimizer file '", o.source(), "' has no tensor '", name, "'");
        auto const bytes = o.bytes(name);
        KUMIKI_CHECK(bytes.size() == arena->view(i).bytes(), "optimizer tensor '", name, "' has the wrong size");
        std::memcpy(arena->view(i).data, bytes.data(), bytes.size());
      }
    auto const it = o.metadata().find("step_count");
    KUMIKI_CHECK(it != o.metadata().end(), "optimizer file '", o.source(), "' has no step_count metadata");
    opt.set_step_count(std::stoll(it->second));
  }
  std::string const state_text = detail::read_text(dir / ckpt_state_file);
  auto const j = nlohmann::json::parse(state_text, nullptr, false);
  KUMIKI_CHECK(!j.is_discarded(), "checkpoint state '", (dir / ckpt_state_file).string(), "' is not valid JSON");
  if (recipe_text) *recipe_text = detail::read_text(dir / ckpt_recipe_file);
  return train_state_from_json(j, (dir / ckpt_state_file).string());
}

}  // namespace train
KUMIKI_NAMESPACE_END
