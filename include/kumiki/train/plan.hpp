// kumiki/train/plan.hpp: a training plan in numbers before anything is allocated (a dry run):
// parameters per component, model FLOPs per token, steps and tokens per stage, the learning rate at
// each stage boundary, memory per component for a backend and precision, and the GPU time of the
// whole plan at a stated MFU. Every figure comes from the same code the run uses: the parameter and
// activation arena layouts, the recipe's resolved stages and schedules, the config's FLOPs formula.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "kumiki/config.hpp"
#include "kumiki/core/arena.hpp"
#include "kumiki/core/dtype.hpp"
#include "kumiki/core/error.hpp"
#include "kumiki/models/hf_names.hpp"
#include "kumiki/models/transformer_config.hpp"
#include "kumiki/nn/activation_layout.hpp"
#include "kumiki/optim/adamw.hpp"
#include "kumiki/train/recipe.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace train {

/// The buffers' element types a plan counts memory for.
enum class PlanPrecision : std::uint8_t {
  f32,   ///< Precision<float>: every buffer fp32; AdamW updates the parameters in place (what the CPU trains in)
  bf16,  ///< Precision<bf16, bf16, float, float, float>, as the GPU trains: bf16 weights and activations;
         ///< fp32 row statistics, gradients, master weights and moments. The master weights are kept as
         ///< halves (optim/master.hpp): the bf16 weights are their high half, an arena of low halves the
         ///< rest: 16 bytes a parameter, where Megatron's bf16 copy beside a whole fp32 master needs 18
};
inline std::string_view plan_precision_name(PlanPrecision p) { return p == PlanPrecision::f32 ? "f32" : "bf16"; }

/// An accelerator for the cost estimate: dense bf16 tensor-core peak and memory, vendor datasheet figures.
struct Accelerator {
  std::string name;
  double peak_flops = 0;    ///< FLOP/s, dense (no sparsity)
  double memory_bytes = 0;  ///< bytes (vendor GB, 1e9)
};
/// H100 SXM and H200 SXM: the same Hopper die (989 TFLOP/s dense bf16); 80 GB HBM3 and 141 GB HBM3e.
/// (The memory a program can allocate is somewhat less: cudaMemGetInfo's total, less the CUDA context.)
inline Accelerator h100_sxm() { return {"H100 SXM", 989e12, 80e9}; }
inline Accelerator h200_sxm() { return {"H200 SXM", 989e12, 141e9}; }

struct PlanOptions {
  bool cuda = true;                             ///< arena alignment of the CUDA allocator (256 B), else the host's
  PlanPrecision precision = PlanPrecision::bf16;
  bool recompute = false;                       ///< activation recomputation (one block's activations kept)
  bool light_recompute = false;                 ///< light recomputation (no ln1, no SwiGLU output kept)
  std::int64_t loss_chunk = 256;                ///< nn::StepOptions::loss_chunk
  Accelerator gpu = h200_sxm();
  std::int64_t gpus = 64;                       ///< for the wall-clock estimate, and the data-parallel ranks
  int zero = -1;                                ///< ZeRO stage of the memory rows: -1 each recipe's [parallel] zero,
                                                ///< 0 every rank holds the whole state, 1 the optimizer state over `gpus` ranks
  double mfu = 0.4;                             ///< model FLOPs utilization assumed for the estimate
};

/// cuBLASLt's workspace in the CUDA op context (ops/cuda/context.cuh: Ctx<Cuda>::workspace_bytes).
inline constexpr std::int64_t cublaslt_workspace_bytes = std::int64_t{32} << 20;
/// What a CUDA plan keeps free beyond its buffers: the ops' scratch (grown on demand; the largest, the
/// embedding backward's sort and the GEMMs' widening, are a few hundred MiB at most at these shapes),
/// the allocator's rounding and cuBLASLt's own allocations.
inline constexpr std::int64_t cuda_reserve_bytes = std::int64_t{1} << 30;

/// One group of parameters: `tensors` tensors holding `params` elements in all.
struct ParamRow {
  std::string name;
  std::int64_t tensors = 0;
  std::int64_t params = 0;
};

/// One stage of one recipe. A stage with seeds runs once per seed (`runs`): its tokens and FLOPs count
/// every run.
struct StageRow {
  std::string recipe, stage;
  std::int64_t first_step = 0, steps = 0, seq_len = 0, global_batch = 0, micro_batch = 0, runs = 1;
  std::int64_t tokens = 0;           ///< steps x global_batch x seq_len x runs: tokens trained on
  double lr_start = 0, lr_end = 0;   ///< the stage's schedule at its first step and at its end boundary
  double flops_per_token = 0;        ///< at the stage's seq_len
  double flops = 0;                  ///< tokens x flops_per_token
};

/// Bytes of each buffer for one recipe: the largest (micro_batch, seq_len) of its stages.
struct MemoryPlan {
  std::string recipe;
  std::int64_t micro_batch = 0, seq_len = 0;
  int zero = 0;                  ///< ZeRO stage the rows assume
  std::int64_t ranks = 1;        ///< ranks the optimizer state is split over (1 without ZeRO-1)
  std::vector<std::pair<std::string, std::int64_t>> rows;  ///< name, bytes on one rank
  std::int64_t total = 0;
  double state_bytes_per_param = 0;  ///< parameters, gradients, master weights and moments per parameter, on one rank
};

struct Plan {
  std::string model;
  models::TransformerConfig config;
  PlanOptions options;
  std::vector<ParamRow> params;
  std::int64_t total_params = 0;
  std::vector<StageRow> stages;
  std::vector<MemoryPlan> memory;
  double total_tokens = 0, total_flops = 0;
  double gpu_days = 0;  ///< total_flops / (peak x MFU) in days on one GPU
  double days() const { return gpu_days / static_cast<double>(options.gpus); }
};

namespace detail {
inline std::string_view param_group(std::string_view name) {
  auto has = [&](std::string_view s) { return name.find(s) != std::string_view::npos; };
  if (name == models::hf::embedding_name) return "embedding";
  if (name == models::hf::lm_head_name) return "lm head";
  if (name == models::hf::final_norm_name) return "final norm";
  if (has("layernorm")) return "block norms";
  if (has(".self_attn.")) return "attention q, k, v, o";
  if (has(".block_sparse_moe.gate.")) return "router";
  return "mlp";  // gate, up, down or every expert's w1, w3, w2
}
inline std::int64_t bytes_of(ArenaLayout const& l) { return static_cast<std::int64_t>(l.total_bytes()); }
}  // namespace detail

/// The plan of `recipes` (run one after another, e.g. pretraining then mid-training) for `config`.
/// Every recipe must name the model `model`.
inline Plan make_plan(std::string model, models::TransformerConfig const& config, std::vector<Recipe> const& recipes,
                      PlanOptions const& opt = {}) {
  KUMIKI_REQUIRE(opt.gpus > 0 && opt.mfu > 0 && opt.mfu <= 1 && opt.gpu.peak_flops > 0,
                 "a plan needs gpus > 0, 0 < mfu <= 1 and a peak > 0");
  Plan p;
  p.model = std::move(model);
  p.config = config;
  p.options = opt;
  std::size_t const align = opt.cuda ? 256 : host_alignment;
  bool const bf16 = opt.precision == PlanPrecision::bf16;
  DType const param_t = bf16 ? DType::bf16 : DType::f32, act_t = param_t, stat_t = DType::f32;

  ArenaLayout const layout = models::hf::param_layout(config, param_t);
  for (auto const& e : layout.entries()) {
    std::string_view const g = detail::param_group(e.name);
    auto it = std::find_if(p.params.begin(), p.params.end(), [&](ParamRow const& r) { return r.name == g; });
    if (it == p.params.end()) it = p.params.insert(p.params.end(), ParamRow{std::string(g), 0, 0});
    it->tensors += 1;
    it->params += static_cast<std::int64_t>(e.numel());
    p.total_params += static_cast<std::int64_t>(e.numel());
  }
  KUMIKI_CHECK(p.total_params == config.num_params(), "parameter layout disagrees with the config's count");
  // The same for every recipe: the parameters as the device's arena places them, and their fp32 twin
  // (gradients, master weights, each AdamW moment).
  std::int64_t const param_bytes = detail::bytes_of(layout.with_alignment(align));
  std::int64_t const f32_bytes = detail::bytes_of(optim::master_layout(layout).with_alignment(align));

  for (Recipe const& r : recipes) {
    KUMIKI_REQUIRE(r.model == p.model, "recipe '", r.source, "' trains model '", r.model, "', not '", p.model, "'");
    MemoryPlan mem;
    std::string const recipe_name = std::filesystem::path(r.source).filename().string();
    mem.recipe = recipe_name;
    for (std::size_t i = 0; i < r.stages.size(); ++i) {
      StageRecipe const& s = r.stages[i];
      StageRow row;
      row.recipe = recipe_name, row.stage = s.name;
      row.first_step = r.stage_start(i), row.steps = s.steps, row.seq_len = s.seq_len;
      row.global_batch = r.global_batch, row.micro_batch = r.micro_batch;
      row.runs = s.seeds.empty() ? 1 : static_cast<std::int64_t>(s.seeds.size());
      row.tokens = s.steps * r.global_batch * s.seq_len * row.runs;
      row.lr_start = r.lr_segments[i].lr(row.first_step);
      row.lr_end = r.lr_segments[i].lr(row.first_step + s.steps);
      row.flops_per_token = config.flops_per_token(s.seq_len);
      row.flops = static_cast<double>(row.tokens) * row.flops_per_token;
      p.total_tokens += static_cast<double>(row.tokens);
      p.total_flops += row.flops;
      p.stages.push_back(row);
      if (s.seq_len * r.micro_batch > mem.seq_len * mem.micro_batch) mem.seq_len = s.seq_len, mem.micro_batch = r.micro_batch;
    }
    // ZeRO-1 over d ranks: each keeps 1/d of the fp32 optimizer state (master weights and moments); the
    // parameters and the gradients (reduce-scattered in place) stay whole.
    mem.zero = opt.zero >= 0 ? opt.zero : static_cast<int>(r.parallel.zero);
    KUMIKI_REQUIRE(mem.zero == 0 || mem.zero == 1, "a plan's ZeRO stage must be 0 or 1, got ", mem.zero);
    mem.ranks = mem.zero == 1 ? opt.gpus : 1;
    std::string const per = mem.ranks > 1 ? ", 1/" + std::to_string(mem.ranks) : "";
    auto const part = [&](std::int64_t bytes) { return (bytes + mem.ranks - 1) / mem.ranks; };
    // bf16: the weights are the master weights' high halves; the low halves have the weights' layout.
    mem.rows.emplace_back(bf16 ? "parameters (bf16: the master weights' high halves)" : "parameters (f32)", param_bytes);
    if (bf16) mem.rows.emplace_back("master weights' low halves (16 bits" + per + ")", part(param_bytes));
    mem.rows.emplace_back("gradients (f32)", f32_bytes);
    mem.rows.emplace_back("AdamW moments (2 x f32" + per + ")", part(2 * f32_bytes));
    std::int64_t state = 0;
    for (auto const& [name, bytes] : mem.rows) state += bytes;
    mem.state_bytes_per_param = static_cast<double>(state) / static_cast<double>(p.total_params);
    mem.rows.emplace_back("activations (" + std::to_string(mem.micro_batch) + " x " + std::to_string(mem.seq_len) +
                              (opt.recompute ? ", recompute)" : opt.light_recompute ? ", light recompute)" : ")"),
                          detail::bytes_of(nn::activation_layout(config, mem.micro_batch, mem.seq_len, opt.recompute,
                                                                 opt.loss_chunk, act_t, stat_t, align,
                                                                 opt.light_recompute)));
    if (opt.cuda) {
      mem.rows.emplace_back("cuBLASLt workspace", cublaslt_workspace_bytes);
      mem.rows.emplace_back("reserve: op scratch, allocator, cuBLASLt", cuda_reserve_bytes);
    }
    for (auto const& [name, bytes] : mem.rows) mem.total += bytes;
    p.memory.push_back(std::move(mem));
  }
  p.gpu_days = p.total_flops / (opt.gpu.peak_flops * opt.mfu) / 86400.0;
  return p;
}

/// Whether every recipe's buffers fit the plan's device memory (a CUDA plan; the CPU's is not judged).
inline bool plan_fits(Plan const& p) {
  return std::all_of(p.memory.begin(), p.memory.end(),
                     [&](MemoryPlan const& m) { return static_cast<double>(m.total) <= p.options.gpu.memory_bytes; });
}

/// The plan as JSON (what a test or a notebook reads).
inline nlohmann::json plan_json(Plan const& p) {
  nlohmann::json j;
  j["model"] = p.model;
  auto const& c = p.config;
  j["config"] = {{"vocab_size", c.vocab_size}, {"padded_vocab", c.padded_vocab()}, {"hidden", c.hidden},
                 {"ffn_hidden", c.ffn_hidden}, {"num_layers", c.num_layers}, {"num_heads", c.num_heads},
                 {"num_query_groups", c.num_query_groups}, {"max_seq_len", c.max_seq_len}};
  j["params"] = nlohmann::json::array();
  for (auto const& r : p.params) j["params"].push_back({{"name", r.name}, {"tensors", r.tensors}, {"params", r.params}});
  j["total_params"] = p.total_params;
  j["stages"] = nlohmann::json::array();
  for (auto const& s : p.stages)
    j["stages"].push_back({{"recipe", s.recipe}, {"stage", s.stage}, {"first_step", s.first_step}, {"steps", s.steps},
                           {"seq_len", s.seq_len}, {"global_batch", s.global_batch}, {"micro_batch", s.micro_batch},
                           {"runs", s.runs}, {"tokens", s.tokens}, {"lr_start", s.lr_start}, {"lr_end", s.lr_end},
                           {"flops_per_token", s.flops_per_token}, {"flops", s.flops}});
  j["memory"] = nlohmann::json::array();
  for (auto const& m : p.memory) {
    nlohmann::json rows = nlohmann::json::array();
    for (auto const& [name, bytes] : m.rows) rows.push_back({{"name", name}, {"bytes", bytes}});
    j["memory"].push_back({{"recipe", m.recipe}, {"micro_batch", m.micro_batch}, {"seq_len", m.seq_len},
                           {"zero", m.zero}, {"ranks", m.ranks}, {"rows", rows}, {"total", m.total},
                           {"state_bytes_per_param", m.state_bytes_per_param}});
  }
  auto const& o = p.options;
  j["options"] = {{"backend", o.cuda ? "cuda" : "cpu"}, {"precision", plan_precision_name(o.precision)},
                  {"recompute", o.recompute}, {"light_recompute", o.light_recompute}, {"loss_chunk", o.loss_chunk},
                  {"gpu", o.gpu.name},
                  {"peak_flops", o.gpu.peak_flops}, {"gpu_memory_bytes", o.gpu.memory_bytes}, {"gpus", o.gpus},
                  {"mfu", o.mfu}};
  j["total_tokens"] = p.total_tokens;
  j["total_flops"] = p.total_flops;
  j["gpu_days"] = p.gpu_days;
  j["days"] = p.days();
  return j;
}

namespace detail {
/// 1234567 -> "1,234,567".
inline std::string grouped(std::int64_t v) {
  std::string d = std::to_string(v < 0 ? -v : v), out;
  for (std::size_t i = 0; i < d.size(); ++i) {
    if (i > 0 && (d.size() - i) % 3 == 0) out += ',';
    out += d[i];
  }
  return v < 0 ? "-" + out : out;
}
inline std::string fmt(char const* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}
inline std::string gib(std::int64_t bytes) { return fmt("%.2f GiB", static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0)); }
}  // namespace detail

/// One recipe's memory as markdown table rows: every buffer, then the total (the header is the caller's).
inline void print_memory_rows(std::ostream& os, MemoryPlan const& m) {
  for (auto const& [name, bytes] : m.rows)
    os << "| " << name << " | " << detail::grouped(bytes) << " | " << detail::gib(bytes) << " |\n";
  os << "| **total** | **" << detail::grouped(m.total) << "** | **" << detail::gib(m.total) << "** |\n";
}

/// The plan as a report for people: markdown tables.
inline void print_plan(std::ostream& os, Plan const& p) {
  using detail::fmt;
  using detail::grouped;
  auto const& c = p.config;
  auto const& o = p.options;
  os << "# " << p.model << ": the plan, before any allocation\n\n"
     << "hidden " << c.hidden << ", ffn " << c.ffn_hidden << ", " << c.num_layers << " layers, " << c.num_heads
     << " heads, " << c.num_query_groups << " KV groups (head_dim " << c.head_dim() << "), vocabulary " << c.vocab_size
     << " padded to " << c.padded_vocab() << ", max_seq_len " << c.max_seq_len << "\n\n";
  os << "## Parameters\n\n| component | tensors | parameters |\n|---|---:|---:|\n";
  for (auto const& r : p.params) os << "| " << r.name << " | " << r.tensors << " | " << grouped(r.params) << " |\n";
  os << "| **total** | | **" << grouped(p.total_params) << "** |\n\n";

  os << "## Model FLOPs per token (Megatron-LM's formula: 6 x matmul parameters + 6 x layers x hidden x seq, causal "
        "attention counted half)\n\n";
  std::vector<std::int64_t> seqs;
  for (auto const& s : p.stages)
    if (std::find(seqs.begin(), seqs.end(), s.seq_len) == seqs.end()) seqs.push_back(s.seq_len);
  for (auto const seq : seqs) os << "- seq " << seq << ": " << fmt("%.4e", c.flops_per_token(seq)) << " FLOPs\n";
  os << "\n## Stages\n\n| recipe | stage | steps | first step | seq | global batch | runs | tokens | lr at start | lr at end "
        "| FLOPs |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  for (auto const& s : p.stages)
    os << "| " << s.recipe << " | " << s.stage << " | " << grouped(s.steps) << " | " << grouped(s.first_step) << " | "
       << s.seq_len << " | " << s.global_batch << " | " << s.runs << " | " << grouped(s.tokens) << " | "
       << fmt("%.4g", s.lr_start) << " | " << fmt("%.4g", s.lr_end) << " | " << fmt("%.4e", s.flops) << " |\n";
  os << "\n" << fmt("%.4e", p.total_tokens) << " tokens, " << fmt("%.4e", p.total_flops) << " model FLOPs in all.\n\n";

  os << "## Memory on one " << (o.cuda ? "GPU" : "CPU") << " (" << (o.cuda ? "CUDA" : "CPU") << " arenas, "
     << plan_precision_name(o.precision) << ")\n\n";
  for (auto const& m : p.memory) {
    os << "### " << m.recipe << " ("
       << (m.zero == 1 ? "ZeRO-1: the optimizer state over " + std::to_string(m.ranks) + " ranks" : std::string("no sharding"))
       << ")\n\n| buffer | bytes | GiB |\n|---|---:|---:|\n";
    print_memory_rows(os, m);
    os << "\n";
    os << "Parameters, gradients and optimizer state: " << fmt("%.3f", m.state_bytes_per_param)
       << " bytes a parameter on each rank" << (o.precision == PlanPrecision::bf16 ? " (2 + 4 + (2 + 8)/d" : " (4 + 4 + 8/d")
       << ", d = " << m.ranks << ", and the arenas' alignment).\n\n";
    if (o.cuda)
      os << (static_cast<double>(m.total) <= o.gpu.memory_bytes ? "Fits" : "Does not fit") << " in one " << o.gpu.name
         << "'s " << fmt("%.0f", o.gpu.memory_bytes / 1e9) << " GB"
         << (static_cast<double>(m.total) <= o.gpu.memory_bytes ? "" : ": shard the optimizer state (ZeRO-1) or recompute")
         << ".\n\n";
  }
  os << "## Cost\n\n"
     << fmt("%.4e", p.total_flops) << " FLOPs at " << fmt("%.0f", o.mfu * 100) << "% MFU of " << o.gpu.name << " ("
     << fmt("%.1f", o.gpu.peak_flops / 1e12) << " TFLOP/s dense bf16): " << fmt("%.0f", p.gpu_days) << " GPU-days, "
     << fmt("%.1f", p.days()) << " days on " << o.gpus << " GPUs.\n";
}

}  // namespace train
KUMIKI_NAMESPACE_END
