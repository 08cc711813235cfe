// kumiki/eval/scorer.hpp: scores a model on few-shot tasks (eval/tasks.hpp) through nn::Generator,
// so any backend with a generator scores.
// - Multiple choice: every (item, choice) is one request, context = the few-shot prompt, continuation
//   = the item's target delimiter (" ") + choice, tokenized apart as lm-evaluation-harness does.
//   Requests run longest first in batches of the generator's slots; each feeds context +
//   continuation minus its last token and takes the logits after each continuation position
//   (Generator::Feed::logit_rows), so one pass gives sum log p(continuation | context) in double,
//   normalized over all rows of the LM head as the training loss and lm-eval on the exported model
//   are (the padding rows are no tokens; training drives their probability to ~0). A
//   context longer than the model reads loses tokens from its left (the continuation always stays),
//   counted in `truncated`.
// - Generate: the prompt's tokens (the left cut so that max_new_tokens fit), greedy decoding in
//   batches of the slots, ended by EOS, max_new_tokens or the item's "until" strings (cut before
//   them); then the strict and flexible GSM8K answers against the reference's.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "kumiki/config.hpp"
#include "kumiki/core/error.hpp"
#include "kumiki/data/tokenizer.hpp"
#include "kumiki/eval/tasks.hpp"
#include "kumiki/nn/generator.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace eval {

struct ScoreOptions {
  std::int64_t shots = 0;
  std::uint64_t seed = 1234;           ///< chooses the few-shot examples (lm-eval's default seed)
  bool bos = false;                    ///< start every prompt with the tokenizer's BOS
  std::int64_t max_new_tokens = 128;   ///< generate tasks
  std::int64_t max_len = 0;            ///< tokens the model reads at most (its max_seq_len)
};

struct Metric {
  std::string name;
  double value = 0, stderr_ = 0;
};

struct TaskResult {
  std::string task;
  TaskKind kind = TaskKind::multiple_choice;
  std::int64_t n = 0, shots = 0, truncated = 0;
  std::vector<Metric> metrics;
  std::vector<nlohmann::json> samples;  ///< per scored item: what was chosen or generated, and why
};

/// One task tokenized: per scored item its context, and for multiple choice one continuation per choice.
struct PreparedTask {
  Task const* task = nullptr;
  std::vector<std::string> prompt;                                  ///< per item, the text
  std::vector<std::vector<std::int32_t>> context;                   ///< per item, its tokens
  std::vector<std::vector<std::vector<std::int32_t>>> continuation;  ///< per item, per choice
  std::int64_t truncated = 0;
  std::int64_t longest = 0;  ///< the longest sequence the generator will hold
};

/// Tokenizes a task's prompts and choices, cut to what the model reads.
inline PreparedTask prepare(Task const& t, data::Tokenizer const& tok, ScoreOptions const& o) {
  KUMIKI_REQUIRE(o.max_len >= 2, "scoring needs a model reading at least 2 tokens");
  KUMIKI_REQUIRE(o.shots >= 0, "--shots must be >= 0, got ", o.shots);
  PreparedTask p;
  p.task = &t;
  for (std::size_t i = 0; i < t.scored.size(); ++i) {
    std::vector<std::int32_t> ctx;
    if (o.bos) ctx.push_back(tok.bos_id());
    p.prompt.push_back(fewshot_prompt(t, i, o.shots, o.seed));
    auto const enc = tok.encode(p.prompt.back());
    ctx.insert(ctx.end(), enc.begin(), enc.end());
    if (ctx.empty()) ctx.push_back(tok.eod_id());  // lm-eval: an empty context is the end-of-text token
    std::int64_t const n = static_cast<std::int64_t>(ctx.size());
    TaskItem const& it = t.scored[i];
    if (t.kind == TaskKind::multiple_choice) {
      std::vector<std::vector<std::int32_t>> conts;
      bool cut = false;
      for (auto const& c : it.choices) {
        auto cont = tok.encode(it.target_delimiter + c);
        std::int64_t const m = static_cast<std::int64_t>(cont.size());
        KUMIKI_REQUIRE(m >= 1 && m <= o.max_len - 1, it.where, ": choice ", kumiki::detail::json_quote(c), " is ", m,
                       " tokens; the model reads ", o.max_len, " (a choice must leave room for context)");
        cut = cut || n + m - 1 > o.max_len;
        p.longest = std::max(p.longest, std::min(n + m - 1, o.max_len));
        conts.push_back(std::move(cont));
      }
      p.truncated += cut;
      p.continuation.push_back(std::move(conts));
    } else {
      std::int64_t const room = o.max_len - o.max_new_tokens;
      KUMIKI_REQUIRE(room >= 1, "--max-new-tokens ", o.max_new_tokens, " leaves no room for a prompt in the model's ",
                     o.max_len, " tokens");
      if (n > room) ctx.erase(ctx.begin(), ctx.end() - room), ++p.truncated;
      p.longest = std::max(p.longest, std::min<std::int64_t>(static_cast<std::int64_t>(ctx.size()) + o.max_new_tokens, o.max_len));
    }
    p.context.push_back(std::move(ctx));
  }
  return p;
}

namespace detail {

/// log softmax(row)[target], and whether target is the row's arg max.
inline std::pair<double, bool> token_loglik(double const* row, std::int64_t V, std::int32_t target) {
  double m = row[0];
  std::int64_t arg = 0;
  for (std::int64_t v = 1; v < V; ++v)
    if (row[v] > m) m = row[v], arg = v;
  double s = 0;
  for (std::int64_t v = 0; v < V; ++v) s += std::exp(row[v] - m);
  return {row[target] - m - std::log(s), arg == target};
}

}  // namespace detail

/// Scores a prepared task with a generator whose max_len holds p.longest tokens. `progress(done,
/// total)` is called after every batch (requests: choices for multiple choice, items for generate).
template <class Gen>
TaskResult score(Gen& gen, PreparedTask const& p, data::Tokenizer const& tok, ScoreOptions const& o,
                 std::function<void(std::int64_t, std::int64_t)> const& progress = {}) {
  Task const& t = *p.task;
  KUMIKI_REQUIRE(gen.max_len() >= p.longest, "the generator holds ", gen.max_len(), " tokens per sequence; task \"", t.name,
                 "\" needs ", p.longest);
  std::int64_t const V = Gen::Vp;
  TaskResult r{t.name, t.kind, static_cast<std::int64_t>(t.scored.size()), o.shots, p.truncated, {}, {}};
  std::size_t const items = t.scored.size();
  std::size_t const slots = static_cast<std::size_t>(gen.slots());
  if (t.kind == TaskKind::multiple_choice) {
    struct Request {
      std::size_t item, choice;
      std::vector<std::int32_t> tokens;  // context + continuation minus its last token, cut from the left
      std::int64_t scored;               // continuation tokens
    };
    std::vector<Request> req;
    for (std::size_t i = 0; i < items; ++i)
      for (std::size_t c = 0; c < p.continuation[i].size(); ++c) {
        auto const& cont = p.continuation[i][c];
        std::vector<std::int32_t> all = p.context[i];
        all.insert(all.end(), cont.begin(), cont.end() - 1);
        if (static_cast<std::int64_t>(all.size()) > gen.max_len()) all.erase(all.begin(), all.end() - gen.max_len());
        req.push_back({i, c, std::move(all), static_cast<std::int64_t>(cont.size())});
      }
    std::vector<std::size_t> order(req.size());
    std::iota(order.begin(), order.end(), std::size_t{0});
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return req[a].tokens.size() > req[b].tokens.size(); });
    std::vector<std::vector<double>> ll(items);
    std::vector<std::vector<bool>> greedy(items);
    for (std::size_t i = 0; i < items; ++i) ll[i].assign(p.continuation[i].size(), 0.0), greedy[i].assign(p.continuation[i].size(), false);
    for (std::size_t b = 0; b < order.size(); b += slots) {
      std::vector<typename Gen::Feed> feeds;
      for (std::size_t s = 0; s < slots && b + s < order.size(); ++s) {
        Request const& q = req[order[b + s]];
        gen.reset(static_cast<std::int64_t>(s));
        feeds.push_back({static_cast<std::int64_t>(s), q.tokens, q.scored});
      }
      auto const logits = gen.extend(feeds, Gen::Vocab::padded);
      for (std::size_t s = 0; s < feeds.size(); ++s) {
        Request const& q = req[order[b + s]];
        auto const& cont = p.continuation[q.item][q.choice];
        double sum = 0;
        bool all_greedy = true;
        for (std::int64_t k = 0; k < q.scored; ++k) {
          auto const [lp, g] = detail::token_loglik(logits[s].data() + k * V, V, cont[static_cast<std::size_t>(k)]);
          sum += lp, all_greedy = all_greedy && g;
        }
        ll[q.item][q.choice] = sum, greedy[q.item][q.choice] = all_greedy;
      }
      if (progress) progress(static_cast<std::int64_t>(std::min(b + slots, order.size())), static_cast<std::int64_t>(order.size()));
    }
    std::vector<double> acc, acc_norm;
    for (std::size_t i = 0; i < items; ++i) {
      TaskItem const& it = t.scored[i];
      ChoiceVerdict const v = choose(ll[i], it.choices);
      acc.push_back(v.pick == it.gold), acc_norm.push_back(v.pick_norm == it.gold);
      r.samples.push_back({{"task", t.name}, {"item", i}, {"prompt", p.prompt[i]}, {"choices", it.choices}, {"gold", it.gold},
                           {"loglikelihoods", ll[i]}, {"is_greedy", greedy[i]}, {"pick", v.pick}, {"pick_norm", v.pick_norm},
                           {"acc", acc.back()}, {"acc_norm", acc_norm.back()}});
    }
    auto const a = mean_stderr(acc), an = mean_stderr(acc_norm);
    r.metrics = {{"acc", a.mean, a.stderr_}, {"acc_norm", an.mean, an.stderr_}};
  } else {
    nn::GenerateOptions g;
    g.max_new_tokens = o.max_new_tokens;
    g.eos = tok.eod_id();
    std::vector<double> em, em_flex;
    for (std::size_t b = 0; b < items; b += slots) {
      std::size_t const n = std::min(slots, items - b);
      std::vector<std::vector<std::int32_t>> prompts(p.context.begin() + static_cast<std::ptrdiff_t>(b),
                                                     p.context.begin() + static_cast<std::ptrdiff_t>(b + n));
      std::vector<std::vector<std::int32_t>> ids(n);
      std::vector<std::string> text(n);
      gen.generate(prompts, g, [&](std::size_t k, std::int32_t tok_id) {
        if (tok_id == g.eos) return false;
        ids[k].push_back(tok_id);
        text[k] = tok.decode(ids[k]);
        for (auto const& u : t.scored[b + k].until)
          if (auto const at = text[k].find(u); at != std::string::npos) {
            text[k].erase(at);
            return false;
          }
        return true;
      });
      for (std::size_t k = 0; k < n; ++k) {
        TaskItem const& it = t.scored[b + k];
        std::string const gold = normalize_answer(gold_answer(it.answer));
        auto const strict = strict_answer(text[k]), flex = flexible_answer(text[k]);
        em.push_back(strict && normalize_answer(*strict) == gold);
        em_flex.push_back(flex && normalize_answer(*flex) == gold);
        r.samples.push_back({{"task", t.name}, {"item", b + k}, {"prompt", p.prompt[b + k]}, {"completion", text[k]},
                             {"gold", gold}, {"strict", strict ? *strict : "[invalid]"},
                             {"flexible", flex ? *flex : "[invalid]"}, {"exact_match", em.back()},
                             {"exact_match_flexible", em_flex.back()}});
      }
      if (progress) progress(static_cast<std::int64_t>(b + n), static_cast<std::int64_t>(items));
    }
    auto const a = mean_stderr(em), f = mean_stderr(em_flex);
    r.metrics = {{"exact_match", a.mean, a.stderr_}, {"exact_match_flexible", f.mean, f.stderr_}};
  }
  return r;
}

}  // namespace eval
KUMIKI_NAMESPACE_END
