// kumiki/cli/generate.hpp: `kumiki generate` and `kumiki eval-tasks`: a model's text, and its scores on
// few-shot tasks, both through nn::Generator (key/value cache). They share this header so that a program
// compiling both in one translation unit compiles the models and their generators once.
// - generate --model CKPT|RUN|HF_DIR --prompt TEXT | --prompts FILE.jsonl [...]: prompts of different
//   lengths prefilled together, one token per sequence per step, greedy or sampled from Philox (a
//   seed reproduces the output exactly). One prompt streams its text as it comes; several print one
//   JSON line each as they finish.
// - eval-tasks --model ... --tasks FILE.jsonl [--shots K] [--out results.json]: multiple choice by
//   log-likelihood and GSM8K-style exact match (eval/tasks.hpp, docs/tasks.md), a markdown table on
//   stdout, the results as JSON.
#pragma once

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <CLI/CLI.hpp>

#include "kumiki/cli/app.hpp"
#include "kumiki/cpu.hpp"
#include "kumiki/core/json.hpp"
#include "kumiki/data/sentencepiece.hpp"
#include "kumiki/eval/scorer.hpp"
#include "kumiki/eval/tasks.hpp"
#include "kumiki/io/hf.hpp"
#include "kumiki/models/configs.hpp"
#include "kumiki/nn/generator.hpp"
#include "kumiki/nn/transformer.hpp"
#include "kumiki/train/hf_interop.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace cli {
namespace detail::cmd_generate {

/// Reads a checkpoint, run directory or Hugging Face directory into the dense model of its
/// configuration and calls f(model) (a generic lambda: one instantiation per configuration).
template <class Configs, class F>
int with_dense_model(std::string const& path, char const* command, F&& f) {
  using namespace kumiki;
  train::CheckpointModel weights = train::read_model_weights<Configs>(path);
  std::string const name = weights.config_name;
  return Configs::dispatch(name, [&](auto tag) -> int {
    constexpr auto Cfg = decltype(tag)::config;
    if constexpr (Cfg.is_moe()) {
      KUMIKI_FAIL("model '", path, "' is the mixture-of-experts configuration '", name, "'; kumiki ", command,
                  " handles dense models only for now");
    } else {
      nn::Transformer<Cfg, Cpu, float> model;
      copy(model.params(), weights.params);
      weights.params = Arena<Cpu>(ArenaLayout{});  // the weights live in the model now
      return f(model, name);
    }
  });
}

template <class Model>
inline void require_tokenizer_fits(kumiki::data::Tokenizer const& tok, std::string const& name) {
  KUMIKI_REQUIRE(tok.vocab_size() <= Model::config.vocab_size, "tokenizer '", tok.name(), "' has ", tok.vocab_size(),
                 " tokens but model '", name, "' only ", Model::config.vocab_size, "; give the model's own tokenizer (--tokenizer)");
}

/// The options both commands read a model by.
inline void add_model_options(CLI::App* cmd, std::string& model, std::string& tokenizer, bool& bos) {
  cmd->add_option("--model", model, "Checkpoint, run directory (its newest checkpoint) or Hugging Face directory")
      ->required()
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--tokenizer", tokenizer, "A SentencePiece .model, or `bytes` (the default)");
  cmd->add_flag("--bos", bos, "Start each prompt with the tokenizer's beginning-of-sequence token");
}

struct GenerateArgs {
  std::string model, tokenizer = "bytes", prompts_file, out;
  std::vector<std::string> prompts, stops;
  std::int64_t max_new_tokens = 64;
  double temperature = 0.0, top_p = 1.0;
  std::int64_t top_k = 0;
  std::uint64_t seed = 0;
  bool bos = false;
};

/// `{"prompt": "..."}` per line; blank lines are skipped.
inline std::vector<std::string> read_prompts(std::string const& path) {
  std::ifstream in(path);
  KUMIKI_REQUIRE(in.good(), "cannot read prompts file '", path, "'");
  std::vector<std::string> out;
  std::string line;
  for (std::int64_t n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    std::string const where = "prompts file '" + path + "' line " + std::to_string(n);
    nlohmann::json const j = kumiki::detail::parse_json_strict(line, where);
    KUMIKI_REQUIRE(j.is_object() && j.contains("prompt") && j["prompt"].is_string(), where,
                   ": expected an object with a string \"prompt\", e.g. {\"prompt\": \"Debian is\"}");
    out.push_back(j["prompt"].get<std::string>());
  }
  KUMIKI_REQUIRE(!out.empty(), "prompts file '", path, "' holds no prompt");
  return out;
}

template <class Configs>
int generate(GenerateArgs const& a) {
  using namespace kumiki;
  KUMIKI_REQUIRE(a.prompts.empty() != a.prompts_file.empty(), "give the prompts as --prompt TEXT or as --prompts FILE.jsonl");
  KUMIKI_REQUIRE(a.max_new_tokens >= 1, "--max-new-tokens must be >= 1, got ", a.max_new_tokens);
  KUMIKI_REQUIRE(a.temperature >= 0, "--temperature must be >= 0 (0: greedy), got ", a.temperature);
  KUMIKI_REQUIRE(a.top_k >= 0, "--top-k must be >= 0 (0: all tokens), got ", a.top_k);
  KUMIKI_REQUIRE(a.top_p > 0 && a.top_p <= 1, "--top-p must lie in (0, 1], got ", a.top_p);
  std::vector<std::string> const texts = a.prompts.empty() ? read_prompts(a.prompts_file) : a.prompts;
  auto const tok = data::make_tokenizer(a.tokenizer);

  return with_dense_model<Configs>(a.model, "generate", [&]<class Model>(Model& model, std::string const& name) -> int {
    constexpr auto Cfg = Model::config;
    require_tokenizer_fits<Model>(*tok, name);
    std::vector<std::vector<std::int32_t>> prompts;
    std::int64_t longest = 0;
    for (std::size_t i = 0; i < texts.size(); ++i) {
      std::vector<std::int32_t> ids;
      if (a.bos) ids.push_back(tok->bos_id());
      auto const enc = tok->encode(texts[i]);
      ids.insert(ids.end(), enc.begin(), enc.end());
      KUMIKI_REQUIRE(!ids.empty(), "prompt ", i + 1, " is empty; give some text or --bos");
      KUMIKI_REQUIRE(static_cast<std::int64_t>(ids.size()) < Cfg.max_seq_len, "prompt ", i + 1, " has ", ids.size(),
                     " tokens; the model reads at most ", Cfg.max_seq_len);
      longest = std::max<std::int64_t>(longest, static_cast<std::int64_t>(ids.size()));
      prompts.push_back(std::move(ids));
    }
    std::int64_t const slots = std::min<std::int64_t>(static_cast<std::int64_t>(prompts.size()), 8);
    nn::Generator gen(model, slots, std::min(Cfg.max_seq_len, longest + a.max_new_tokens));
    nn::GenerateOptions o;
    o.max_new_tokens = a.max_new_tokens;
    o.sampling = {a.temperature, a.top_k, a.top_p, a.seed};
    o.eos = tok->eod_id();

    bool const stream = prompts.size() == 1 && a.out.empty();
    std::vector<std::vector<std::int32_t>> ids(prompts.size());
    std::vector<std::string> text(prompts.size());
    std::unique_ptr<std::ofstream> out_file;
    if (!a.out.empty()) {
      out_file = std::make_unique<std::ofstream>(a.out);
      KUMIKI_REQUIRE(out_file->good(), "cannot write '", a.out, "'");
    }
    std::size_t done = 0;
    auto finish = [&](std::size_t p, std::string const& why) {
      nlohmann::json j{{"prompt", texts[p]}, {"completion", text[p]}, {"tokens", ids[p].size()}, {"stop", why}};
      std::string const line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      if (out_file) *out_file << line << "\n";
      else if (!stream) std::printf("%s\n", line.c_str());
      std::fprintf(stderr, "[generate] %zu/%zu done\n", ++done, prompts.size());
    };
    std::vector<std::string> why(prompts.size(), "");
    auto on_token = [&](std::size_t p, std::int32_t t) {
      ids[p].push_back(t);
      std::string const full = tok->decode(ids[p]);
      for (auto const& s : a.stops) {
        auto const at = full.find(s);
        if (at != std::string::npos) {
          if (stream) std::printf("%s", full.substr(text[p].size(), std::max(at, text[p].size()) - text[p].size()).c_str());
          text[p] = full.substr(0, at);
          why[p] = "stop string";
          return false;
        }
      }
      if (stream) {
        std::printf("%s", full.substr(std::min(text[p].size(), full.size())).c_str());
        std::fflush(stdout);
      }
      text[p] = full;
      if (t == o.eos) why[p] = "eos";
      return true;
    };
    if (stream) {
      std::printf("%s", texts[0].c_str());
      std::fflush(stdout);
    }
    gen.generate(prompts, o, on_token);
    if (stream) std::printf("\n");
    for (std::size_t p = 0; p < prompts.size(); ++p) {
      if (why[p].empty())
        why[p] = static_cast<std::int64_t>(ids[p].size()) >= a.max_new_tokens ? "max_new_tokens" : "max_seq_len";
      finish(p, why[p]);
    }
    return 0;
  });
}


struct EvalTasksArgs {
  std::string model, tokenizer = "bytes", out, markdown, samples;
  std::vector<std::string> tasks;
  std::int64_t shots = 0, batch = 8, max_new_tokens = 128, limit = 0;
  std::uint64_t seed = 1234;
  bool bos = false, quiet = false;
};

nlohmann::ordered_json number_or_null(double v) { return std::isfinite(v) ? nlohmann::ordered_json(v) : nlohmann::ordered_json(nullptr); }

/// The results as a markdown table: one row per metric, the task's columns on its first row.
inline std::string results_table(std::vector<kumiki::eval::TaskResult> const& results) {
  std::string t = "| task | kind | n | shots | metric | value | stderr |\n|---|---|---:|---:|---|---:|---:|\n";
  char buf[256];
  for (auto const& r : results)
    for (std::size_t m = 0; m < r.metrics.size(); ++m) {
      auto const& x = r.metrics[m];
      std::string const se = std::isfinite(x.stderr_) ? kumiki::detail::concat("± ", std::round(x.stderr_ * 1e4) / 1e4) : "";
      if (m == 0)
        std::snprintf(buf, sizeof buf, "| %s | %s | %lld | %lld | %s | %.4f | %s |\n", r.task.c_str(), kumiki::eval::kind_name(r.kind),
                      static_cast<long long>(r.n), static_cast<long long>(r.shots), x.name.c_str(), x.value, se.c_str());
      else
        std::snprintf(buf, sizeof buf, "| | | | | %s | %.4f | %s |\n", x.name.c_str(), x.value, se.c_str());
      t += buf;
    }
  return t;
}

template <class Configs>
int eval_tasks(EvalTasksArgs const& a) {
  using namespace kumiki;
  using Clock = std::chrono::steady_clock;
  KUMIKI_REQUIRE(a.shots >= 0, "--shots must be >= 0, got ", a.shots);
  KUMIKI_REQUIRE(a.batch >= 1, "--batch must be >= 1, got ", a.batch);
  KUMIKI_REQUIRE(a.max_new_tokens >= 1, "--max-new-tokens must be >= 1, got ", a.max_new_tokens);
  KUMIKI_REQUIRE(a.limit >= 0, "--limit must be >= 0 (0: every item), got ", a.limit);
  for (auto const& [flag, path] : {std::pair{"--out", a.out}, {"--markdown", a.markdown}, {"--samples", a.samples}}) {
    if (path.empty()) continue;
    auto const dir = std::filesystem::absolute(path).parent_path();
    KUMIKI_REQUIRE(std::filesystem::is_directory(dir), flag, " '", path, "': directory '", dir.string(),
                   "' does not exist; create it first (checked before scoring, so no work is lost)");
  }
  std::vector<eval::TaskItem> items;
  for (auto const& f : a.tasks) {
    auto more = eval::read_task_file(f);
    items.insert(items.end(), std::make_move_iterator(more.begin()), std::make_move_iterator(more.end()));
  }
  std::vector<eval::Task> tasks = eval::group_tasks(items);
  if (a.limit > 0)
    for (auto& t : tasks)
      if (static_cast<std::int64_t>(t.scored.size()) > a.limit) t.scored.resize(static_cast<std::size_t>(a.limit));
  auto const tok = data::make_tokenizer(a.tokenizer);

  return with_dense_model<Configs>(a.model, "eval-tasks", [&]<class Model>(Model& model, std::string const& name) -> int {
    require_tokenizer_fits<Model>(*tok, name);
    eval::ScoreOptions o{a.shots, a.seed, a.bos, a.max_new_tokens, Model::config.max_seq_len};
    std::vector<eval::PreparedTask> prepared;
    std::int64_t longest = 1;
    for (auto const& t : tasks) {
      prepared.push_back(eval::prepare(t, *tok, o));
      longest = std::max(longest, prepared.back().longest);
    }
    nn::Generator gen(model, a.batch, longest);
    auto const start = Clock::now();
    std::vector<eval::TaskResult> results;
    for (auto const& p : prepared) {
      auto last = Clock::now() - std::chrono::seconds(10);
      auto const t0 = Clock::now();
      char const* unit = p.task->kind == eval::TaskKind::multiple_choice ? "choices" : "items";
      results.push_back(eval::score(gen, p, *tok, o, [&](std::int64_t done, std::int64_t total) {
        auto const now = Clock::now();
        if (a.quiet || (done < total && now - last < std::chrono::seconds(2))) return;
        last = now;
        double const s = std::chrono::duration<double>(now - t0).count();
        std::fprintf(stderr, "[eval-tasks] %s: %lld/%lld %s, %.1f s\n", p.task->name.c_str(), static_cast<long long>(done),
                     static_cast<long long>(total), unit, s);
      }));
      if (p.truncated > 0 && !a.quiet)
        std::fprintf(stderr, "[eval-tasks] %s: %lld prompts cut from the left to the model's %lld tokens\n",
                     p.task->name.c_str(), static_cast<long long>(p.truncated), static_cast<long long>(Model::config.max_seq_len));
    }
    double const seconds = std::chrono::duration<double>(Clock::now() - start).count();

    std::string const table = results_table(results);
    std::printf("%s", table.c_str());
    nlohmann::ordered_json j{{"model", a.model}, {"config", name}, {"tokenizer", tok->name()}, {"shots", a.shots}, {"seed", a.seed},
                     {"bos", a.bos}, {"max_new_tokens", a.max_new_tokens}, {"seconds", seconds}};
    j["tasks"] = nlohmann::ordered_json::object();
    for (auto const& r : results) {
      nlohmann::ordered_json t{{"kind", eval::kind_name(r.kind)}, {"n", r.n}, {"shots", r.shots}, {"truncated", r.truncated}};
      for (auto const& m : r.metrics) t[m.name] = number_or_null(m.value), t[m.name + "_stderr"] = number_or_null(m.stderr_);
      j["tasks"][r.task] = t;
    }
    auto write = [](std::string const& path, std::string const& text) {
      std::ofstream f(path);
      KUMIKI_REQUIRE(f.good(), "cannot write '", path, "'");
      f << text;
      KUMIKI_REQUIRE(f.good(), "writing '", path, "' failed");
    };
    auto const dump = [](auto const& x, int indent) { return x.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace); };
    if (!a.out.empty()) write(a.out, dump(j, 2) + "\n");
    if (!a.markdown.empty()) write(a.markdown, table);
    if (!a.samples.empty()) {
      std::string lines;
      for (auto const& r : results)
        for (auto const& x : r.samples) lines += dump(x, -1) + "\n";
      write(a.samples, lines);
    }
    return 0;
  });
}

}  // namespace detail::cmd_generate

template <class Configs>
void add_generate(CLI::App& app) {
  using namespace detail::cmd_generate;
  static GenerateArgs a;
  auto* cmd = app.add_subcommand("generate", "Generate text from a checkpoint, run directory or Hugging Face model "
                                             "(key/value cache; greedy or seeded sampling)");
  add_model_options(cmd, a.model, a.tokenizer, a.bos);
  cmd->add_option("--prompt", a.prompts, "Prompt text (repeatable)");
  cmd->add_option("--prompts", a.prompts_file, "JSONL file, one {\"prompt\": \"...\"} per line")->check(CLI::ExistingFile);
  cmd->add_option("--max-new-tokens", a.max_new_tokens, "Tokens to generate per prompt at most");
  cmd->add_option("--temperature", a.temperature, "0 (default): greedy; else sample from softmax(logits / T)");
  cmd->add_option("--top-k", a.top_k, "Sample among the k most likely tokens (0: all)");
  cmd->add_option("--top-p", a.top_p, "Then among the smallest most-likely set of probability >= p");
  cmd->add_option("--seed", a.seed, "Sampling seed (Philox; the same seed gives the same text)");
  cmd->add_option("--stop", a.stops, "Stop a sequence at this text, which is not kept (repeatable)");
  cmd->add_option("--out", a.out, "Write one JSON line per prompt to this file instead of stdout");
  cmd->callback([] {
    int const rc = generate<Configs>(a);
    if (rc != 0) std::exit(rc);
  });
}

template <class Configs>
void add_eval_tasks(CLI::App& app) {
  using namespace detail::cmd_generate;
  static EvalTasksArgs a;
  auto* cmd = app.add_subcommand("eval-tasks", "Score a model on few-shot tasks: multiple choice by log-likelihood, "
                                               "generation by GSM8K-style exact match (docs/tasks.md)");
  add_model_options(cmd, a.model, a.tokenizer, a.bos);
  cmd->add_option("--tasks", a.tasks, "Task file, JSON lines (repeatable; a file may hold several tasks)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--shots", a.shots, "Examples of the same task before each item (default 0)");
  cmd->add_option("--seed", a.seed, "Chooses the few-shot examples (default 1234, lm-evaluation-harness's)");
  cmd->add_option("--batch", a.batch, "Sequences scored or generated together (default 8)");
  cmd->add_option("--max-new-tokens", a.max_new_tokens, "Generation tasks: tokens per answer at most (default 128)");
  cmd->add_option("--limit", a.limit, "Score only the first N items of each task (0: all)");
  cmd->add_option("--out", a.out, "Write the results as JSON to this file");
  cmd->add_option("--markdown", a.markdown, "Write the results table (markdown) to this file too");
  cmd->add_option("--samples", a.samples, "Write one JSON line per scored item (choices' log-likelihoods, completions)");
  cmd->add_flag("--quiet", a.quiet, "No progress lines");
  cmd->callback([] {
    int const rc = eval_tasks<Configs>(a);
    if (rc != 0) std::exit(rc);
  });
}

}  // namespace cli
KUMIKI_NAMESPACE_END
