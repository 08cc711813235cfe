// `kumiki generate --model CKPT|RUN|HF_DIR --prompt TEXT | --prompts FILE.jsonl [...]`: text from a
// model with a key/value cache (nn::Generator): prompts of different lengths prefilled together, one
// token per sequence per step, greedy or sampled from Philox (a seed reproduces the output exactly).
// One prompt streams its text as it comes; several print one JSON line each as they finish.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "command.hpp"
#include "kumiki/cpu.hpp"
#include "kumiki/core/json.hpp"
#include "kumiki/data/sentencepiece.hpp"
#include "kumiki/io/hf.hpp"
#include "kumiki/models/configs.hpp"
#include "kumiki/nn/generator.hpp"
#include "kumiki/nn/transformer.hpp"
#include "kumiki/train/hf_interop.hpp"

namespace {


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
std::vector<std::string> read_prompts(std::string const& path) {
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

int generate(GenerateArgs const& a) {
  using namespace kumiki;
  KUMIKI_REQUIRE(a.prompts.empty() != a.prompts_file.empty(), "give the prompts as --prompt TEXT or as --prompts FILE.jsonl");
  KUMIKI_REQUIRE(a.max_new_tokens >= 1, "--max-new-tokens must be >= 1, got ", a.max_new_tokens);
  KUMIKI_REQUIRE(a.temperature >= 0, "--temperature must be >= 0 (0: greedy), got ", a.temperature);
  KUMIKI_REQUIRE(a.top_k >= 0, "--top-k must be >= 0 (0: all tokens), got ", a.top_k);
  KUMIKI_REQUIRE(a.top_p > 0 && a.top_p <= 1, "--top-p must lie in (0, 1], got ", a.top_p);
  std::vector<std::string> const texts = a.prompts.empty() ? read_prompts(a.prompts_file) : a.prompts;
  auto const tok = data::make_tokenizer(a.tokenizer);

  train::CheckpointModel weights = train::read_model_weights(a.model);
  std::string const& name = weights.config_name;
  return models::dispatch_config(name, [&](auto tag) -> int {
    constexpr auto Cfg = decltype(tag)::config;
    if constexpr (Cfg.is_moe()) {
      KUMIKI_FAIL("model '", a.model, "' is the mixture-of-experts configuration '", name,
                  "'; kumiki generate handles dense models only for now");
    } else {
      KUMIKI_REQUIRE(tok->vocab_size() <= Cfg.vocab_size, "tokenizer '", tok->name(), "' has ", tok->vocab_size(),
                     " tokens but model '", name, "' only ", Cfg.vocab_size, "; give the model's own tokenizer (--tokenizer)");
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
      nn::Transformer<Cfg, Cpu, float> model;
      copy(model.params(), weights.params);
      weights.params = Arena<Cpu>(ArenaLayout{});  // the weights live in the model now
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
    }
  });
}

kumiki_cli::Registration reg{33, [](CLI::App& app) {
  static GenerateArgs a;
  auto* cmd = app.add_subcommand("generate", "Generate text from a checkpoint, run directory or Hugging Face model "
                                             "(key/value cache; greedy or seeded sampling)");
  cmd->add_option("--model", a.model, "Checkpoint, run directory (its newest checkpoint) or Hugging Face directory")
      ->required()
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--tokenizer", a.tokenizer, "A SentencePiece .model, or `bytes` (the default)");
  cmd->add_option("--prompt", a.prompts, "Prompt text (repeatable)");
  cmd->add_option("--prompts", a.prompts_file, "JSONL file, one {\"prompt\": \"...\"} per line")->check(CLI::ExistingFile);
  cmd->add_option("--max-new-tokens", a.max_new_tokens, "Tokens to generate per prompt at most");
  cmd->add_option("--temperature", a.temperature, "0 (default): greedy; else sample from softmax(logits / T)");
  cmd->add_option("--top-k", a.top_k, "Sample among the k most likely tokens (0: all)");
  cmd->add_option("--top-p", a.top_p, "Then among the smallest most-likely set of probability >= p");
  cmd->add_option("--seed", a.seed, "Sampling seed (Philox; the same seed gives the same text)");
  cmd->add_option("--stop", a.stops, "Stop a sequence at this text, which is not kept (repeatable)");
  cmd->add_flag("--bos", a.bos, "Start each prompt with the tokenizer's beginning-of-sequence token");
  cmd->add_option("--out", a.out, "Write one JSON line per prompt to this file instead of stdout");
  cmd->callback([] {
    int const rc = generate(a);
    if (rc != 0) std::exit(rc);
  });
}};

}  // namespace
