// my_trainer: a trainer of one's own through kumiki's API, the program docs/api.md walks through
// (each `[api:...]` region below is quoted there, and CTest checks that the quotes are exact). With
// its own configuration it writes a Megatron dataset, trains 12 steps by hand (forward and backward,
// Megatron's clipping, AdamW, a WSD schedule with a minus_sqrt cooldown), checkpoints at step 8, resumes
// a fresh model and optimizer from that checkpoint and checks that they end bitwise equal to the
// uninterrupted run, exports the model to Hugging Face, and runs the same recipe with kumiki's trainer.
//
// usage: my_trainer WORK_DIR      (exit 0 when the resumed run equals the uninterrupted one)
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <string>
#include <vector>

#include <kumiki/kumiki.hpp>

namespace k = kumiki;
namespace fs = std::filesystem;

// [api:config]
// A configuration of one's own: byte tokens (256 bytes + BOS/EOS, padded to 384 rows), 3 layers of
// width 128, 4 query heads sharing 2 key/value heads, SwiGLU of width 352.
inline constexpr k::models::TransformerConfig my_model{
    .name = "my_model", .vocab_size = 258, .make_vocab_divisible_by = 128, .hidden = 128, .ffn_hidden = 352,
    .num_layers = 3, .num_heads = 4, .num_query_groups = 2, .rope_base = 10000.0, .rms_eps = 1e-5, .max_seq_len = 128};
static_assert(my_model.padded_vocab() == 384 && my_model.head_dim() == 32 && my_model.num_params() == 652160);
using MyConfigs = k::models::ConfigList<my_model>;  // the names recipes and checkpoints may give
using Model = k::nn::Transformer<my_model, k::Cpu, float>;  // fp32 weights on the CPU backend
// [api:end]

namespace {

// [api:step]
/// One optimizer step: forward and backward (the mean next-token cross-entropy over rows x seq
/// tokens), Megatron's gradient clipping at norm 1.0, then AdamW at this step's learning rate.
double train_step(Model& model, k::optim::AdamW<k::Cpu>& adam, double lr, std::vector<std::int32_t> const& tokens,
                  std::vector<std::int32_t> const& targets, std::int64_t rows, std::int64_t seq) {
  model.zero_grad();
  k::nn::LossResult const loss = model.forward_backward(tokens.data(), targets.data(), rows, seq, k::nn::StepOptions{});
  k::optim::ClipResult const clip = k::optim::clip_grad_norm(model.context(), model.grads(), 1.0);
  if (clip.finite) adam.step(model.context(), model.params(), model.grads(), static_cast<float>(lr));
  return loss.loss;
}
// [api:end]

bool bitwise_equal(k::Arena<k::Cpu> const& a, k::Arena<k::Cpu> const& b) {
  return a.layout() == b.layout() && std::memcmp(a.data(), b.data(), a.total_bytes()) == 0;
}

int run(fs::path const& work) {
  fs::remove_all(work);
  fs::create_directories(work);
  std::int64_t const rows = 4, seq = 64, steps = 12;

  // [api:data]
  // A Megatron .bin/.idx dataset (what `kumiki preprocess` writes), one document per line, each ended
  // by the tokenizer's end-of-document token; then Megatron's GPT samples of seq + 1 tokens over it.
  k::data::ByteTokenizer const tok;
  {
    k::data::IndexedDatasetWriter out(work / "text", k::data::IndexDType::uint16);
    for (int i = 0; i < 200; ++i) {
      std::vector<std::int32_t> ids = tok.encode("Document " + std::to_string(i) + ": Debian is a free operating "
                                                 "system; packages are installed with apt.");
      ids.push_back(tok.eod_id());
      out.add_document(ids);
    }
    out.finalize();
  }
  k::data::GptDataset const data(work / "text", {.seq_len = seq, .num_samples = rows * steps, .seed = 1234});
  std::vector<std::int32_t> sample, tokens, targets;
  auto const batch = [&](std::int64_t step) {  // inputs x[:-1] and labels x[1:] of `rows` samples
    k::data::fill_batch([&](std::int64_t r, std::int32_t* dst) { data.get(step * rows + r, dst); },
                        [&](std::int64_t r) { return "sample " + std::to_string(step * rows + r); }, rows, seq,
                        my_model.vocab_size, sample, tokens, targets);
  };
  // [api:end]

  // [api:model]
  // The model (parameters, gradients and activations in three arenas), initialized as Megatron does
  // from a seed; AdamW with LLM-jp's hyper-parameters; WSD: 2 warmup steps, then 3e-3 until the
  // minus_sqrt cooldown over the last 4 steps.
  Model model;
  model.init(1234);
  k::optim::AdamWConfig const hyper{.beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f};
  k::optim::AdamW<k::Cpu> adam(model.params().layout(), hyper);
  k::sched::Wsd const schedule{.max_lr = 3e-3, .min_lr = 0.0, .warmup = 2, .decay_end = steps, .wsd_decay = 4,
                               .wsd_style = k::sched::DecayShape::minus_sqrt};
  schedule.validate();
  // [api:end]

  // [api:checkpoint]
  // A checkpoint is the weights, AdamW's moments, the position and the recipe (which names the model);
  // the weights' header records the configuration, so that a program built for another one says
  // which field differs. A fresh model and optimizer resumed from it continue exactly.
  std::string const recipe_text = "model = \"my_model\"\nseed = 1234\nseq_len = 64\nglobal_batch = 4\nmicro_batch = 4\n"
                                  "[[stages]]\nname = \"pretrain\"\ndata = [\"text\"]\nsteps = 12\n[stages.lr]\n"
                                  "lr_decay_style = \"WSD\"\nlr = 3e-3\nmin_lr = 0.0\nlr_warmup_iters = 2\n"
                                  "lr_decay_iters = 12\nlr_wsd_decay_iters = 4\nlr_wsd_decay_style = \"minus_sqrt\"\n";
  fs::path at_8;
  for (std::int64_t s = 0; s < steps; ++s) {
    batch(s);
    double const loss = train_step(model, adam, schedule.lr(s), tokens, targets, rows, seq);
    std::printf("step %2lld  lr %.6f  loss %.4f\n", static_cast<long long>(s + 1), schedule.lr(s), loss);
    if (s + 1 == 8) {
      k::train::TrainState state;
      state.step = 8;
      at_8 = k::train::save_checkpoint(work / "checkpoints", model.params(), adam, state, recipe_text, {},
                                       k::train::config_metadata(my_model));
    }
  }
  Model resumed;
  k::optim::AdamW<k::Cpu> resumed_adam(resumed.params().layout(), hyper);
  k::train::require_checkpoint_model(at_8, my_model);  // names every differing field otherwise
  k::train::TrainState const state = k::train::load_checkpoint(at_8, resumed.params(), resumed_adam);
  for (std::int64_t s = state.step; s < steps; ++s) {
    batch(s);
    train_step(resumed, resumed_adam, schedule.lr(s), tokens, targets, rows, seq);
  }
  bool const same = bitwise_equal(resumed.params(), model.params()) &&
                    bitwise_equal(resumed_adam.exp_avg(), adam.exp_avg()) &&
                    bitwise_equal(resumed_adam.exp_avg_sq(), adam.exp_avg_sq());
  // [api:end]
  std::printf("resumed from %s: weights and moments after step 12 %s the uninterrupted run's\n", at_8.string().c_str(),
              same ? "are bitwise equal to" : "DIFFER from");

  // [api:interop]
  // The final weights as a Hugging Face Llama directory (config.json, generation_config.json,
  // model.safetensors in bf16), readable by transformers' LlamaForCausalLM; import_hf<MyConfigs>
  // reads such a directory back into a checkpoint.
  k::train::TrainState end;
  end.step = steps;
  fs::path const last = k::train::save_checkpoint(work / "checkpoints", model.params(), adam, end, recipe_text, {},
                                                  k::train::config_metadata(my_model));
  for (fs::path const& f : k::train::export_hf<MyConfigs>(last, work / "hf", {.dtype = k::DType::bf16}))
    std::printf("exported %s\n", f.filename().string().c_str());
  // [api:end]

  // [api:trainer]
  // The same recipe with kumiki's trainer: stages, data blends, evaluation, checkpoints every
  // checkpoint_interval, resumption by running it again, logs as JSON lines (RUN/log.jsonl).
  k::train::Recipe const recipe = k::train::parse_recipe<MyConfigs>(recipe_text, "my_recipe.toml", work);
  k::train::TrainerOptions options;
  options.progress = false;
  k::train::Trainer<my_model> trainer(recipe, work / "run", options);
  bool const completed = trainer.run() == k::train::RunOutcome::completed;
  // [api:end]
  std::printf("kumiki's trainer: %s, checkpoints in %s\n", completed ? "completed" : "did not complete",
              (work / "run" / "checkpoints").string().c_str());
  return same && completed ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: my_trainer WORK_DIR\n");
    return 2;
  }
  try {
    return run(argv[1]);
  } catch (std::exception const& e) {
    std::fprintf(stderr, "my_trainer: error: %s\n", e.what());
    return 1;
  }
}
