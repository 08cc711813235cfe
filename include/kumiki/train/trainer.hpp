// kumiki/train/trainer.hpp: the multi-stage training loop on any backend: gradient accumulation, the
// data-parallel gradient reduction, clipping, AdamW, per-stage data blends and schedules, held-out
// evaluation, JSONL logs, checkpoints with exact resume, non-finite step handling, loss and
// gradient-norm spikes (skipped steps, rollbacks with data skip: train/spikes.hpp), and a clean stop
// on SIGINT / SIGTERM.
#pragma once

#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "kumiki/config.hpp"
#include "kumiki/core/arena.hpp"
#include "kumiki/core/buffer.hpp"
#include "kumiki/core/error.hpp"
#include "kumiki/core/json.hpp"
#include "kumiki/core/precision.hpp"
#include "kumiki/data/batch.hpp"
#include "kumiki/data/blended_dataset.hpp"
#include "kumiki/data/gpt_dataset.hpp"
#include "kumiki/dist/comm.hpp"
#include "kumiki/dist/zero.hpp"
#include "kumiki/core/atomic_file.hpp"
#include "kumiki/nn/transformer.hpp"
#include "kumiki/ops/context.hpp"
#include "kumiki/ops/fill.hpp"
#include "kumiki/optim/adamw.hpp"
#include "kumiki/optim/clip.hpp"
#include "kumiki/optim/master.hpp"
#include "kumiki/train/checkpoint.hpp"
#include "kumiki/train/checkpoint_dir.hpp"
#include "kumiki/train/log.hpp"
#include "kumiki/train/recipe.hpp"
#include "kumiki/train/soup.hpp"
#include "kumiki/train/spikes.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace train {

namespace fs = std::filesystem;

/// Run-time options of `kumiki train` that are not part of the recipe (they never change results).
struct TrainerOptions {
  bool progress = true;               ///< print the progress line to stderr
  std::int64_t progress_every = 1;    ///< steps between progress lines
  bool allow_recipe_change = false;   ///< resume even when the recipe differs from the checkpoint's
  nn::StepOptions step{};             ///< recompute, loss chunk, reset-attention-mask settings
  /// Reads the weights to start from instead of the seeded init (fine-tuning, continued pretraining
  /// of an imported model); they must have the model's parameter layout, and the optimizer starts fresh
  /// at step 0. Called only when the run has no valid checkpoint: a resumed run's own checkpoint wins.
  std::function<Arena<Cpu>()> init_weights;
  std::string init_source;            ///< where init_weights reads from, for messages
  /// A kumiki checkpoint to start from with its weights and its AdamW state (moments and step
  /// count), its training position left behind: the run starts at step 0 of the recipe. What a
  /// micro-anneal or a mid-training stage does with the end of pretraining. Used only when the run
  /// has no checkpoint of its own; exclusive with init_weights.
  fs::path init_checkpoint;
  /// Test hook "<point>:<step>[@<rollbacks>]": the process kills itself (SIGKILL) at that point of
  /// that step, after that many rollbacks (default 0) (points: "step" after a step, "checkpoint" inside
  /// a checkpoint write before its manifest, "rollback" inside a rollback, after the abandoned
  /// checkpoints are removed and before the reload). The resume tests set it (through the kumiki
  /// CLI's KUMIKI_CRASH_AT); empty: never. In the run of one seed of a stage with `seeds` a point is
  /// prefixed "seed<seed>:" ("seed666:step:12"); "soup:<step>" kills inside the soup that ends it.
  std::string crash_at;
  int crash_signal = SIGKILL;  ///< the signal crash_at raises (SIGSTOP: a rank that hangs, for the timeout test)
  /// Test hook: the loss and the gradients of the steps that read these global data batches are
  /// multiplied by `factor` (a synthetic spike). A data batch is counted over the whole recipe:
  /// stage start + stage step + the batches rollbacks skipped, so after a rollback that skips them
  /// the spike is not read again. The spike tests set it (the CLI's KUMIKI_SPIKE_AT, "FIRST[-LAST]:FACTOR").
  struct SpikeInjection {
    std::int64_t first = -1, last = -1;
    double factor = 1.0;
    bool covers(std::int64_t batch) const { return batch >= first && batch <= last; }
  } spike_at;
  /// Set by the trainer itself for the runs of a stage with `seeds` (train/recipe.hpp), never by a
  /// user: the run stops after step `stop_after`, and stage `stage` reads its data in the order of
  /// `seed`. Such a run lives in OUT/seeds/<stage>-seed<seed>/ and starts from a copy of the main
  /// run's checkpoint at the stage start.
  struct SeedRun {
    std::int64_t stage = -1;
    std::uint64_t seed = 0;
    std::int64_t stop_after = 0;
  } seed_run;
};

/// Parses the spike hook "FIRST[-LAST]:FACTOR" (data batches, a factor > 0); `source` names its origin.
inline TrainerOptions::SpikeInjection parse_spike_injection(std::string const& text, std::string const& source) {
  TrainerOptions::SpikeInjection h;
  auto const colon = text.find(':');
  KUMIKI_REQUIRE(colon != std::string::npos, source, " is '", text, "', expected FIRST[-LAST]:FACTOR (data batches, a factor)");
  std::string const range = text.substr(0, colon), factor = text.substr(colon + 1);
  auto const dash = range.find('-');
  try {
    std::size_t used = 0;
    h.first = std::stoll(range.substr(0, dash), &used);
    h.last = dash == std::string::npos ? h.first : std::stoll(range.substr(dash + 1));
    h.factor = std::stod(factor, &used);
    KUMIKI_REQUIRE(used == factor.size(), source, ": trailing characters in the factor '", factor, "'");
  } catch (std::logic_error const&) {
    KUMIKI_FAIL(source, " is '", text, "', expected FIRST[-LAST]:FACTOR (data batches, a factor)");
  }
  KUMIKI_REQUIRE(h.first >= 0 && h.last >= h.first && h.factor > 0 && std::isfinite(h.factor), source, " is '", text,
                 "': needs 0 <= FIRST <= LAST and a finite factor > 0");
  return h;
}

/// How a run ended.
enum class RunOutcome { completed, interrupted, stopped_nonfinite, stopped_spikes };

namespace detail {

inline std::atomic<int> stop_signal{0};
extern "C" inline void on_stop_signal(int sig) { stop_signal.store(sig); }

/// Installs SIGINT / SIGTERM handlers for the lifetime of the object, restoring the old ones after.
class StopSignals {
 public:
  StopSignals() {
    stop_signal.store(0);
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int_);
    sigaction(SIGTERM, &sa, &old_term_);
  }
  StopSignals(StopSignals const&) = delete;
  StopSignals& operator=(StopSignals const&) = delete;
  ~StopSignals() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
  }
  int signal() const { return stop_signal.load(); }

 private:
  struct sigaction old_int_ {};
  struct sigaction old_term_ {};
};

/// TrainerOptions::crash_at: SIGKILL when `spec` is "<point>:<step>" (no rollback yet) or
/// "<point>:<step>@<rollbacks>". In the run of a seeded stage the point is "seed<seed>:<point>".
inline void maybe_crash(std::string const& spec, std::string const& point, std::int64_t step, std::int64_t rollbacks = 0,
                        int signal = SIGKILL) {
  if (spec.empty()) return;
  std::string const at = point + ":" + std::to_string(step);
  if (spec == at + "@" + std::to_string(rollbacks) || (rollbacks == 0 && spec == at)) {
    std::fflush(nullptr);
    std::raise(signal);
  }
}

inline double peak_rss_mb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;  // Linux reports KiB
}

/// Keeps the log lines that precede `step` completed steps after `rollbacks` rollbacks (an eval or a
/// soup at `step` itself came before that step's checkpoint, so it stays): a resumed run
/// then writes exactly the lines an uninterrupted run would have written after that point. Lines of
/// earlier branches (fewer rollbacks: the steps a rollback abandoned, and the rollback itself) stay.
inline void truncate_log(fs::path const& path, std::int64_t step, std::int64_t rollbacks) {
  if (!fs::exists(path)) return;
  std::string kept;
  std::size_t line = 0;
  for (auto const& j : read_jsonl(path.string())) {
    ++line;
    auto const t = j.find("type");
    auto const st = j.find("step");
    auto const rb = j.find("rollbacks");
    KUMIKI_REQUIRE(st == j.end() || st->is_number_integer(), "log file '", path.string(), "' line ", line,
                   ": \"step\" is ", ::kumiki::detail::json_describe(*st), ", expected an integer");
    KUMIKI_REQUIRE(rb == j.end() || rb->is_number_integer(), "log file '", path.string(), "' line ", line,
                   ": \"rollbacks\" is ", ::kumiki::detail::json_describe(*rb), ", expected an integer");
    std::string const type = t != j.end() && t->is_string() ? t->get<std::string>() : std::string();
    std::int64_t const s = st == j.end() ? 0 : st->get<std::int64_t>();
    std::int64_t const r = rb == j.end() ? 0 : rb->get<std::int64_t>();
    bool const keep = r < rollbacks || (r == rollbacks && ((type == "eval" || type == "soup") ? s <= step : s < step));
    if (keep) kept += j.dump() + "\n";
  }
  write_file_atomic(path, kept);
}

/// "sample 12 of dataset 'data/en_text_document'", for errors about a sample's content.
inline std::string describe_sample(data::GptDataset const& ds, std::int64_t i) {
  return "sample " + std::to_string(i) + " of dataset '" + ds.indexed_dataset().prefix().string() + "'";
}

/// A micro-batch's token ids where a model on `Backend` reads them (ops::Upload): the host vectors
/// themselves on the CPU; on a GPU device buffers filled by asynchronous copies queued on the model's
/// stream, so that the host fills the next micro-batch while the device still runs this one.
template <class Backend>
class TokenStage {
 public:
  std::pair<std::int32_t const*, std::int32_t const*> place(ops::Ctx<Backend>& ctx, std::vector<std::int32_t> const& tokens,
                                                            std::vector<std::int32_t> const& targets) {
    KUMIKI_CHECK(targets.size() == tokens.size(), "tokens and targets differ in size");
    std::size_t const bytes = tokens.size() * sizeof(std::int32_t);
    return {static_cast<std::int32_t const*>(upload_.put(ctx, 0, tokens.data(), bytes)),
            static_cast<std::int32_t const*>(upload_.put(ctx, 1, targets.data(), bytes))};
  }

 private:
  ops::Upload<Backend> upload_;
};

}  // namespace detail

/// Mean loss of `model` over the first `batches` micro-batches of `mb` samples of a GPT dataset.
template <class Model>
double mean_loss(Model& model, data::GptDataset const& ds, std::int64_t seq_len, std::int64_t mb, std::int64_t batches,
                 nn::StepOptions const& opt = {}) {
  KUMIKI_REQUIRE(batches > 0 && batches * mb <= ds.size(), "eval set holds ", ds.size(), " samples, fewer than ", batches,
               " x ", mb);
  std::vector<std::int32_t> sample, tokens, targets;
  detail::TokenStage<typename Model::backend> stage;
  nn::StepOptions deferred = opt;
  deferred.defer_loss = true;  // on a GPU the losses are read once, after the last batch
  std::vector<nn::LossResult> losses;
  for (std::int64_t b = 0; b < batches; ++b) {
    data::fill_batch([&](std::int64_t r, std::int32_t* dst) { ds.get(b * mb + r, dst); },
               [&](std::int64_t r) { return detail::describe_sample(ds, b * mb + r); }, mb, seq_len,
               Model::config.vocab_size, sample, tokens, targets);
    auto const [tok, tgt] = stage.place(model.context(), tokens, targets);
    losses.push_back(model.forward(tok, tgt, mb, seq_len, deferred));
  }
  model.settle_losses(losses);
  double sum = 0;
  for (nn::LossResult const& l : losses) sum += l.loss;
  return sum / static_cast<double>(batches);
}

/// Mean loss of `model` over samples [0, samples) of a GPT dataset in micro-batches of at most `mb`
/// (the last one may be smaller), each sample weighted equally; `progress(done)` is called after each
/// micro-batch. `kumiki eval`'s full pass.
template <class Model, class Progress>
double mean_loss_over(Model& model, data::GptDataset const& ds, std::int64_t seq_len, std::int64_t mb, std::int64_t samples,
                      Progress&& progress, nn::StepOptions const& opt = {}) {
  KUMIKI_CHECK(samples > 0 && samples <= ds.size() && mb > 0, "evaluating ", samples, " of ", ds.size(), " samples");
  std::vector<std::int32_t> sample, tokens, targets;
  detail::TokenStage<typename Model::backend> stage;
  double sum = 0;
  for (std::int64_t b0 = 0; b0 < samples; b0 += mb) {
    std::int64_t const rows = std::min(mb, samples - b0);
    data::fill_batch([&](std::int64_t r, std::int32_t* dst) { ds.get(b0 + r, dst); },
               [&](std::int64_t r) { return detail::describe_sample(ds, b0 + r); }, rows, seq_len,
               Model::config.vocab_size, sample, tokens, targets);
    auto const [tok, tgt] = stage.place(model.context(), tokens, targets);
    sum += model.forward(tok, tgt, rows, seq_len, opt) * static_cast<double>(rows);
    progress(b0 + rows);
  }
  return sum / static_cast<double>(samples);
}

/// Trains `nn::Transformer<Cfg, Backend>` through the stages of a recipe, writing into `out`:
/// log.jsonl, checkpoints/step_*/ and, at the end, the last checkpoint. Rerunning with the same
/// recipe and directory resumes from the newest complete checkpoint.
///
/// One step: zero the gradients; forward + backward over the micro-batches (gradient accumulation);
/// `comm.reduce_gradients` (nothing for one process; the data-parallel all-reduce or reduce-scatter
/// otherwise); the gradient norm (summed over ranks) and clipping; the AdamW update; log, evaluate,
/// checkpoint. Checkpoints and initial weights cross devices through host staging copies only.
/// \tparam Cfg     a TransformerConfig
/// \tparam Backend device tag (`Cpu`; `Cuda` once its ops exist)
/// \tparam Comm    a dist::Communicator (dist::NoComm: one process; dist::MpiComm: the ranks of an MPI
///                 launch, dist/mpi.hpp: each its slice of every global batch, rank 0 writing)
/// \tparam P       the model's precision policy (core/precision.hpp)
template <auto Cfg, class Backend = Cpu, class Comm = dist::NoComm, class P = Precision<float>>
  requires dist::Communicator<Comm, Backend>
class Trainer {
 public:
  using Model = nn::Transformer<Cfg, Backend, P>;
  /// bf16 weights: the fp32 master weights are kept as two halves (optim/master.hpp), the model's bf16
  /// arena and an arena of low halves, 16 bytes a parameter with the fp32 gradients and moments. Without
  /// them (Precision<float>) AdamW updates the parameter arena in place.
  static constexpr bool halves = !Model::precision::uniform;
  static_assert((std::is_same_v<typename Model::param_type, float> && Model::precision::uniform) ||
                    (std::is_same_v<typename Model::param_type, bf16> && std::is_same_v<typename Model::grad_type, float> &&
                     std::is_same_v<typename Model::precision::master, float>),
                "kumiki: the trainer trains Precision<float> (the parameters are the master weights) or bf16 weights "
                "with fp32 gradients and fp32 master weights, e.g. Precision<bf16, bf16, float, float, float>");

  Trainer(Trainer const&) = delete;
  Trainer& operator=(Trainer const&) = delete;
  /// Unwinding from an error, a communicator that can (NcclComm) is aborted first: freeing the device
  /// memory below waits for the GPU, which must not wait for a collective whose peers are gone.
  ~Trainer() {
    if constexpr (requires { comm_.abort(); })
      if (std::uncaught_exceptions() > 0) comm_.abort();
  }

  Trainer(Recipe recipe, fs::path out, TrainerOptions options = {}, Comm comm = {})
      : recipe_(std::move(recipe)),
        out_(std::move(out)),
        options_(options),
        comm_(std::move(comm)),
        model_(std::make_unique<Model>()),
        zero_(zero_sharded(recipe_, comm_)),
        partition_(dist::zero_partition(model_->grads().layout(), zero_ ? comm_.size() : 1)),
        opt_(model_->grads().layout(), adamw_config(recipe_.optimizer), {}, partition_.range(zero_ ? comm_.rank() : 0)) {
    require_recipe_model<Cfg>(recipe_);
    check_data_parallel();
    if constexpr (dist::ZeroCommunicator<Comm, Backend>)
      if (zero_) comm_.set_owners(partition_.floats);  // the backward's buckets go to their owners
    if constexpr (halves) {
      // The low halves of this rank's part only (all of them without ZeRO-1), as the moments.
      low_.emplace(optim::shard_layout(model_->params().layout(), opt_.range()));
      if (zero_) weight_bounds_ = dist::arena_bounds(model_->params().layout(), partition_.elements);
    } else {
      KUMIKI_CHECK(model_->grads().layout().total_bytes() == model_->params().layout().total_bytes(),
                   "the gradient and parameter arenas must share their offsets (ZeRO-1 moves them by position)");
    }
    fs::create_directories(out_);
    cache_dir_ = recipe_.data_cache.empty() ? out_ / "data-cache" : fs::path(recipe_.data_cache);
  }

  Model& model() { return *model_; }
  TrainState const& state() const { return state_; }

  /// Runs (or resumes) the recipe to its end, an interruption, or a non-finite stop.
  RunOutcome run() {
    detail::StopSignals signals;
    fs::path const ckpt_root = out_ / "checkpoints";
    if (lead()) prune_checkpoints(ckpt_root, 0);  // leftovers of interrupted writes only
    comm_.barrier();
    resume_or_init(ckpt_root);
    // Every rank starts from rank 0's weights, as Megatron's data-parallel wrapper broadcasts them: they
    // are equal already (one seed, one checkpoint), and a broadcast keeps them so whatever initialized them.
    if (comm_.size() > 1) {
      broadcast_arena(model_->params());
      if constexpr (halves)
        if (!zero_) broadcast_arena(*low_);  // with ZeRO-1 each rank holds the low halves of its own part
    }
    JsonlLog log = lead() ? JsonlLog((out_ / "log.jsonl").string()) : JsonlLog();  // off on ranks > 0

    std::int64_t const total = recipe_.total_steps();
    bool const seed_run = options_.seed_run.stage >= 0;
    std::int64_t const stop = seed_run ? options_.seed_run.stop_after : total;
    if (state_.step >= stop) {
      say("kumiki: the ", seed_run ? "seed run" : "recipe", " is already complete (", stop, " steps); nothing to do");
      return RunOutcome::completed;
    }
    auto const run_start = std::chrono::steady_clock::now();
    double ema_step_s = 0;
    optim::NonFiniteGuard guard = nonfinite_guard();

    while (state_.step < stop) {
      std::size_t const si = static_cast<std::size_t>(state_.stage_index);
      StageRecipe const& stage = recipe_.stages[si];
      if (state_.stage_step == 0 && !stage.seeds.empty() && !seed_run) {
        RunOutcome const o = run_seeded_stage(si, ckpt_root, log);
        if (o != RunOutcome::completed) return o;
        continue;
      }
      if (state_.stage_step == 0) begin_stage(si, log);
      ensure_stage_data(si);

      SpikePolicy const& sp = stage.spikes;
      SpikeState& spikes = state_.spikes;
      auto const t0 = std::chrono::steady_clock::now();
      double const lr = spikes.lr(recipe_.lr(state_.step), state_.step);
      nn::LossResult const losses = accumulate_gradients(stage);
      // The loss every rank judges and logs: the mean over ranks (the gradients are reduced the same way).
      double const ranks = static_cast<double>(comm_.size());
      double const loss = comm_.all_reduce_sum(losses.loss) / ranks;
      double moe_aux = 0.0, moe_z = 0.0;
      if constexpr (Cfg.is_moe())
        moe_aux = comm_.all_reduce_sum(losses.moe_aux) / ranks, moe_z = comm_.all_reduce_sum(losses.moe_z) / ranks;
      double const objective = loss + moe_aux + moe_z;  // nn::LossResult::objective of the means
      reduce_gradients();
      // Every rank now holds the whole averaged gradient, or with ZeRO-1 its part of it: the norm is the
      // whole one's, or the parts' squares summed over the ranks.
      optim::ClipResult const clip =
          zero_ ? optim::clip_grad_norm(model_->context(), model_->grads(), recipe_.optimizer.clip_grad, opt_.range(), comm_)
                : optim::clip_grad_norm(model_->context(), model_->grads(), recipe_.optimizer.clip_grad);
      bool const finite = std::isfinite(objective) && clip.finite;  // the same verdict on every rank
      optim::StepVerdict const verdict = guard.check(finite ? clip.norm : std::nan(""), state_.step);
      // Spikes: judged against the stage's window of accepted steps, on finite steps only.
      SpikeJudgement judged;
      bool ceiling = false;
      if (finite && sp.detect) {
        judged = spikes.window.judge(loss, clip.norm, sp);
        if (judged.outlier()) ++spikes.outliers_total;
        else spikes.window.push(loss, clip.norm, sp.window);
      }
      if (finite && sp.loss_ceiling > 0 && loss > sp.loss_ceiling) ceiling = true;
      bool const outlier_skip = judged.outlier() && sp.skip;
      std::string skip_reason;
      if (verdict != optim::StepVerdict::apply) skip_reason = "nonfinite";
      else if (ceiling) skip_reason = "loss_ceiling";
      else if (outlier_skip) skip_reason = "outlier";
      if (skip_reason.empty()) {
        if constexpr (halves)
          opt_.step_halves(model_->context(), model_->params(), *low_, model_->grads(), static_cast<float>(lr),
                           opt_.config().weight_decay);
        else
          opt_.step(model_->context(), model_->params(), model_->grads(), static_cast<float>(lr));
        gather_parameters();  // ZeRO-1: every rank's updated part to every rank
        spikes.consecutive = 0;
      } else {
        ++state_.skipped_total;  // no update, and AdamW's step count stays
        if (outlier_skip) ++spikes.consecutive;
      }
      state_.nonfinite_run = guard.consecutive();
      double const step_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

      std::int64_t const step_tokens = recipe_.global_batch * stage.seq_len;
      StepRecord rec;
      rec.step = state_.step;
      rec.stage = stage.name;
      rec.stage_step = state_.stage_step;
      rec.tokens = state_.tokens + step_tokens;
      rec.loss = loss;
      rec.lr = lr;
      rec.grad_norm = clip.norm;
      rec.tokens_per_s = static_cast<double>(step_tokens) / step_s;
      double const flops = Cfg.flops_per_token(stage.seq_len) * rec.tokens_per_s;
      rec.model_flops_per_s = flops;
      rec.mfu = recipe_.peak_flops > 0 ? flops / recipe_.peak_flops : 0.0;
      rec.peak_rss_mb = detail::peak_rss_mb();
      if constexpr (!std::is_same_v<Backend, Cpu>)
        rec.peak_device_mb = static_cast<double>(Allocator<Backend>::peak_bytes()) / (1 << 20);
      if constexpr (dist::OverlappingCommunicator<Comm, Backend>)
        if (comm_.size() > 1) rec.overlapped_buckets = comm_.overlapped_buckets();
      rec.elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - run_start).count();
      rec.skipped = !skip_reason.empty();
      rec.skip_reason = skip_reason;
      rec.spike = judged;
      rec.data_skip = spikes.data_skip_batches;
      rec.rollbacks = spikes.rollbacks;
      if constexpr (Cfg.is_moe()) rec.moe_aux = moe_aux, rec.moe_z = moe_z;
      log.write(rec);
      if (judged.outlier() && options_.progress)
        say("kumiki: step ", rec.step, ": ", judged.kind(), " outlier (loss ", loss, ", z ", judged.loss.z, "; grad norm ",
            clip.norm, ", z ", judged.grad_norm.z, ")", sp.skip ? ": update skipped" : ": logged only (skip = false)");

      ++state_.step;
      ++state_.stage_step;
      state_.tokens += step_tokens;
      ema_step_s = ema_step_s == 0 ? step_s : 0.9 * ema_step_s + 0.1 * step_s;
      if (lead() && options_.progress && (state_.step % options_.progress_every == 0 || state_.step == total))
        std::fprintf(stderr, "%s\n", progress_line(rec, total, ema_step_s * static_cast<double>(total - state_.step)).c_str());
      detail::maybe_crash(options_.crash_at, crash_point("step"), state_.step, spikes.rollbacks, options_.crash_signal);

      // Trouble that skipping alone does not end: too many skipped outliers in a row, a loss above the
      // ceiling, or (with rollback on) the non-finite bound. With rollback: back to the newest
      // checkpoint before it, skipping the data; without: stop, the last good state saved.
      TroubleKind trouble = TroubleKind::none;
      std::int64_t trouble_start = state_.step - 1;
      if (ceiling) {
        trouble = TroubleKind::loss_ceiling;
      } else if (outlier_skip && spikes.consecutive > sp.max_consecutive) {
        trouble = TroubleKind::outliers;
        trouble_start = state_.step - spikes.consecutive;
      } else if (verdict == optim::StepVerdict::stop && sp.rollback) {
        trouble = TroubleKind::nonfinite;
        trouble_start = state_.step - guard.consecutive();
      }
      if (trouble != TroubleKind::none) {
        if (sp.rollback && roll_back(ckpt_root, stage, trouble, trouble_start, log)) {
          guard = nonfinite_guard();
          continue;
        }
        fs::path const dir = checkpoint(ckpt_root, stage);
        std::string const what =
            trouble == TroubleKind::loss_ceiling
                ? kumiki::detail::concat("the loss ", loss, " is above the stage's loss_ceiling ", sp.loss_ceiling)
            : trouble == TroubleKind::outliers
                ? kumiki::detail::concat(spikes.consecutive, " outlier steps skipped in a row (max_consecutive ",
                                         sp.max_consecutive, ")")
                : kumiki::detail::concat(guard.consecutive(), " non-finite steps in a row (max_nonfinite)");
        say("kumiki: stopping at step ", state_.step, ": ", what,
            sp.rollback ? "" : "; set rollback = true in the recipe's [spikes] to roll back instead",
            ". The last state (no update was applied since the trouble began) is in ", dir.string(),
            "; `kumiki spikes ", out_.string(), "` lists the outliers");
        return RunOutcome::stopped_spikes;
      }

      if (verdict == optim::StepVerdict::stop) {
        fs::path const dir = checkpoint(ckpt_root, stage);
        say("kumiki: stopping: ", guard.consecutive(), " non-finite steps in a row (loss or gradient norm); the last "
            "good state (no update was applied since) is in ", dir.string());
        return RunOutcome::stopped_nonfinite;
      }
      bool const stage_end = state_.stage_step == stage.steps;
      if ((stage.eval_interval > 0 && state_.stage_step % stage.eval_interval == 0) || stage_end) evaluate(stage, log);
      bool const want_ckpt =
          stage_end || (stage.checkpoint_interval > 0 && state_.stage_step % stage.checkpoint_interval == 0);
      int const signal = stop_signal(signals);
      if (want_ckpt || signal != 0) checkpoint(ckpt_root, stage);
      if (stage_end && state_.step < total) next_stage();
      if (signal != 0) {
        say("kumiki: received ", signal == SIGINT ? "SIGINT" : "SIGTERM", " at step ", state_.step,
            "; checkpoint written. Resume with the same command: kumiki train --recipe ", recipe_.source, " --out ",
            out_.string());
        return RunOutcome::interrupted;
      }
    }
    if (seed_run) return RunOutcome::completed;
    say("kumiki: training complete: ", total, " steps, ", state_.tokens, " tokens; checkpoints in ", ckpt_root.string());
    return RunOutcome::completed;
  }

 private:
  /// Whether this run shards the optimizer state (ZeRO-1): `[parallel] zero = 1` and more than one rank.
  /// With bf16 weights the shard is the moments and the master weights' low halves; every rank keeps
  /// all the bf16 weights (the forward reads them) and all the fp32 gradients (reduced in place).
  static bool zero_sharded(Recipe const& recipe, Comm const& comm) {
    if (recipe.parallel.zero != 1 || comm.size() == 1) return false;
    if constexpr (dist::ZeroCommunicator<Comm, Backend>) {
      return true;
    } else {
      KUMIKI_FAIL("recipe ", recipe.source, ": [parallel] zero = 1 needs a communicator that can reduce-scatter and "
                  "all-gather (dist::ZeroCommunicator, as dist::MpiComm); set zero = 0 to all-reduce instead");
      return false;
    }
  }

  /// After the micro-batches: the gradients averaged over the ranks, whole on every rank, or (ZeRO-1)
  /// summed into this rank's part by a reduce-scatter and divided there, as the all-reduce path does.
  void reduce_gradients() {
    if constexpr (dist::ZeroCommunicator<Comm, Backend>) {
      if (zero_) {
        comm_.reduce_scatter_sum(model_->context(), reinterpret_cast<float*>(model_->grads().data()), partition_.floats);
        optim::scale_grads(model_->context(), model_->grads(), 1.0f / static_cast<float>(comm_.size()), opt_.range());
        return;
      }
    }
    comm_.reduce_gradients(model_->context(), model_->grads());
  }

  /// ZeRO-1, after an update: each rank's part of the parameters (the fp32 ones, or the bf16 weights:
  /// the high halves of the masters it updated) to every rank.
  void gather_parameters() {
    if constexpr (dist::ZeroCommunicator<Comm, Backend>) {
      if (!zero_) return;
      if constexpr (halves)
        comm_.all_gather(model_->context(), reinterpret_cast<bf16*>(model_->params().data()), weight_bounds_);
      else
        comm_.all_gather(model_->context(), reinterpret_cast<float*>(model_->params().data()), partition_.floats);
    }
  }

  /// A ZeRO-1 checkpoint's whole state, on the host of rank 0 (which writes it): the fp32 master
  /// weights (with halves; else the parameters, whole on every rank, are written as they are) and
  /// the two moments. Each goes in turn through the gradient arena (free between steps: each step
  /// zeroes it first): every rank puts its part in its place there and rank 0 gathers the others'
  /// parts in place, then copies the whole to the host. So no rank holds more state on the device
  /// than it trains with, and no rank but rank 0 more than its part anywhere.
  struct GatheredState {
    std::optional<Arena<Cpu>> master, exp_avg, exp_avg_sq;
  };
  GatheredState gather_state() {
    GatheredState out;
    if constexpr (dist::ZeroCommunicator<Comm, Backend>) {
      Arena<Backend>& g = model_->grads();
      auto* const whole = reinterpret_cast<float*>(g.data());
      float const* const mine = whole + partition_.floats[static_cast<std::size_t>(comm_.rank())];
      auto const to_lead = [&](std::optional<Arena<Cpu>>& host) {
        comm_.gather(model_->context(), mine, lead() ? whole : nullptr, partition_.floats, 0);
        if (lead()) copy(host.emplace(g.layout()), g);
      };
      if constexpr (halves) {
        stage_master();  // this rank's part of the masters, joined into the gradient arena
        to_lead(out.master);
      }
      for (auto [host, part] : {std::pair{&out.exp_avg, &opt_.exp_avg()}, std::pair{&out.exp_avg_sq, &opt_.exp_avg_sq()}}) {
        optim::shard_to_whole(*part, opt_.range(), g);
        to_lead(*host);
      }
    }
    return out;
  }

  /// Reads checkpoint `dir` into the model and the optimizer: with ZeRO-1 every rank reads the whole
  /// weights and its part of the moments (checkpoints hold the whole state), so a checkpoint of any
  /// number of ranks resumes on any other.
  TrainState load_state(fs::path const& dir, std::string* recipe_text) {
    if (!zero_) {
      TrainState s = load_checkpoint(dir, master_staging(), opt_, recipe_text);
      commit_master();
      return s;
    }
    std::int64_t step_count = 0;
    TrainState s =
        load_checkpoint_part(dir, master_staging(), opt_.range(), opt_.exp_avg(), opt_.exp_avg_sq(), step_count, recipe_text);
    commit_master();
    opt_.set_step_count(step_count);
    return s;
  }

  /// The fp32 master weights as an arena of the gradients' layout, for what reads or writes them whole
  /// (initialization, checkpoints, initial weights, the soup): the parameter arena itself, or with
  /// halves the gradient arena, free between steps (each step zeroes it first), which stage_master()
  /// fills from the halves and commit_master() splits back into them. No memory beyond the 16 bytes a
  /// parameter, so a model that trains also checkpoints.
  Arena<Backend>& master_staging() {
    if constexpr (halves) return model_->grads();
    else return model_->params();
  }
  /// halves: the master weights this rank keeps (all of them, or with ZeRO-1 its part) joined into
  /// master_staging() (nothing to do otherwise).
  void stage_master() {
    if constexpr (halves)
      for_each_master_piece([&](float* x, bf16* hi, std::uint16_t* lo, std::int64_t n) {
        optim::MasterSplit<Backend>::join(model_->context(), hi, lo, x, n);
      });
  }
  /// halves: master_staging() (whole on every rank) split into the model's bf16 weights, all of them,
  /// and the low halves this rank keeps.
  void commit_master() {
    if constexpr (halves) {
      if (zero_)
        for (std::size_t i = 0; i < model_->params().layout().size(); ++i)
          optim::MasterSplit<Backend>::split(model_->context(), model_->grads().template get<float>(i).data(),
                                             model_->params().template get<bf16>(i).data(), nullptr,
                                             static_cast<std::int64_t>(model_->params().layout()[i].numel()));
      for_each_master_piece([&](float* x, bf16* hi, std::uint16_t* lo, std::int64_t n) {
        optim::MasterSplit<Backend>::split(model_->context(), x, hi, lo, n);
      });
    }
  }
  /// halves: f(fp32 staging, bf16 weights, low halves, elements) for each piece of the masters this
  /// rank keeps (the optimizer's range: every tensor whole without ZeRO-1).
  template <class F>
  void for_each_master_piece(F&& f) {
    ArenaLayout const& layout = model_->params().layout();
    optim::detail::for_each_shard_piece(layout, low_->layout(), opt_.range(),
                                        [&](std::size_t i, std::size_t w, std::size_t s, std::size_t bytes) {
                                          std::size_t const k = (w - layout[i].offset) / sizeof(bf16);
                                          f(model_->grads().template get<float>(i).data() + k,
                                            model_->params().template get<bf16>(i).data() + k,
                                            reinterpret_cast<std::uint16_t*>(low_->data() + s),
                                            static_cast<std::int64_t>(bytes / sizeof(bf16)));
                                        });
  }
  /// The seeded initialization: the model's own, or with halves the same normals in fp32 (each rounded
  /// once, to fp32) split into halves, so that the master weights are those the CPU starts from.
  void init_weights(std::uint64_t seed) {
    if constexpr (halves) {
      ArenaLayout const& layout = model_->params().layout();
      for (std::size_t i = 0; i < layout.size(); ++i)
        Model::init_tensor(model_->context(), model_->grads().template get<float>(i).data(), layout[i], i, seed);
      commit_master();
    } else {
      model_->init(seed);
    }
  }
  /// The same arena on every rank: rank 0's.
  void broadcast_arena(Arena<Backend>& a) {
    KUMIKI_CHECK(a.total_bytes() % sizeof(float) == 0, "an arena of ", a.total_bytes(), " bytes is not whole floats");
    comm_.broadcast(model_->context(), reinterpret_cast<float*>(a.data()),
                    static_cast<std::int64_t>(a.total_bytes() / sizeof(float)), 0);
  }

  /// Rank 0 speaks for the run (every rank raises its own errors).
  bool lead() const { return comm_.rank() == 0; }

  template <class... A>
  void say(A const&... a) const {
    if (lead()) std::fprintf(stderr, "%s\n", kumiki::detail::concat(a...).c_str());
  }

  /// Micro-batches of one optimizer step on this rank: global_batch = micro_batch x ranks x this.
  std::int64_t accumulation_steps() const { return recipe_.global_batch / (recipe_.micro_batch * comm_.size()); }

  /// A data-parallel run's recipe splits its global batch evenly, and its stages have no seed runs.
  void check_data_parallel() const {
    if (comm_.size() == 1) return;
    std::int64_t const per_step = recipe_.micro_batch * comm_.size();
    KUMIKI_REQUIRE(recipe_.global_batch % per_step == 0, "recipe ", recipe_.source, ": global_batch ",
                   recipe_.global_batch, " is not a multiple of micro_batch ", recipe_.micro_batch, " x ", comm_.size(),
                   " data-parallel ranks (", per_step, "); change micro_batch or global_batch, or the number of ranks");
    for (auto const& st : recipe_.stages)
      KUMIKI_REQUIRE(st.seeds.empty(), "recipe ", recipe_.source, ": stage '", st.name,
                     "' has seeds; seed runs and their soup run in one process for now: start this recipe without "
                     "mpirun / srun");
  }

  /// The stop signal (SIGINT / SIGTERM) any rank has received, the same on every rank: all stop at
  /// the same step, after the same checkpoint.
  int stop_signal(detail::StopSignals const& signals) const {
    int const mine = signals.signal();
    if (comm_.size() == 1) return mine;
    double const any = comm_.all_reduce_sum(mine != 0 ? static_cast<double>(mine) : 0.0);
    return mine != 0 ? mine : any > 0 ? SIGTERM : 0;
  }

  static optim::AdamWConfig adamw_config(OptimizerRecipe const& o) {
    optim::AdamWConfig c;
    c.beta1 = static_cast<float>(o.beta1);
    c.beta2 = static_cast<float>(o.beta2);
    c.eps = static_cast<float>(o.eps);
    c.weight_decay = static_cast<float>(o.weight_decay);
    return c;
  }

  void resume_or_init(fs::path const& ckpt_root) {
    std::vector<std::string> problems;
    auto const found = newest_valid_checkpoint(ckpt_root, &problems);
    for (auto const& p : problems) say("kumiki: warning: skipping a damaged checkpoint: ", p);
    if (!found) {
      KUMIKI_CHECK(!(options_.init_weights && !options_.init_checkpoint.empty()),
                   "TrainerOptions: init_weights and init_checkpoint are exclusive");
      if (!options_.init_checkpoint.empty()) {
        fs::path const dir = resolve_checkpoint(options_.init_checkpoint);
        verify_training_checkpoint(dir);
        require_checkpoint_model(dir, Cfg, "the recipe trains");
        std::string saved_recipe;
        (void)load_state(dir, &saved_recipe);
        options_.init_source = "checkpoint '" + dir.string() + "' (weights and AdamW state)";
      } else if (options_.init_weights) {
        copy_init_weights(options_.init_weights());
      } else {
        init_weights(recipe_.seed);
      }
      state_ = TrainState{};
      state_.init_seed = recipe_.seed;
      state_.stage = recipe_.stages[0].name;
      if (lead() && fs::exists(out_ / "log.jsonl")) fs::remove(out_ / "log.jsonl");  // a restart from scratch
      say("kumiki: starting ", recipe_.model, " (", Cfg.num_params(), " parameters) from ",
          options_.init_weights || !options_.init_checkpoint.empty() ? "the weights of " + options_.init_source
                                                                      : "seed " + std::to_string(recipe_.seed),
          ", ", recipe_.total_steps(), " steps in ", recipe_.stages.size(), " stage(s)");
      return;
    }
    if (options_.init_weights)
      say("kumiki: the run already has checkpoints; resuming (the initial weights of ", options_.init_source,
          " are not used)");
    require_checkpoint_model(*found, Cfg);  // names the differing field (--allow-recipe-change may change the model)
    std::string saved_recipe;
    state_ = load_state(*found, &saved_recipe);
    if (saved_recipe != recipe_.text && !options_.allow_recipe_change)
      KUMIKI_FAIL("the recipe differs from the one checkpoint ", found->string(),
                  " was trained with; pass --allow-recipe-change to resume with the new recipe anyway");
    KUMIKI_REQUIRE(static_cast<std::size_t>(state_.stage_index) < recipe_.stages.size(), "checkpoint ", found->string(),
                   " is at stage ", state_.stage_index, " ('", state_.stage, "'), but the recipe has ",
                   recipe_.stages.size(), " stage(s)");
    leave_finished_stage();
    if (lead()) detail::truncate_log(out_ / "log.jsonl", state_.step, state_.spikes.rollbacks);
    say("kumiki: resuming from ", found->string(), " (step ", state_.step, ", stage '", state_.stage, "')");
  }

  /// The first step of the next stage: its own data (no batches skipped yet) and a new spike window.
  void next_stage() {
    ++state_.stage_index;
    state_.stage_step = 0;
    state_.stage = recipe_.stages[static_cast<std::size_t>(state_.stage_index)].name;
    state_.spikes.data_skip_batches = 0;
  }

  /// A checkpoint taken at the end of a stage still names that stage: the next step opens the next one.
  void leave_finished_stage() {
    while (static_cast<std::size_t>(state_.stage_index) + 1 < recipe_.stages.size() &&
           state_.stage_step >= recipe_.stages[static_cast<std::size_t>(state_.stage_index)].steps)
      next_stage();
  }

  /// Rolls back to the newest valid checkpoint of the current stage at or before `trouble_start`
  /// (steps completed), after the steps up to state_.step - 1 went wrong: logs it, removes the
  /// checkpoints of the abandoned steps (newest first, so that a kill in between resumes from one of
  /// them and replays this very rollback), reloads, and lowers the lr as the stage's policy says. The
  /// data goes on where the abandoned steps left it (plus rollback_skip_batches): nothing they read is
  /// read again, however often the run returns to one checkpoint. False (after saying why) when the
  /// run has used up max_rollbacks or the stage has no checkpoint to go back to.
  bool roll_back(fs::path const& root, StageRecipe const& stage, TroubleKind why, std::int64_t trouble_start, JsonlLog& log) {
    SpikePolicy const& sp = stage.spikes;
    if (state_.spikes.rollbacks >= sp.max_rollbacks) {
      say("kumiki: no rollback: the run has rolled back ", state_.spikes.rollbacks, " time(s), its max_rollbacks");
      return false;
    }
    // The stage's data position (global batches of its blend) the abandoned steps reached; a
    // checkpoint of an earlier stage would read that stage's data again and this one's from 0.
    std::int64_t const next_batch = state_.stage_step + state_.spikes.data_skip_batches;
    std::int64_t const stage_start = recipe_.stage_start(static_cast<std::size_t>(state_.stage_index));
    std::vector<std::string> problems;
    std::optional<fs::path> target = newest_valid_checkpoint(root, &problems, trouble_start);
    for (auto const& p : problems) say("kumiki: warning: skipping a damaged checkpoint: ", p);
    if (target && *checkpoint_step(*target) < stage_start) target.reset();
    if (!target) {
      say("kumiki: no rollback: no valid checkpoint of stage '", stage.name, "' (steps ", stage_start, " to ", trouble_start,
          ", the first step of the trouble) under ", root.string(), "; a smaller checkpoint_interval keeps one closer");
      return false;
    }
    std::int64_t const to = *checkpoint_step(*target);
    RollbackRecord rec;
    rec.step = state_.step - 1;
    rec.stage = stage.name;
    rec.tokens = state_.tokens;
    rec.reason = std::string(trouble_name(why));
    rec.trouble_start = trouble_start;
    rec.to_step = to;
    rec.lr_factor = sp.rollback_lr_factor;
    rec.lr_steps = sp.rollback_lr_steps;
    rec.rollbacks = state_.spikes.rollbacks;
    std::int64_t const rollbacks = state_.spikes.rollbacks + 1;
    comm_.barrier();  // every rank has chosen the target before rank 0 removes the newer checkpoints
    if (lead()) {
      auto const all = list_checkpoints(root);
      for (auto it = all.rbegin(); it != all.rend(); ++it)
        if (*checkpoint_step(*it) > to) fs::remove_all(*it);
    }
    detail::maybe_crash(options_.crash_at, crash_point("rollback"), state_.step, state_.spikes.rollbacks);

    std::unique_ptr<data::BlendedDataset> const read_before = std::move(blend_);
    std::string saved_recipe;
    state_ = load_state(*target, &saved_recipe);
    leave_finished_stage();
    KUMIKI_CHECK(recipe_.stages[static_cast<std::size_t>(state_.stage_index)].name == stage.name,
                 "rollback target ", target->string(), " is not in stage '", stage.name, "'");
    std::int64_t const resume_batch = next_batch + sp.rollback_skip_batches;  // where the data goes on
    rec.skip_batches = resume_batch - (state_.stage_step + state_.spikes.data_skip_batches);
    state_.spikes.rollbacks = rollbacks;
    state_.spikes.data_skip_batches = resume_batch - state_.stage_step;
    state_.spikes.lr_factor = sp.rollback_lr_factor;
    state_.spikes.lr_factor_until = to + sp.rollback_lr_steps;
    rec.data_skip = state_.spikes.data_skip_batches;
    // Megatron's index for the longer stage (steps + skip batches) is rebuilt. Its samples agree with
    // the old index's when the extra batches leave each dataset's epochs (count, separate final one)
    // and the blend's choices as they were; then the abandoned batches are exactly the ones skipped.
    // Checked, and said when not so.
    ensure_stage_data(static_cast<std::size_t>(state_.stage_index));
    std::int64_t const read_samples = std::min(next_batch * recipe_.global_batch, read_before->size());
    for (std::size_t d = 0; d < blend_->num_datasets(); ++d) {  // a GPT index is fixed by these two
      data::GptIndex const &was = read_before->dataset(d).index(), &now = blend_->dataset(d).index();
      rec.same_order = rec.same_order && was.num_epochs == now.num_epochs && was.separate_final_epoch == now.separate_final_epoch;
    }
    for (std::int64_t i = 0; i < read_samples && rec.same_order; ++i) rec.same_order = read_before->source(i) == blend_->source(i);
    log.write(rec);
    if (!rec.same_order)
      say("kumiki: note: the stage's sample index, rebuilt for ", stage.steps + state_.spikes.data_skip_batches,
          " batches, orders the samples differently from the one the abandoned steps read (an epoch boundary moved); "
          "the run goes on in the new order from batch ", resume_batch);
    say("kumiki: rollback ", rollbacks, " (", rec.reason, " from step ", trouble_start, " to ", rec.step, "): back to ",
        target->string(), ", skipping ", rec.skip_batches, " global batch(es) of data",
        sp.rollback_lr_steps > 0 ? kumiki::detail::concat(", lr x ", sp.rollback_lr_factor, " for ", sp.rollback_lr_steps, " steps")
                                 : std::string());
    return true;
  }

  /// The non-finite guard at the current state: the recipe's bound, the run of non-finite steps replayed.
  optim::NonFiniteGuard nonfinite_guard() const {
    optim::NonFiniteGuard guard(static_cast<int>(recipe_.optimizer.max_nonfinite));
    for (std::int64_t k = 0; k < state_.nonfinite_run; ++k) guard.check(std::nan(""), -1);
    return guard;
  }

  /// A test crash point's name in this run (TrainerOptions::crash_at).
  std::string crash_point(char const* point) const {
    return options_.seed_run.stage >= 0 ? "seed" + std::to_string(options_.seed_run.seed) + ":" + point : point;
  }

  /// The data-order seed of stage `si`: a seed run's own for its stage, else the recipe's.
  std::uint64_t data_seed(std::size_t si) const {
    return static_cast<std::int64_t>(si) == options_.seed_run.stage ? options_.seed_run.seed : recipe_.stages[si].seed;
  }

  /// A stage with `seeds`, at its first step (global step S): the main run's checkpoint at S, then
  /// one run per seed in OUT/seeds/<stage>-seed<seed>/ (each an ordinary run of this recipe, started
  /// from a copy of that checkpoint, stopping at the stage end, resumable on its own), then the
  /// uniform f32 soup of their final weights and AdamW moments (train/soup.hpp), evaluated, logged
  /// and checkpointed at the stage end. A kill anywhere resumes: finished seed runs are found
  /// complete, an unfinished one resumes, and the soup is made again (it is deterministic).
  RunOutcome run_seeded_stage(std::size_t si, fs::path const& ckpt_root, JsonlLog& log) {
    StageRecipe const& stage = recipe_.stages[si];
    std::int64_t const start = state_.step, end = start + stage.steps;
    std::optional<fs::path> start_dir = newest_valid_checkpoint(ckpt_root, nullptr, start);
    if (!start_dir || *checkpoint_step(*start_dir) != start) {
      ensure_stage_data(si);
      start_dir = checkpoint(ckpt_root, stage);
    }
    log.write(StageRecord{stage.name, start, state_.tokens, state_.spikes.rollbacks});
    std::vector<fs::path> finals;
    for (std::size_t k = 0; k < stage.seeds.size(); ++k) {
      std::uint64_t const seed = stage.seeds[k];
      fs::path const dir = out_ / "seeds" / (stage.name + "-seed" + std::to_string(seed));
      fs::path const root = dir / "checkpoints";
      if (!newest_valid_checkpoint(root)) link_checkpoint(*start_dir, root);
      say("kumiki: stage '", stage.name, "': run ", k + 1, " of ", stage.seeds.size(), ", data seed ", seed, ", in ",
          dir.string());
      // The seed run uses this trainer's model and optimizer (no second copy in memory).
      fs::path const main_out = out_;
      TrainerOptions const main_options = options_;
      out_ = dir;
      options_.seed_run = {static_cast<std::int64_t>(si), seed, end};
      options_.init_weights = nullptr;
      options_.init_checkpoint.clear();
      RunOutcome outcome = RunOutcome::completed;
      try {
        outcome = run();
      } catch (...) {
        out_ = main_out, options_ = main_options;
        throw;
      }
      out_ = main_out, options_ = main_options;
      if (outcome != RunOutcome::completed) {
        if (outcome == RunOutcome::interrupted)
          say("kumiki: resume with the same command: kumiki train --recipe ", recipe_.source, " --out ", out_.string());
        return outcome;
      }
      finals.push_back(root / checkpoint_name(end));
      verify_training_checkpoint(finals.back());
    }
    // The soup: the first run's position and AdamW step count, every run's weights and moments
    // averaged straight into the model and the optimizer (through host staging on a device).
    state_ = parse_train_state(detail::read_text(finals.front() / ckpt_state_file),
                               (finals.front() / ckpt_state_file).string());
    opt_.set_step_count(read_step_count(io::SafetensorsFile(finals.front() / ckpt_optimizer_file)));
    for (auto const& [file, prefix, arena] : {std::tuple{ckpt_model_file, "", &master_staging()},
                                              std::tuple{ckpt_optimizer_file, "exp_avg.", &opt_.exp_avg()},
                                              std::tuple{ckpt_optimizer_file, "exp_avg_sq.", &opt_.exp_avg_sq()}})
      detail::fill_from_host(*arena, [&](Arena<Cpu>& host) { soup_arena(finals, file, prefix, host); });
    commit_master();
    std::vector<std::string> runs;
    for (auto const& f : finals) runs.push_back(f.string());
    log.write(SoupRecord{end, stage.name, state_.tokens, stage.seeds, runs, state_.spikes.rollbacks});
    say("kumiki: stage '", stage.name, "': souped the ", finals.size(), " seed runs (uniform f32 average of weights and "
        "AdamW moments)");
    ensure_stage_data(si);
    evaluate(stage, log);
    detail::maybe_crash(options_.crash_at, "soup", end, state_.spikes.rollbacks);
    checkpoint(ckpt_root, stage);
    if (end < recipe_.total_steps()) next_stage();
    return RunOutcome::completed;
  }

  /// Places a copy of checkpoint `src` under `root` (hard links where the file system allows: the
  /// files are never rewritten in place), appearing complete or not at all.
  static void link_checkpoint(fs::path const& src, fs::path const& root) {
    fs::create_directories(root);
    fs::path const tmp = root / (".tmp-link-" + src.filename().string());
    fs::remove_all(tmp);
    fs::create_directories(tmp);
    for (auto const& e : fs::directory_iterator(src)) {
      std::error_code ec;
      fs::create_hard_link(e.path(), tmp / e.path().filename(), ec);
      if (ec) fs::copy_file(e.path(), tmp / e.path().filename());
    }
    fs::rename(tmp, root / src.filename());
  }

  void copy_init_weights(Arena<Cpu> const& src) {
    KUMIKI_REQUIRE(src.layout() == master_staging().layout(), "initial weights from ", options_.init_source,
                   " do not have the parameter layout of model '", recipe_.model, "'");
    copy(master_staging(), src);
    commit_master();
  }

  void begin_stage(std::size_t si, JsonlLog& log) {
    StageRecipe const& stage = recipe_.stages[si];
    if (stage.reset_optimizer && si > 0) {
      for (Arena<Backend>* m : {&opt_.exp_avg(), &opt_.exp_avg_sq()})  // queued on the model's stream
        ops::Fill<Backend>::zero_bytes(model_->context(), m->data(), m->total_bytes());
      opt_.set_step_count(0);
    }
    state_.spikes.window.clear();  // a new stage moves the loss level: its own history
    log.write(StageRecord{stage.name, state_.step, state_.tokens, state_.spikes.rollbacks});
    say("kumiki: stage '", stage.name, "': ", stage.steps, " steps, seq_len ", stage.seq_len, ", schedule ",
        schedule_rule_name(stage.rule), ", ", stage.data.size(), " dataset(s)");
  }

  /// The stage's data (its blend and eval sets) for the current skip and seed. With several ranks,
  /// rank 0 builds the index caches first and the others read them after it.
  void ensure_stage_data(std::size_t si) {
    std::int64_t const skip = state_.spikes.data_skip_batches;
    if (blend_ && blend_stage_ == si && blend_skip_ == skip && blend_seed_ == data_seed(si)) return;
    if (lead()) load_stage_data(si);
    comm_.barrier();
    if (!lead()) load_stage_data(si);
  }

  void load_stage_data(std::size_t si) {
    std::int64_t const skip = state_.spikes.data_skip_batches;
    StageRecipe const& stage = recipe_.stages[si];
    data::BlendedDatasetConfig bc;
    bc.seq_len = stage.seq_len;
    // Megatron's index for the stage's samples; after a rollback, for those plus the skipped batches
    // (a run without rollbacks reads exactly the index it always did).
    bc.num_samples = (stage.steps + skip) * recipe_.global_batch;
    bc.seed = data_seed(si);
    bc.cache_dir = cache_dir_;
    bc.split = stage.split;  // the stage trains on the train part of every dataset, as Megatron
    blend_ = std::make_unique<data::BlendedDataset>(stage.data, bc);
    KUMIKI_REQUIRE(blend_->size() >= bc.num_samples, "stage '", stage.name, "' needs ", bc.num_samples,
                   " samples but its weightless blend holds ", blend_->size(),
                   " (one epoch of each dataset's train part); give weights, more data or fewer steps");
    blend_stage_ = si;
    blend_skip_ = skip;
    blend_seed_ = data_seed(si);
    eval_sets_.clear();
    for (auto const& e : stage.eval) {
      data::GptDatasetConfig gc;
      gc.seq_len = stage.seq_len;
      gc.num_samples = stage.eval_batches * recipe_.micro_batch;
      gc.seed = recipe_.seed;
      gc.cache_dir = cache_dir_;
      auto file = std::make_shared<data::IndexedDataset const>(fs::path(e.prefix));
      if (!e.split.empty()) {  // held-out files are read whole; with a split, their valid part
        auto const part = data::require_part(*file, data::parse_split(e.split), e.split, data::SplitPart::valid);
        gc.split_begin = part.first, gc.split_end = part.second;
      }
      eval_sets_.push_back(std::make_unique<data::GptDataset>(std::move(file), gc));
    }
  }

  template <class Get, class Describe>
  void fill(Get&& get, Describe&& describe, std::int64_t seq_len) {
    data::fill_batch(get, describe, recipe_.micro_batch, seq_len, Cfg.vocab_size, sample_, tokens_, targets_);
  }

  /// Forward + backward over the global batch's micro-batches; returns the mean losses. Gradients are
  /// of the mean objective (each micro-batch scaled by 1 / accumulation steps).
  nn::LossResult accumulate_gradients(StageRecipe const& stage) {
    model_->zero_grad();
    std::int64_t const acc = accumulation_steps(), mb = recipe_.micro_batch;
    std::int64_t const ranks = comm_.size(), rank = comm_.rank();
    std::int64_t const batch = state_.stage_step + state_.spikes.data_skip_batches;  // of the stage's data
    std::int64_t const base = batch * recipe_.global_batch;
    nn::StepOptions opt = options_.step;
    opt.grad_scale = 1.0 / static_cast<double>(acc);
    double spike = 1.0;  // TrainerOptions::spike_at: a synthetic spike on this data batch
    if (options_.spike_at.covers(recipe_.stage_start(static_cast<std::size_t>(state_.stage_index)) + batch))
      spike = options_.spike_at.factor;
    opt.grad_scale *= spike;
    // The losses stay on the device until the last micro-batch is queued (one read per step).
    opt.defer_loss = true;
    std::vector<nn::LossResult> losses;
    losses.reserve(static_cast<std::size_t>(acc));
    for (std::int64_t a = 0; a < acc; ++a) {
      // Megatron's data-parallel slicing: micro-step a reads mb x ranks consecutive samples, rank r the
      // r-th mb of them (data/sampler.hpp). One rank reads base + a mb + [0, mb).
      std::int64_t const first = base + (a * ranks + rank) * mb;
      fill([&](std::int64_t r, std::int32_t* dst) { blend_->get(first + r, dst); },
           [&](std::int64_t r) {
             auto const [d, s] = blend_->source(first + r);
             return detail::describe_sample(blend_->dataset(static_cast<std::size_t>(d)), s);
           },
           stage.seq_len);
      auto const [tok, tgt] = token_stage_.place(model_->context(), tokens_, targets_);  // on a device: copied there
      // The last micro-batch's backward hands finished gradients to the communicator as it goes, which
      // may reduce them beside the rest of the backward (all-reduced, or with ZeRO-1 to their owners).
      if constexpr (dist::OverlappingCommunicator<Comm, Backend>)
        if (a + 1 == acc && ranks > 1)
          opt.grads_ready = [this](std::size_t from) { comm_.gradients_ready(model_->context(), model_->grads(), from); };
      losses.push_back(model_->forward_backward(tok, tgt, mb, stage.seq_len, opt));
    }
    model_->settle_losses(losses);
    nn::LossResult sum;
    for (nn::LossResult const& r : losses) sum.loss += r.loss * spike, sum.moe_aux += r.moe_aux, sum.moe_z += r.moe_z;
    double const n = static_cast<double>(acc);
    sum.loss /= n, sum.moe_aux /= n, sum.moe_z /= n;
    return sum;
  }

  void evaluate(StageRecipe const& stage, JsonlLog& log) {
    for (std::size_t k = 0; k < eval_sets_.size(); ++k) {
      double const loss =
          mean_loss(*model_, *eval_sets_[k], stage.seq_len, recipe_.micro_batch, stage.eval_batches, options_.step);
      EvalRecord r{state_.step, stage.name, state_.tokens, stage.eval[k].name, loss, std::exp(loss),
                   stage.eval_batches * recipe_.micro_batch * stage.seq_len};
      log.write(r);
      if (options_.progress)
        say("[", stage.name, "] eval '", stage.eval[k].name, "' at step ", state_.step, ": loss ", loss, ", ppl ", std::exp(loss));
    }
  }

  fs::path checkpoint(fs::path const& root, StageRecipe const& stage) {
    state_.data_seed = data_seed(static_cast<std::size_t>(state_.stage_index));
    state_.datasets.clear();
    for (auto const& e : stage.data) state_.datasets.push_back(e.prefix.string());
    state_.consumed_per_dataset =
        blend_->consumed_per_dataset((state_.stage_step + state_.spikes.data_skip_batches) * recipe_.global_batch);
    std::int64_t const step = state_.step;
    std::int64_t const rollbacks = state_.spikes.rollbacks;
    fs::path const dir = root / checkpoint_name(step);
    // Rank 0 writes; every rank holds the same weights, and the same optimizer state or (ZeRO-1) its
    // part of it, gathered here into a whole state on rank 0's host first.
    GatheredState whole;
    if (zero_) whole = gather_state();
    else stage_master();  // halves: into the gradient arena, which the next step zeroes first
    if (lead()) {
      auto const crash = [&, step, rollbacks] {
        detail::maybe_crash(options_.crash_at, crash_point("checkpoint"), step, rollbacks);
      };
      std::optional<Arena<Cpu>> staging;  // ZeRO-1 without halves: the parameters, on the host
      fs::path const written =
          zero_ ? save_checkpoint(root, whole.master ? *whole.master : detail::on_host(model_->params(), staging),
                                  *whole.exp_avg, *whole.exp_avg_sq, opt_.step_count(), state_, recipe_.text, crash,
                                  config_metadata(Cfg))
                : save_checkpoint(root, master_staging(), opt_, state_, recipe_.text, crash, config_metadata(Cfg));
      KUMIKI_CHECK(written == dir, "checkpoint written to ", written.string(), ", expected ", dir.string());
      std::vector<std::int64_t> stage_ends;
      for (std::size_t i = 0; i < recipe_.stages.size(); ++i) stage_ends.push_back(recipe_.stage_start(i + 1));
      prune_checkpoints(root, static_cast<std::size_t>(stage.keep_checkpoints), stage_ends);
    }
    comm_.barrier();  // complete before any rank goes on (a rollback may read it)
    return dir;
  }

  Recipe recipe_;
  fs::path out_;
  fs::path cache_dir_;
  TrainerOptions options_;
  Comm comm_;
  std::unique_ptr<Model> model_;
  bool zero_ = false;              // ZeRO-1 over more than one rank ([parallel] zero = 1)
  dist::ZeroPartition partition_;  // the ranks' parts of the parameter arena (one part without ZeRO-1)
  optim::AdamW<Backend> opt_;      // updates this rank's part, and keeps its moments only
  std::optional<Arena<Backend>> low_;  // halves: the low half of each fp32 master weight this rank keeps
  std::vector<std::int64_t> weight_bounds_;  // halves with ZeRO-1: the ranks' parts of the bf16 weight arena
  TrainState state_;
  std::unique_ptr<data::BlendedDataset> blend_;
  std::size_t blend_stage_ = 0;
  std::int64_t blend_skip_ = 0;
  std::uint64_t blend_seed_ = 0;
  std::vector<std::unique_ptr<data::GptDataset>> eval_sets_;
  std::vector<std::int32_t> sample_, tokens_, targets_;
  detail::TokenStage<Backend> token_stage_;
};

/// A trainer on a backend whose ops this translation unit lacks (ops::backend_available): a Cuda
/// trainer in a file the host compiler builds. It is empty, so the one error is this static_assert
/// (the constructor takes any arguments, so that the declaration adds none).
template <auto Cfg, class Backend, class Comm, class P>
  requires dist::Communicator<Comm, Backend> && (!ops::backend_available<Backend>)
class Trainer<Cfg, Backend, Comm, P> {
 public:
  static_assert(always_false<Backend>,
                "kumiki: train::Trainer<Cfg, Cuda> needs the CUDA backend, which this translation unit does "
                "not include: build the file with nvcc (a .cu file) and include kumiki/cuda.cuh");
  template <class... Args>
  explicit Trainer(Args&&... /*args*/) {}
};

}  // namespace train
KUMIKI_NAMESPACE_END
