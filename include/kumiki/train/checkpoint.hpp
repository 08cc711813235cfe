// kumiki/train/checkpoint.hpp: what a training checkpoint holds and how it is saved and loaded:
// fp32 weights under Hugging Face Llama names and AdamW's moments as safetensors, the training
// position (step, stage, tokens, consumed samples per dataset, seeds) as JSON, and the recipe.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "kumiki/config.hpp"
#include "kumiki/core/arena.hpp"
#include "kumiki/core/error.hpp"
#include "kumiki/core/json.hpp"
#include "kumiki/core/atomic_file.hpp"
#include "kumiki/core/toml.hpp"
#include "kumiki/io/safetensors.hpp"
#include "kumiki/models/configs.hpp"
#include "kumiki/models/transformer_config.hpp"
#include "kumiki/optim/adamw.hpp"
#include "kumiki/train/checkpoint_dir.hpp"
#include "kumiki/train/spikes.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace train {

inline constexpr char const ckpt_model_file[] = "model.safetensors";
inline constexpr char const ckpt_optimizer_file[] = "optimizer.safetensors";
inline constexpr char const ckpt_state_file[] = "state.json";
inline constexpr char const ckpt_recipe_file[] = "recipe.toml";

/// The key of model.safetensors' metadata under which a checkpoint records its model configuration (the
/// name and every TransformerConfig field, as JSON), so that a program reading the checkpoint can say
/// which field differs from the configuration it is compiled for, whether or not it knows the name.
/// Checkpoints written before the record existed have none; their tensor shapes are still checked.
inline constexpr char const ckpt_config_key[] = "kumiki_config";

/// `c` as the JSON object stored under ckpt_config_key (fields in declaration order; doubles round-trip).
inline std::string config_record(models::TransformerConfig const& c) {
  nlohmann::ordered_json j;
  j["name"] = std::string(c.name.view());
  models::for_each_field(c, c, [&](char const* field, auto x, auto) { j[field] = x; });
  return j.dump();
}

/// The metadata a checkpoint's model file gets for configuration `c`.
inline io::Metadata config_metadata(models::TransformerConfig const& c) { return {{ckpt_config_key, config_record(c)}}; }

/// Parses a config_record; every field must be present with its type. `source` names the file.
inline models::TransformerConfig parse_config_record(std::string const& text, std::string const& source) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (nlohmann::json::exception const& e) {
    KUMIKI_FAIL("'", source, "': the ", ckpt_config_key, " record is not JSON (", e.what(), ")");
  }
  KUMIKI_REQUIRE(j.is_object() && j.contains("name") && j["name"].is_string(), "'", source, "': the ", ckpt_config_key,
                 " record has no model name");
  models::TransformerConfig c{};
  std::string const name = j["name"].get<std::string>();
  KUMIKI_REQUIRE(!name.empty() && name.size() <= models::ConfigName::capacity, "'", source, "': the ", ckpt_config_key,
                 " record's name '", name, "' is empty or longer than ", models::ConfigName::capacity, " characters");
  std::copy(name.begin(), name.end(), c.name.text);
  models::for_each_field(c, c, [&](char const* field, auto& x, auto&) {
    using T = std::remove_cvref_t<decltype(x)>;
    auto const it = j.find(field);
    bool const ok = it != j.end() && (std::is_same_v<T, bool> ? it->is_boolean()
                                      : std::is_integral_v<T> ? it->is_number_integer()
                                                              : it->is_number());
    KUMIKI_REQUIRE(ok, "'", source, "': the ", ckpt_config_key, " record lacks field '", field, "' or it has the wrong type");
    x = it->template get<T>();
  });
  return c;
}

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
  SpikeState spikes;                 ///< spike window, counters, rollbacks, data skip (train/spikes.hpp)
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
          {"data", {{"datasets", s.datasets}, {"consumed_samples", s.consumed_per_dataset}}},
          {"spikes", s.spikes.to_json()}};
}

namespace detail {

/// Typed access to the keys of a state.json document by dotted path ("rng.init_seed"); each failure
/// names the file, the key and what it holds.
class StateReader {
 public:
  StateReader(nlohmann::json const& root, std::string const& source) : root_(root), src_(source) {
    KUMIKI_REQUIRE(root.is_object(), "checkpoint state '", src_, "' is ", ::kumiki::detail::json_describe(root),
                   ", not a JSON object");
  }

  nlohmann::json const& at(std::string const& path) const {
    nlohmann::json const* v = &root_;
    for (std::size_t begin = 0; begin <= path.size();) {
      std::size_t const dot = std::min(path.find('.', begin), path.size());
      std::string const parent = path.substr(0, begin == 0 ? 0 : begin - 1);
      KUMIKI_REQUIRE(v->is_object(), where(parent), " is ", ::kumiki::detail::json_describe(*v),
                     ", expected an object");
      auto const it = v->find(path.substr(begin, dot - begin));
      KUMIKI_REQUIRE(it != v->end(), "checkpoint state '", src_, "' has no \"", path.substr(0, dot), "\"");
      v = &*it;
      begin = dot + 1;
    }
    return *v;
  }
  std::int64_t count(nlohmann::json const& v, std::string const& path) const {
    KUMIKI_REQUIRE(v.is_number_unsigned() && v.get<std::uint64_t>() <= std::uint64_t{INT64_MAX}, where(path), " is ",
                   ::kumiki::detail::json_describe(v), ", expected a non-negative integer");
    return v.get<std::int64_t>();
  }
  std::int64_t count(std::string const& path) const { return count(at(path), path); }
  std::uint64_t seed(std::string const& path) const {
    nlohmann::json const& v = at(path);
    KUMIKI_REQUIRE(v.is_number_unsigned(), where(path), " is ", ::kumiki::detail::json_describe(v),
                   ", expected an integer in [0, 2^64)");
    return v.get<std::uint64_t>();
  }
  bool has(std::string const& key) const { return root_.contains(key); }
  double number(std::string const& path) const {
    nlohmann::json const& v = at(path);
    KUMIKI_REQUIRE(v.is_number() && std::isfinite(v.get<double>()), where(path), " is ",
                   ::kumiki::detail::json_describe(v), ", expected a finite number");
    return v.get<double>();
  }
  std::string string(nlohmann::json const& v, std::string const& path) const {
    KUMIKI_REQUIRE(v.is_string(), where(path), " is ", ::kumiki::detail::json_describe(v), ", expected a string");
    return v.get<std::string>();
  }
  std::string string(std::string const& path) const { return string(at(path), path); }
  std::vector<std::string> strings(std::string const& path) const {
    std::vector<std::string> out;
    nlohmann::json const& a = array(path);
    for (std::size_t i = 0; i < a.size(); ++i) out.push_back(string(a[i], path + "[" + std::to_string(i) + "]"));
    return out;
  }
  std::vector<std::int64_t> counts(std::string const& path) const {
    std::vector<std::int64_t> out;
    nlohmann::json const& a = array(path);
    for (std::size_t i = 0; i < a.size(); ++i) out.push_back(count(a[i], path + "[" + std::to_string(i) + "]"));
    return out;
  }

 private:
  nlohmann::json const& array(std::string const& path) const {
    nlohmann::json const& v = at(path);
    KUMIKI_REQUIRE(v.is_array(), where(path), " is ", ::kumiki::detail::json_describe(v), ", expected an array");
    return v;
  }
  std::string where(std::string const& path) const { return "checkpoint state '" + src_ + "': \"" + path + "\""; }

  nlohmann::json const& root_;
  std::string const& src_;
};

}  // namespace detail

/// The training position of a state.json document. Throws kumiki::InputError naming `source`, the key
/// and what it holds for a missing or mistyped key, a negative count, or counts that contradict each
/// other (a stage or non-finite run longer than the whole run, one consumed count per dataset).
inline TrainState train_state_from_json(nlohmann::json const& j, std::string const& source) {
  detail::StateReader const r(j, source);
  TrainState s;
  s.step = r.count("step");
  s.tokens = r.count("tokens");
  s.stage_index = r.count("stage_index");
  s.stage_step = r.count("stage_step");
  s.stage = r.string("stage");
  s.nonfinite_run = r.count("nonfinite_run");
  s.skipped_total = r.count("skipped_total");
  s.init_seed = r.seed("rng.init_seed");
  s.data_seed = r.seed("rng.data_seed");
  s.datasets = r.strings("data.datasets");
  s.consumed_per_dataset = r.counts("data.consumed_samples");
  if (r.has("spikes")) {  // absent from checkpoints written before spike handling: its initial state
    SpikeState& k = s.spikes;
    k.window = SpikeWindow::from_json(r.at("spikes.window"), "checkpoint state '" + source + "': \"spikes.window\"");
    k.consecutive = r.count("spikes.consecutive_outliers");
    k.outliers_total = r.count("spikes.outliers_total");
    k.rollbacks = r.count("spikes.rollbacks");
    k.data_skip_batches = r.count("spikes.data_skip_batches");
    k.lr_factor = r.number("spikes.lr_factor");
    k.lr_factor_until = r.count("spikes.lr_factor_until");
    KUMIKI_REQUIRE(k.lr_factor > 0 && k.lr_factor <= 1, "checkpoint state '", source, "': \"spikes.lr_factor\" is ",
                   k.lr_factor, ", expected a number in (0, 1]");
    KUMIKI_REQUIRE(k.consecutive <= s.step && k.outliers_total <= s.step, "checkpoint state '", source,
                   "': the spike counters exceed the ", s.step, " steps of the whole run");
  }
  // Every step, applied or skipped, counts in `step`: nothing within the run can exceed it.
  for (auto const& [key, v] : {std::pair{"stage_step", s.stage_step}, std::pair{"nonfinite_run", s.nonfinite_run},
                               std::pair{"skipped_total", s.skipped_total}})
    KUMIKI_REQUIRE(v <= s.step, "checkpoint state '", source, "': \"", key, "\" is ", v, ", more than the ", s.step,
                   " steps of the whole run");
  KUMIKI_REQUIRE(s.datasets.size() == s.consumed_per_dataset.size(), "checkpoint state '", source, "' lists ",
                 s.datasets.size(), " datasets but ", s.consumed_per_dataset.size(), " consumed-sample counts");
  return s;
}

/// The training position of state.json text (see train_state_from_json); `source` names the file.
inline TrainState parse_train_state(std::string_view text, std::string const& source) {
  return train_state_from_json(::kumiki::detail::parse_json_strict(text, "checkpoint state '" + source + "'"), source);
}

/// The optimizer's step count as stored in the safetensors metadata: a whole decimal integer >= 0.
inline std::int64_t parse_step_count(std::string const& text, std::string const& source) {
  std::int64_t const n =
      ::kumiki::detail::parse_int64_strict(text, "the step_count metadata of optimizer file '" + source + "'");
  KUMIKI_REQUIRE(n >= 0, "the step_count metadata of optimizer file '", source, "' is ", n, ", a negative step count");
  return n;
}

/// The AdamW step count of an optimizer file (its step_count metadata).
inline std::int64_t read_step_count(io::SafetensorsView const& optimizer_file) {
  auto const it = optimizer_file.metadata().find("step_count");
  KUMIKI_REQUIRE(it != optimizer_file.metadata().end(), "optimizer file '", optimizer_file.source(),
                 "' has no step_count metadata");
  return parse_step_count(it->second, optimizer_file.source());
}

namespace detail {

/// The weights of a checkpoint's model file: every tensor of `arena`, and nothing else in the file.
inline void load_arena(io::SafetensorsView const& file, Arena<Cpu>& arena) {
  io::FillOptions o;
  o.kind = "checkpoint file";
  o.owner = "the model";
  io::fill_arena(file, arena, o);
}

inline std::vector<io::NamedTensor> prefixed(Arena<Cpu> const& arena, std::string const& prefix) {
  std::vector<io::NamedTensor> out;
  for (std::size_t i = 0; i < arena.layout().size(); ++i) out.push_back({prefix + arena.layout()[i].name, arena.view(i)});
  return out;
}

inline std::string read_text(std::filesystem::path const& p) {
  std::ifstream in(p);
  KUMIKI_REQUIRE(in.good(), "cannot read '", p.string(), "'");
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

namespace detail {
/// The host arena a checkpoint reads from for `a`: `a` itself on the CPU, else a copy staged in
/// `staging` (the one place a checkpoint crosses devices).
template <class Backend>
Arena<Cpu> const& on_host(Arena<Backend> const& a, std::optional<Arena<Cpu>>& staging) {
  if constexpr (std::is_same_v<Backend, Cpu>) {
    return a;
  } else {
    staging.emplace(a.layout());
    copy(*staging, a);
    return *staging;
  }
}

/// Runs `read(host arena)` to fill `a`: directly on the CPU, else through a host staging arena copied
/// to the device afterwards.
template <class Backend, class Read>
void fill_from_host(Arena<Backend>& a, Read&& read) {
  if constexpr (std::is_same_v<Backend, Cpu>) {
    read(a);
  } else {
    Arena<Cpu> host(a.layout());
    read(host);
    copy(a, host);
  }
}
}  // namespace detail

/// Writes one checkpoint under `root` (see CheckpointWriter: appears complete or not at all): the
/// parameters and the AdamW moments `exp_avg`, `exp_avg_sq` (the parameters' layout) with `step_count`,
/// of any backend, staged through host memory when on a device. `before_commit` runs after the files are
/// written and before the manifest (tests crash there); `model_metadata` is added to the weights' header
/// (the trainer's: config_metadata, the record of the model's configuration).
template <class Backend>
std::filesystem::path save_checkpoint(std::filesystem::path const& root, Arena<Backend> const& params,
                                      Arena<Backend> const& exp_avg, Arena<Backend> const& exp_avg_sq,
                                      std::int64_t step_count, TrainState const& state, std::string const& recipe_text,
                                      std::function<void()> const& before_commit = {},
                                      io::Metadata const& model_metadata = {}) {
  KUMIKI_CHECK(exp_avg.layout() == params.layout() && exp_avg_sq.layout() == params.layout(),
               "save_checkpoint: the moments must have the parameters' layout (gather a ZeRO-1 shard's first)");
  std::optional<Arena<Cpu>> p_stage, m_stage, v_stage;
  std::vector<io::NamedTensor> moments = detail::prefixed(detail::on_host(exp_avg, m_stage), "exp_avg.");
  for (auto& t : detail::prefixed(detail::on_host(exp_avg_sq, v_stage), "exp_avg_sq.")) moments.push_back(std::move(t));
  return detail::write_checkpoint(root, detail::on_host(params, p_stage), model_metadata, moments, step_count, state,
                                  recipe_text, before_commit);
}

/// The same with the moments and step count of `opt` (which keeps the moments of every parameter).
template <class Backend>
std::filesystem::path save_checkpoint(std::filesystem::path const& root, Arena<Backend> const& params,
                                      optim::AdamW<Backend> const& opt, TrainState const& state,
                                      std::string const& recipe_text, std::function<void()> const& before_commit = {},
                                      io::Metadata const& model_metadata = {}) {
  return save_checkpoint(root, params, opt.exp_avg(), opt.exp_avg_sq(), opt.step_count(), state, recipe_text,
                         before_commit, model_metadata);
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

/// Verifies the checkpoint `dir` (checkpoint_dir.hpp) and that its manifest lists the four files of a
/// training checkpoint, so none of them is read unverified.
inline CheckpointManifest verify_training_checkpoint(std::filesystem::path const& dir) {
  CheckpointManifest m = verify_checkpoint(dir);
  for (char const* f : {ckpt_model_file, ckpt_optimizer_file, ckpt_state_file, ckpt_recipe_file}) m.require(f);
  return m;
}

/// The model configuration named by a checkpoint's recipe.toml.
inline std::string checkpoint_model_name(std::filesystem::path const& ckpt) {
  std::filesystem::path const p = ckpt / ckpt_recipe_file;
  toml::Table const t = toml::parse(detail::read_text(p), p.string());  // a TOML error names the file
  toml::Value const* v = t.get("model");
  KUMIKI_REQUIRE(v != nullptr && v->as_string() != nullptr, "recipe '", p.string(), "' names no model (model = \"...\")");
  return *v->as_string();
}

/// The configuration a checkpoint recorded when it was written (ckpt_config_key), or nothing for a
/// checkpoint from before the record.
inline std::optional<models::TransformerConfig> checkpoint_config(std::filesystem::path const& ckpt) {
  io::SafetensorsFile const f(ckpt / ckpt_model_file);
  auto const it = f.metadata().find(ckpt_config_key);
  if (it == f.metadata().end()) return std::nullopt;
  return parse_config_record(it->second, f.source());
}

namespace detail {
/// require_checkpoint_model for a caller that has read the model name of the checkpoint's recipe already.
inline void require_checkpoint_model(std::filesystem::path const& dir, std::string const& name,
                                     models::TransformerConfig const& expected,
                                     std::string_view expected_what = "this program is compiled for configuration") {
  std::optional<models::TransformerConfig> const saved = checkpoint_config(dir);
  std::string_view const want = expected.name.view();
  if (name != want) {
    std::string const diff = saved ? models::differences_text(*saved, expected) : std::string();
    KUMIKI_FAIL("checkpoint '", dir.string(), "' holds model '", name, "' but ", expected_what, " '", want, "'", diff,
                "; use a checkpoint of '", want, "' or a program whose configuration list includes '", name, "'");
  }
  if (saved) {
    KUMIKI_REQUIRE(saved->name.view() == name, "checkpoint '", dir.string(), "': its recipe names model '", name,
                   "' but its weights record configuration '", saved->name.view(), "'");
    std::string const diff = models::differences_text(*saved, expected);
    KUMIKI_REQUIRE(diff.empty(), "checkpoint '", dir.string(), "' holds model '", name,
                   "' as configured when it was written, and this program's '", want, "' is another model", diff,
                   " (checkpoint vs program); the configuration changed under the same name: restore it, or give the "
                   "changed configuration a new name");
  }
}
}  // namespace detail

/// Checks that checkpoint `dir` holds a model of configuration `expected`: the name its recipe gives
/// and, when the checkpoint recorded its configuration, every field. The message names the checkpoint,
/// both configurations and each differing field (checkpoint vs expected). `expected_what` says whose
/// configuration `expected` is ("this program is compiled for configuration", "the recipe trains").
inline void require_checkpoint_model(std::filesystem::path const& dir, models::TransformerConfig const& expected,
                                     std::string_view expected_what = "this program is compiled for configuration") {
  detail::require_checkpoint_model(dir, checkpoint_model_name(dir), expected, expected_what);
}

/// The configuration of `Configs` (the program's list) that checkpoint `dir` holds, checked against the
/// configuration the checkpoint recorded (require_checkpoint_model). A name the list lacks is an
/// InputError naming the checkpoint, the names the program knows and what to do.
template <class Configs = models::BuiltinConfigs>
models::TransformerConfig checkpoint_configuration(std::filesystem::path const& dir) {
  std::string const name = checkpoint_model_name(dir);
  KUMIKI_REQUIRE(Configs::contains(name), "checkpoint '", dir.string(), "' holds model '", name,
                 "', a configuration this program does not know (it knows ", Configs::names_text(),
                 "); use a program whose configuration list includes '", name, "' (models::ConfigList, docs/api.md)");
  models::TransformerConfig const c = Configs::find(name);
  detail::require_checkpoint_model(dir, name, c);
  return c;
}

namespace detail {
/// What loading a checkpoint always does: verifies it, reads the weights into `params`, checks the
/// optimizer file's tensor count, hands that file to `read_moments`, reads the step count, the position
/// (returned) and the recipe text.
template <class Backend, class ReadMoments>
TrainState load_checkpoint_with(std::filesystem::path const& dir, Arena<Backend>& params, ReadMoments&& read_moments,
                                std::int64_t& step_count, std::string* recipe_text) {
  verify_training_checkpoint(dir);
  {
    io::SafetensorsFile const model(dir / ckpt_model_file);
    detail::fill_from_host(params, [&](Arena<Cpu>& host) { detail::load_arena(model, host); });
  }
  {
    io::SafetensorsFile const o(dir / ckpt_optimizer_file);
    KUMIKI_REQUIRE(o.size() == 2 * params.layout().size(), "optimizer file '", o.source(), "' holds ", o.size(),
                   " tensors, expected ", 2 * params.layout().size());
    read_moments(o);
    step_count = read_step_count(o);
  }
  std::filesystem::path const state = dir / ckpt_state_file;
  TrainState s = parse_train_state(detail::read_text(state), state.string());
  if (recipe_text) *recipe_text = detail::read_text(dir / ckpt_recipe_file);
  return s;
}
}  // namespace detail

/// Loads a verified checkpoint into `params` and the AdamW state `exp_avg`, `exp_avg_sq` (arenas of the
/// parameters' layout) and `step_count`; returns the position and the recipe text. Every problem with
/// the files (a tensor missing or of another dtype or shape, a malformed step_count or state.json) is a
/// kumiki::InputError naming the file.
template <class Backend>
TrainState load_checkpoint(std::filesystem::path const& dir, Arena<Backend>& params, Arena<Backend>& exp_avg,
                           Arena<Backend>& exp_avg_sq, std::int64_t& step_count, std::string* recipe_text = nullptr) {
  KUMIKI_CHECK(exp_avg.layout() == params.layout() && exp_avg_sq.layout() == params.layout(),
               "load_checkpoint: the moments must have the parameters' layout (load_checkpoint_part reads a part)");
  auto const read_moments = [&](io::SafetensorsFile const& o) {
    for (auto [prefix, arena] : {std::pair{"exp_avg.", &exp_avg}, std::pair{"exp_avg_sq.", &exp_avg_sq}})
      detail::fill_from_host(*arena, [&, prefix = prefix](Arena<Cpu>& host) {
        io::FillOptions f;
        f.prefix = prefix, f.kind = "optimizer file", f.owner = "the optimizer";
        f.allow_unused = true;  // the file holds both moments; its tensor count is checked
        io::fill_arena(o, host, f);
      });
  };
  return detail::load_checkpoint_with(dir, params, read_moments, step_count, recipe_text);
}

/// The same as a ZeRO-1 rank keeps it: `params` whole, and of the moments only the elements `range`
/// (a FlatRange of the parameters), into `exp_avg`, `exp_avg_sq` of optim::shard_layout(params'
/// layout, range). Each piece is read from the file as it is (memory-mapped), so a rank stages only
/// its part of the moments, whatever the number of ranks that wrote the checkpoint. The file's
/// tensors are checked whole (present, f32, the parameters' shapes) as load_checkpoint checks them.
template <class Backend>
TrainState load_checkpoint_part(std::filesystem::path const& dir, Arena<Backend>& params, FlatRange range,
                                Arena<Backend>& exp_avg, Arena<Backend>& exp_avg_sq, std::int64_t& step_count,
                                std::string* recipe_text = nullptr) {
  ArenaLayout const& whole = params.layout();
  KUMIKI_CHECK(exp_avg.layout() == optim::shard_layout(whole, range) && exp_avg_sq.layout() == exp_avg.layout(),
               "load_checkpoint_part: the moments must have shard_layout(the parameters' layout, range)");
  auto const read_moments = [&](io::SafetensorsFile const& o) {
    for (auto [prefix, arena] : {std::pair{"exp_avg.", &exp_avg}, std::pair{"exp_avg_sq.", &exp_avg_sq}}) {
      for (ArenaEntry const& e : whole.entries()) {
        std::string const name = prefix + e.name;
        KUMIKI_REQUIRE(o.contains(name), "optimizer file '", o.source(), "' has no tensor '", name, "' (expected ",
                       e.shape, ")");
        io::SafetensorsEntry const& se = o.entry(name);
        KUMIKI_REQUIRE(se.dtype == DType::f32 && se.shape == e.shape, "optimizer tensor '", name, "' in '", o.source(),
                       "' is ", dtype_name(se.dtype), " ", se.shape, ", the optimizer expects f32 ", e.shape);
      }
      detail::fill_from_host(*arena, [&, prefix = prefix](Arena<Cpu>& host) {
        optim::detail::for_each_shard_piece(whole, host.layout(), range,
                                            [&](std::size_t i, std::size_t w, std::size_t s, std::size_t n) {
                                              std::span<std::byte const> const src = o.bytes(prefix + whole[i].name);
                                              std::memcpy(host.data() + s, src.data() + (w - whole[i].offset), n);
                                            });
      });
    }
  };
  return detail::load_checkpoint_with(dir, params, read_moments, step_count, recipe_text);
}

/// The same into `opt` (which keeps the moments of every parameter).
template <class Backend>
TrainState load_checkpoint(std::filesystem::path const& dir, Arena<Backend>& params, optim::AdamW<Backend>& opt,
                           std::string* recipe_text = nullptr) {
  std::int64_t step_count = 0;
  TrainState s = load_checkpoint(dir, params, opt.exp_avg(), opt.exp_avg_sq(), step_count, recipe_text);
  opt.set_step_count(step_count);
  return s;
}

}  // namespace train
KUMIKI_NAMESPACE_END
