// kumiki/train/hf_interop.hpp: kumiki checkpoints <-> Hugging Face model directories: reading a
// checkpoint's model, exporting it as a Llama / Mixtral directory, importing one as a weights-only
// checkpoint. The formats themselves (config.json, weights) are io/hf.hpp's.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "kumiki/config.hpp"
#include "kumiki/core/arena.hpp"
#include "kumiki/core/atomic_file.hpp"
#include "kumiki/core/error.hpp"
#include "kumiki/core/toml.hpp"
#include "kumiki/io/hf.hpp"
#include "kumiki/io/safetensors.hpp"
#include "kumiki/models/configs.hpp"
#include "kumiki/train/checkpoint.hpp"
#include "kumiki/train/checkpoint_dir.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace train {

// ---- kumiki checkpoints -----------------------------------------------------------------------


/// The `model = "..."` of a recipe text (a top-level string), or nothing when the text is not TOML or
/// has no such key.
inline std::optional<std::string> recipe_model_name(std::string_view text) {
  try {
    toml::Table const t = toml::parse(text, "recipe");
    toml::Value const* v = t.get("model");
    if (v != nullptr && v->as_string() != nullptr) return *v->as_string();
  } catch (InputError const&) {
  }
  return std::nullopt;
}

/// A verified checkpoint read into memory: its model configuration name and fp32 weights.
struct CheckpointModel {
  std::string config_name;
  Arena<Cpu> params;
};

template <class Configs = models::BuiltinConfigs>
CheckpointModel read_checkpoint_model(std::filesystem::path const& path) {
  std::filesystem::path const dir = resolve_checkpoint(path);
  verify_checkpoint(dir);
  models::TransformerConfig const c = checkpoint_configuration<Configs>(dir);
  std::string name(c.name.view());
  Arena<Cpu> params(models::hf::param_layout(c, DType::f32));
  io::SafetensorsFile const f(dir / ckpt_model_file);
  detail::load_arena(f, params);
  return {std::move(name), std::move(params)};
}

/// The weights of a Hugging Face Llama / Mixtral directory (one holding config.json) or of a kumiki
/// checkpoint or run directory (its newest valid checkpoint), with the configuration of `Configs` they
/// match.
template <class Configs = models::BuiltinConfigs>
CheckpointModel read_model_weights(std::filesystem::path const& path) {
  if (std::filesystem::is_regular_file(path / "config.json")) {
    io::HfModel m = io::read_hf_model<Configs>(path);
    return {std::move(m.config_name), std::move(m.params)};
  }
  return read_checkpoint_model<Configs>(path);
}

// ---- export -----------------------------------------------------------------------------------

namespace detail {

/// Removes a temporary directory unless released.
struct TempDir {
  std::filesystem::path path;
  bool keep = false;
  ~TempDir() {
    std::error_code ec;
    if (!keep) std::filesystem::remove_all(path, ec);
  }
};

inline void copy_file_atomic(std::filesystem::path const& from, std::filesystem::path const& to) {
  std::ifstream in(from, std::ios::binary);
  KUMIKI_REQUIRE(in.good(), "cannot read '", from.string(), "'");
  AtomicFile f(to);
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    if (in.gcount() > 0) f.write(buf.data(), static_cast<std::size_t>(in.gcount()));
  }
  KUMIKI_REQUIRE(in.eof(), "error reading '", from.string(), "'");
  f.commit();
}

}  // namespace detail

/// Writes the model of checkpoint `ckpt` (a checkpoint or a run directory) as a Hugging Face Llama
/// (dense) or Mixtral (MoE) directory `out`: config.json, generation_config.json, model.safetensors
/// (or shards above opt.max_shard_bytes plus model.safetensors.index.json) and the tokenizer model when
/// given. The directory is built under a temporary name beside `out` and renamed, so it appears
/// complete or not at all; `out` must not exist or be an empty directory. The checkpoint's model must be
/// a configuration of `Configs`. Returns the files written.
template <class Configs = models::BuiltinConfigs>
std::vector<std::filesystem::path> export_hf(std::filesystem::path const& ckpt, std::filesystem::path const& out,
                                             io::HfExportOptions const& opt = {}) {
  namespace fs = std::filesystem;
  KUMIKI_REQUIRE(opt.dtype == DType::f32 || opt.dtype == DType::bf16 || opt.dtype == DType::f16,
               "export dtype must be f32, bf16 or f16, not ", dtype_name(opt.dtype));
  KUMIKI_REQUIRE(opt.tokenizer.empty() || fs::is_regular_file(opt.tokenizer), "tokenizer model '", opt.tokenizer.string(),
               "' does not exist");
  KUMIKI_REQUIRE(!fs::exists(out) || (fs::is_directory(out) && fs::is_empty(out)), "output '", out.string(),
               "' already exists and is not an empty directory; remove it or choose another");
  fs::path const dir = resolve_checkpoint(ckpt);
  verify_checkpoint(dir);
  models::TransformerConfig const cfg = checkpoint_configuration<Configs>(dir);
  std::string const name(cfg.name.view());
  io::check_hf_exportable(cfg);
  ArenaLayout const layout = models::hf::param_layout(cfg, DType::f32);
  io::SafetensorsFile const f(dir / ckpt_model_file);
  std::vector<io::NamedTensor> tensors;
  for (ArenaEntry const& e : layout.entries()) {
    KUMIKI_REQUIRE(f.contains(e.name), "checkpoint model '", f.source(), "' has no tensor '", e.name, "'");
    io::SafetensorsEntry const& se = f.entry(e.name);
    KUMIKI_REQUIRE(se.dtype == e.dtype && se.shape == e.shape, "checkpoint tensor '", e.name, "' is ", dtype_name(se.dtype),
                 " ", se.shape, ", model '", name, "' expects ", dtype_name(e.dtype), " ", e.shape);
    tensors.push_back({e.name, f.view(se)});
  }
  KUMIKI_REQUIRE(f.size() == layout.size(), "checkpoint model '", f.source(), "' holds ", f.size(), " tensors, model '", name,
               "' has ", layout.size());

  fs::path const abs_out = fs::absolute(out).lexically_normal();
  fs::path const parent = abs_out.parent_path();
  fs::create_directories(parent);
  detail::TempDir tmp{parent / (".tmp-" + abs_out.filename().string() + "-" + std::to_string(::getpid()))};
  fs::remove_all(tmp.path);
  fs::create_directory(tmp.path);

  nlohmann::ordered_json config = io::hf_config_json(cfg, opt);
  write_file_atomic(tmp.path / "config.json", config.dump(2) + "\n");
  write_file_atomic(tmp.path / "generation_config.json", io::hf_generation_config_json(config).dump(2) + "\n");
  io::ShardOptions so;
  so.max_shard_bytes = opt.max_shard_bytes;
  if (opt.dtype != DType::f32) so.write.floating_dtype = opt.dtype;
  io::write_safetensors_sharded(tmp.path, std::span<io::NamedTensor const>(tensors),
                            {{"format", "pt"}, {"kumiki_model", name}, {"kumiki_checkpoint", dir.filename().string()}}, so);
  if (!opt.tokenizer.empty()) {
    std::string const fname = opt.tokenizer.extension() == ".model" ? "tokenizer.model" : opt.tokenizer.filename().string();
    detail::copy_file_atomic(opt.tokenizer, tmp.path / fname);
  }
  fsync_directory(tmp.path);
  if (fs::exists(abs_out)) fs::remove(abs_out);  // empty (checked above)
  fs::rename(tmp.path, abs_out);
  tmp.keep = true;
  fsync_directory(parent);
  std::vector<fs::path> files;
  for (auto const& e : fs::directory_iterator(abs_out)) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  return files;
}

// ---- import -----------------------------------------------------------------------------------

/// The recipe stored in a weights-only checkpoint: it names the model (and parses, with a placeholder
/// stage). `origin` is its first comment line (where the weights came from). To continue pretraining,
/// place the checkpoint under RUN/checkpoints and run `kumiki train --recipe R --out RUN
/// --allow-recipe-change`, or start a run from it with `kumiki train --init-from`.
inline std::string weights_only_recipe_text(std::string const& name, models::TransformerConfig const& c,
                                            std::string const& origin) {
  return "# " + origin +
         "\n# Weights only: optimizer moments are zero and the step is 0. The stage below is a placeholder:\n"
         "# replace its data (and steps, lr) with a real blend to continue training from these weights.\n"
         "model = \"" + name + "\"\nseq_len = " + std::to_string(c.max_seq_len) +
         "\nglobal_batch = 1\nmicro_batch = 1\n\n[[stages]]\nname = \"imported\"\ndata = [1.0, \"REPLACE_WITH_DATA_PREFIX\"]\n"
         "steps = 1\n[stages.lr]\nlr_decay_style = \"WSD\"\nlr = 1e-4\nmin_lr = 0.0\nlr_warmup_iters = 0\nlr_decay_iters = 1\n"
         "lr_wsd_decay_iters = 1\n";
}

/// The recipe stored in a checkpoint imported from the Hugging Face directory `source`.
inline std::string imported_recipe_text(std::string const& name, models::TransformerConfig const& c,
                                        std::filesystem::path const& source) {
  return weights_only_recipe_text(name, c, "Imported by `kumiki import-hf` from '" + source.string() + "'.");
}

/// Writes the fp32 weights `params` of configuration `name` as a weights-only kumiki checkpoint
/// out_root/step_000000000 (save_weights_checkpoint: zero AdamW moments, step 0, manifest with
/// CRC-32C), with `model_metadata` and the record of the configuration added to the weights' header and
/// `recipe_text` (which must name `name`) as recipe.toml. `params` must have exactly the layout of
/// `name`, a configuration of `Configs`. Returns the checkpoint path.
template <class Configs = models::BuiltinConfigs>
std::filesystem::path write_weights_only_checkpoint(std::filesystem::path const& out_root, std::string const& name,
                                                    Arena<Cpu> const& params, std::string const& recipe_text,
                                                    io::Metadata model_metadata = {}) {
  models::TransformerConfig const c = Configs::find(name);
  KUMIKI_REQUIRE(params.layout() == models::hf::param_layout(c, DType::f32),
                 "the weights to write do not have the parameter layout of model '", name, "'");
  for (auto const& [k, v] : config_metadata(c)) model_metadata[k] = v;
  KUMIKI_REQUIRE(recipe_model_name(recipe_text).value_or("") == name, "the recipe of a '", name,
               "' checkpoint names model '", recipe_model_name(recipe_text).value_or(""), "'");
  KUMIKI_REQUIRE(!std::filesystem::exists(out_root / checkpoint_name(0)), "checkpoint '",
               (out_root / checkpoint_name(0)).string(), "' already exists");
  return save_weights_checkpoint(out_root, params, recipe_text, model_metadata);
}

/// Reads the Hugging Face Llama or Mixtral directory `model_dir` and writes it as a weights-only kumiki
/// checkpoint under `out_root` (write_weights_only_checkpoint; recipe.toml names the matched
/// configuration). Returns the checkpoint path.
/// Its config.json must match a configuration of `Configs`.
template <class Configs = models::BuiltinConfigs>
std::filesystem::path import_hf(std::filesystem::path const& model_dir, std::filesystem::path const& out_root) {
  io::HfModel const m = io::read_hf_model<Configs>(model_dir);
  return write_weights_only_checkpoint<Configs>(out_root, m.config_name, m.params,
                                       imported_recipe_text(m.config_name, Configs::find(m.config_name), model_dir),
                                       {{"imported_from", model_dir.string()}});
}

}  // namespace train
KUMIKI_NAMESPACE_END
