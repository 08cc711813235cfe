// kumiki/eval/tasks.hpp: few-shot task files and their metrics, independent of any model. The
// conventions are lm-evaluation-harness's, so numbers compare with what it reports:
// - A task file is JSON lines, one item each (docs/tasks.md): a multiple-choice item scores every
//   choice by its log-likelihood given the prompt; a generation item is answered greedily and its
//   final number after "####" compared with the reference's (GSM8K's rule).
// - Prompt: K examples of the same task, each "query" + " " + target, then the item's query, all
//   joined by "\n\n" (lm-eval's target and few-shot delimiters; an item may set its own target
//   delimiter, e.g. "" for a Japanese cloze). A choice is scored as the continuation " " + choice.
// - acc: the choice of highest log-likelihood; acc_norm: of highest log-likelihood per character of
//   the choice (lm-eval's length normalization: Unicode code points of the choice text); the first
//   choice wins ties, like numpy's argmax.
// - exact_match (strict): the first number after "#### " in the completion; exact_match_flexible: its
//   last number. Both sides then lose commas, "$" and one trailing "." and are compared ignoring case.
// - Standard error of a mean of per-item scores: sample standard deviation (n - 1) over sqrt(n).
#pragma once

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "kumiki/config.hpp"
#include "kumiki/core/error.hpp"
#include "kumiki/core/json.hpp"
#include "kumiki/core/philox.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace eval {

enum class TaskKind { multiple_choice, generate };

inline char const* kind_name(TaskKind k) { return k == TaskKind::multiple_choice ? "multiple_choice" : "generate"; }

/// One line of a task file.
struct TaskItem {
  std::string task;                  ///< the task it belongs to (several tasks may share a file)
  TaskKind kind = TaskKind::multiple_choice;
  std::string query;                 ///< e.g. "Question: ...\nAnswer:"
  std::vector<std::string> choices;  ///< multiple choice: the candidate answers
  std::int64_t gold = 0;             ///< multiple choice: index of the right one
  std::string answer;                ///< generate: the reference answer, ending in "#### <number>"
  std::vector<std::string> until{"\n\n"};  ///< generate: the completion ends before any of these
  std::string target_delimiter = " ";  ///< between the query and its target or choice (lm-eval's)
  bool fewshot = false;              ///< only an example for prompts, never scored
  std::string where;                 ///< "file 'F' line N", for messages
};

/// The text a few-shot example shows after its query.
inline std::string const& target_of(TaskItem const& it) {
  return it.kind == TaskKind::multiple_choice ? it.choices[static_cast<std::size_t>(it.gold)] : it.answer;
}

inline constexpr std::string_view fewshot_delimiter = "\n\n";

namespace detail {

inline bool is_number_char(char c) { return (c >= '0' && c <= '9') || c == '.' || c == ','; }

/// Unicode code points of UTF-8 text (continuation bytes are not counted), as Python's len().
inline std::int64_t code_points(std::string_view s) {
  std::int64_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

}  // namespace detail

/// GSM8K's strict rule, lm-eval's regex `#### (\-?[0-9\.\,]+)`, first match; nullopt when none.
inline std::optional<std::string> strict_answer(std::string_view s) {
  for (std::size_t at = s.find("#### "); at != std::string_view::npos; at = s.find("#### ", at + 1)) {
    std::size_t i = at + 5, start = i;
    if (i < s.size() && s[i] == '-') ++i;
    std::size_t j = i;
    while (j < s.size() && detail::is_number_char(s[j])) ++j;
    if (j > i) return std::string(s.substr(start, j - start));
  }
  return std::nullopt;
}

/// lm-eval's flexible rule for GSM8K, regex `(-?[$0-9.,]{2,})|(-?[0-9]+)`, last match; nullopt when none.
inline std::optional<std::string> flexible_answer(std::string_view s) {
  std::optional<std::string> last;
  auto wide = [](char c) { return detail::is_number_char(c) || c == '$'; };
  for (std::size_t i = 0; i < s.size();) {
    std::size_t const b = i + (s[i] == '-' ? 1 : 0);
    std::size_t j = b;
    while (j < s.size() && wide(s[j])) ++j;
    if (j - b >= 2) {  // first alternative
      last = std::string(s.substr(i, j - i)), i = j;
      continue;
    }
    j = b;
    while (j < s.size() && s[j] >= '0' && s[j] <= '9') ++j;
    if (j > b) {  // second alternative
      last = std::string(s.substr(i, j - i)), i = j;
      continue;
    }
    ++i;
  }
  return last;
}

/// lm-eval's gsm8k exact_match normalization: regexes_to_ignore [",", "\$", "(?s).*#### ", "\.$"],
/// then ignore_case.
inline std::string normalize_answer(std::string s) {
  std::erase(s, ',');
  std::erase(s, '$');
  if (auto const at = s.rfind("#### "); at != std::string::npos) s.erase(0, at + 5);
  if (!s.empty() && s.back() == '.') s.pop_back();
  else if (s.size() >= 2 && s.back() == '\n' && s[s.size() - 2] == '.') s.erase(s.size() - 2, 1);  // `$` before a final newline
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

/// The reference number of a generation item: its answer after the last "####", stripped.
inline std::string gold_answer(std::string_view answer) {
  auto const at = answer.rfind("####");
  std::string_view g = at == std::string_view::npos ? answer : answer.substr(at + 4);
  while (!g.empty() && std::isspace(static_cast<unsigned char>(g.front()))) g.remove_prefix(1);
  while (!g.empty() && std::isspace(static_cast<unsigned char>(g.back()))) g.remove_suffix(1);
  return std::string(g);
}

/// Multiple choice: the arg max of lls (acc) and of lls / code points of each choice (acc_norm).
struct ChoiceVerdict {
  std::int64_t pick = 0, pick_norm = 0;
};
inline ChoiceVerdict choose(std::vector<double> const& lls, std::vector<std::string> const& choices) {
  KUMIKI_CHECK(lls.size() == choices.size() && !lls.empty(), "one log-likelihood per choice");
  ChoiceVerdict v;
  double best = lls[0], best_norm = lls[0] / static_cast<double>(detail::code_points(choices[0]));
  for (std::size_t i = 1; i < lls.size(); ++i) {
    double const norm = lls[i] / static_cast<double>(detail::code_points(choices[i]));
    if (lls[i] > best) best = lls[i], v.pick = static_cast<std::int64_t>(i);
    if (norm > best_norm) best_norm = norm, v.pick_norm = static_cast<std::int64_t>(i);
  }
  return v;
}

/// Mean of per-item scores and its standard error (sample standard deviation over sqrt(n); NaN for n < 2).
struct MeanStderr {
  double mean = 0, stderr_ = 0;
};
inline MeanStderr mean_stderr(std::vector<double> const& x) {
  KUMIKI_CHECK(!x.empty(), "a mean of no scores");
  double const n = static_cast<double>(x.size());
  double m = 0;
  for (double v : x) m += v;
  m /= n;
  if (x.size() < 2) return {m, std::nan("")};
  double ss = 0;
  for (double v : x) ss += (v - m) * (v - m);
  return {m, std::sqrt(ss / (n - 1)) / std::sqrt(n)};
}

/// Reads a task file: JSON lines, blank lines skipped; every problem named by file, line and key.
inline std::vector<TaskItem> read_task_file(std::string const& path) {
  std::ifstream in(path);
  KUMIKI_REQUIRE(in.good(), "cannot read task file '", path, "'");
  static std::set<std::string> const known{"task", "kind", "query", "choices", "gold", "answer", "until", "fewshot",
                                                "target_delimiter"};
  std::vector<TaskItem> out;
  std::map<std::string, TaskKind> kinds;
  std::string line;
  for (std::int64_t n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    TaskItem it;
    it.where = "task file '" + path + "' line " + std::to_string(n);
    nlohmann::json const j = kumiki::detail::parse_json_strict(line, it.where);
    KUMIKI_REQUIRE(j.is_object(), it.where, ": expected a JSON object, e.g. {\"task\": \"t\", \"kind\": \"multiple_choice\", "
                   "\"query\": \"...\", \"choices\": [\"a\", \"b\"], \"gold\": 0}");
    for (auto const& [k, v] : j.items())
      KUMIKI_REQUIRE(known.count(k), it.where, ": unknown key \"", k, "\" (known: task, kind, query, choices, gold, answer, until, fewshot, "
                     "target_delimiter)");
    auto str = [&](char const* k) {
      KUMIKI_REQUIRE(j.contains(k) && j[k].is_string(), it.where, ": \"", k, "\" must be a string");
      return j[k].get<std::string>();
    };
    it.task = str("task");
    KUMIKI_REQUIRE(!it.task.empty(), it.where, ": \"task\" is empty; name the task");
    std::string const kind = str("kind");
    KUMIKI_REQUIRE(kind == "multiple_choice" || kind == "generate", it.where, ": \"kind\" is \"", kind,
                   "\"; expected \"multiple_choice\" or \"generate\"");
    it.kind = kind == "generate" ? TaskKind::generate : TaskKind::multiple_choice;
    it.query = str("query");
    KUMIKI_REQUIRE(!it.query.empty(), it.where, ": \"query\" is empty");
    if (j.contains("target_delimiter")) it.target_delimiter = str("target_delimiter");
    if (j.contains("fewshot")) {
      KUMIKI_REQUIRE(j["fewshot"].is_boolean(), it.where, ": \"fewshot\" must be true or false");
      it.fewshot = j["fewshot"].get<bool>();
    }
    if (it.kind == TaskKind::multiple_choice) {
      KUMIKI_REQUIRE(!j.contains("answer") && !j.contains("until"), it.where,
                     ": \"answer\" and \"until\" belong to generate items; a multiple_choice item has \"choices\" and \"gold\"");
      KUMIKI_REQUIRE(j.contains("choices") && j["choices"].is_array() && j["choices"].size() >= 2, it.where,
                     ": \"choices\" must be an array of at least two strings");
      for (auto const& c : j["choices"]) {
        KUMIKI_REQUIRE(c.is_string() && !c.get<std::string>().empty(), it.where, ": every choice must be a non-empty string");
        it.choices.push_back(c.get<std::string>());
      }
      KUMIKI_REQUIRE(j.contains("gold") && j["gold"].is_number_integer(), it.where, ": \"gold\" must be the index of the right choice");
      it.gold = j["gold"].get<std::int64_t>();
      KUMIKI_REQUIRE(it.gold >= 0 && it.gold < static_cast<std::int64_t>(it.choices.size()), it.where, ": \"gold\" is ",
                     it.gold, " but there are ", it.choices.size(), " choices (indices from 0)");
    } else {
      KUMIKI_REQUIRE(!j.contains("choices") && !j.contains("gold"), it.where,
                     ": \"choices\" and \"gold\" belong to multiple_choice items; a generate item has \"answer\"");
      it.answer = str("answer");
      KUMIKI_REQUIRE(strict_answer(it.answer).has_value(), it.where, ": \"answer\" must end in \"#### <number>\" (GSM8K's format), got ",
                     kumiki::detail::json_quote(it.answer));
      if (j.contains("until")) {
        KUMIKI_REQUIRE(j["until"].is_array(), it.where, ": \"until\" must be an array of stop strings");
        it.until.clear();
        for (auto const& u : j["until"]) {
          KUMIKI_REQUIRE(u.is_string() && !u.get<std::string>().empty(), it.where, ": every \"until\" entry must be a non-empty string");
          it.until.push_back(u.get<std::string>());
        }
      }
    }
    auto const [k, fresh] = kinds.emplace(it.task, it.kind);
    KUMIKI_REQUIRE(fresh || k->second == it.kind, it.where, ": task \"", it.task, "\" mixes kinds (this item is ", kind,
                   ", earlier ones ", kind_name(k->second), ")");
    out.push_back(std::move(it));
  }
  KUMIKI_REQUIRE(!out.empty(), "task file '", path, "' holds no item");
  return out;
}

/// A task: its items in file order; the scored ones and the pool its few-shot examples come from
/// (the items marked "fewshot" if any, else the scored items themselves, never an item for itself).
struct Task {
  std::string name;
  TaskKind kind = TaskKind::multiple_choice;
  std::vector<TaskItem> scored, pool;
  bool pool_is_scored = true;
};

/// Groups items by task, in order of first appearance.
inline std::vector<Task> group_tasks(std::vector<TaskItem> const& items) {
  std::vector<Task> tasks;
  std::map<std::string, std::size_t> index;
  for (auto const& it : items) {
    auto [at, fresh] = index.emplace(it.task, tasks.size());
    if (fresh) tasks.push_back(Task{it.task, it.kind, {}, {}, true});
    Task& t = tasks[at->second];
    (it.fewshot ? t.pool : t.scored).push_back(it);
  }
  for (auto& t : tasks) {
    KUMIKI_REQUIRE(!t.scored.empty(), "task \"", t.name, "\" has only few-shot examples; mark some items \"fewshot\": false");
    t.pool_is_scored = t.pool.empty();
    if (t.pool_is_scored) t.pool = t.scored;
  }
  return tasks;
}

/// The prompt of scored item i of a task with `shots` examples: examples drawn without replacement
/// from the pool (never item i itself) by Philox stream (seed, i), then the item's query.
inline std::string fewshot_prompt(Task const& t, std::size_t i, std::int64_t shots, std::uint64_t seed) {
  std::vector<std::size_t> cand;
  for (std::size_t k = 0; k < t.pool.size(); ++k)
    if (!(t.pool_is_scored && k == i)) cand.push_back(k);
  KUMIKI_REQUIRE(shots <= static_cast<std::int64_t>(cand.size()), "task \"", t.name, "\" has ", cand.size(),
                 " few-shot examples for each item, fewer than --shots ", shots);
  PhiloxStream const rng{seed, i};
  std::string p;
  for (std::int64_t s = 0; s < shots; ++s) {  // a partial Fisher-Yates shuffle
    std::size_t const left = cand.size() - static_cast<std::size_t>(s);
    std::size_t const pick = static_cast<std::size_t>(s) + static_cast<std::size_t>(rng.u32(static_cast<std::uint64_t>(s)) % left);
    std::swap(cand[static_cast<std::size_t>(s)], cand[pick]);
    TaskItem const& ex = t.pool[cand[static_cast<std::size_t>(s)]];
    p += ex.query;
    p += ex.target_delimiter;
    p += target_of(ex);
    p += fewshot_delimiter;
  }
  return p + t.scored[i].query;
}

}  // namespace eval
KUMIKI_NAMESPACE_END
