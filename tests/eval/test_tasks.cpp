// eval/tasks.hpp: GSM8K answer extraction and normalization against what Python's re gives for
// lm-evaluation-harness's regexes (the expected strings below were produced by Python 3.11's re on
// those patterns), the choice metrics (ties, per-character normalization), the standard error, task
// files (every error names file, line and key) and few-shot prompts (deterministic, never the item
// itself, the "fewshot" pool).
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "kumiki/core/error.hpp"
#include "kumiki/eval/tasks.hpp"

using namespace kumiki;
using Catch::Contains;

namespace {
std::string write_file(std::string const& name, std::string const& text) {
  auto const path = (std::filesystem::temp_directory_path() / ("kumiki_test_tasks_" + name)).string();
  std::ofstream(path) << text;
  return path;
}
}  // namespace

TEST_CASE("tasks: strict and flexible answers as lm-eval's gsm8k regexes find them", "[eval]") {
  struct Case {
    char const* text;
    std::optional<std::string> strict, flexible;
  };
  // Python: re.findall(r"#### (\-?[0-9\.\,]+)", s)[0] and the non-empty group of
  // re.findall(r"(-?[$0-9.,]{2,})|(-?[0-9]+)", s)[-1].
  std::vector<Case> const cases{
      {"so 3 + 4 = 7. #### 7", "7", "7"},
      {"x #### -1,234.5 and #### 9", "-1,234.5", "9"},
      {"#### - 5 then #### 12.", "12.", "12."},
      {"no answer", std::nullopt, std::nullopt},
      {"costs $1,000. then 7 apples", std::nullopt, "7"},
      {"-5 - -3 = -2", std::nullopt, "-2"},
      {"a-b 1.2.3 x", std::nullopt, "1.2.3"},
      {"#### 3\n", "3", "3"},
      {"He has 42.", std::nullopt, "42."},
      {"5 ####5 #### 6", "6", "6"},
      {"x - 9", std::nullopt, "9"},
      {"$5", std::nullopt, "$5"},
  };
  for (auto const& c : cases) {
    INFO(c.text);
    CHECK(eval::strict_answer(c.text) == c.strict);
    CHECK(eval::flexible_answer(c.text) == c.flexible);
  }
}

TEST_CASE("tasks: exact_match normalization and the reference answer", "[eval]") {
  // Python: re.sub over [",", "\$", "(?s).*#### ", "\.$"], then lower().
  CHECK(eval::normalize_answer("1,234.") == "1234");
  CHECK(eval::normalize_answer("$42") == "42");
  CHECK(eval::normalize_answer("The answer #### 18") == "18");
  CHECK(eval::normalize_answer("ABC") == "abc");
  CHECK(eval::normalize_answer("7.\n") == "7\n");
  CHECK(eval::normalize_answer("3..") == "3.");
  CHECK(eval::gold_answer("Natalia sold 48/2 = 24 clips.\n#### 72 ") == "72");
  CHECK(eval::gold_answer("a #### b #### 1,000") == "1,000");
}

TEST_CASE("tasks: acc and acc_norm pick the first best, acc_norm per Unicode character", "[eval]") {
  // "個" is one character of three bytes: per character, -3 / 2 beats -4 / 2 ...
  auto v = eval::choose({-4.0, -3.0, -3.0}, {"aa", "5個", "xy"});
  CHECK(v.pick == 1);       // ties keep the first, like numpy's argmax
  CHECK(v.pick_norm == 1);
  // ... and a longer choice of lower log-likelihood can win per character.
  v = eval::choose({-2.0, -3.0}, {"ab", "日本語です"});
  CHECK(v.pick == 0);
  CHECK(v.pick_norm == 1);  // -2 / 2 = -1 < -3 / 5 = -0.6
}

TEST_CASE("tasks: mean and standard error of per-item scores", "[eval]") {
  auto const m = eval::mean_stderr({1, 0, 0, 1, 1});
  CHECK(m.mean == Approx(0.6));
  CHECK(m.stderr_ == Approx(std::sqrt(0.3) / std::sqrt(5.0)));  // sample variance 1.2 / 4
  CHECK(std::isnan(eval::mean_stderr({1}).stderr_));
}

TEST_CASE("tasks: task files are read strictly, every error names file, line and key", "[eval]") {
  auto const good = write_file("good.jsonl",
      "{\"task\": \"m\", \"kind\": \"multiple_choice\", \"query\": \"Q1\", \"choices\": [\"a\", \"b\"], \"gold\": 1}\n"
      "\n"
      "{\"task\": \"g\", \"kind\": \"generate\", \"query\": \"Q2\", \"answer\": \"1 + 1 = 2. #### 2\", \"until\": [\"Q:\"]}\n"
      "{\"task\": \"m\", \"kind\": \"multiple_choice\", \"query\": \"Q3\", \"choices\": [\"c\", \"d\"], \"gold\": 0, "
      "\"fewshot\": true, \"target_delimiter\": \"\"}\n");
  auto const items = eval::read_task_file(good);
  REQUIRE(items.size() == 3);
  CHECK(items[0].gold == 1);
  CHECK(items[1].until == std::vector<std::string>{"Q:"});
  CHECK(items[2].fewshot);
  CHECK(items[2].target_delimiter.empty());
  auto const tasks = eval::group_tasks(items);
  REQUIRE(tasks.size() == 2);
  CHECK(tasks[0].name == "m");
  CHECK(tasks[0].scored.size() == 1);
  CHECK(tasks[0].pool.size() == 1);
  CHECK_FALSE(tasks[0].pool_is_scored);

  struct Bad {
    char const* line;
    char const* says;
  };
  std::vector<Bad> const bad{
      {"[1, 2]", "line 1: expected a JSON object"},
      {"{\"task\": \"m\", \"kind\": \"mc\", \"query\": \"q\"}", "line 1: \"kind\" is \"mc\"; expected \"multiple_choice\" or \"generate\""},
      {"{\"task\": \"m\", \"kind\": \"multiple_choice\", \"query\": \"q\", \"choices\": [\"a\"], \"gold\": 0}",
       "\"choices\" must be an array of at least two strings"},
      {"{\"task\": \"m\", \"kind\": \"multiple_choice\", \"query\": \"q\", \"choices\": [\"a\", \"\"], \"gold\": 0}",
       "every choice must be a non-empty string"},
      {"{\"task\": \"m\", \"kind\": \"multiple_choice\", \"query\": \"q\", \"choices\": [\"a\", \"b\"], \"gold\": -1}",
       "\"gold\" is -1 but there are 2 choices"},
      {"{\"task\": \"g\", \"kind\": \"generate\", \"query\": \"q\", \"answer\": \"#### x\"}", "must end in \"#### <number>\""},
      {"{\"task\": \"g\", \"kind\": \"generate\", \"query\": \"q\", \"answer\": \"#### 1\", \"gold\": 0}",
       "\"choices\" and \"gold\" belong to multiple_choice items"},
      {"{\"task\": \"g\", \"kind\": \"generate\", \"query\": \"\", \"answer\": \"#### 1\"}", "\"query\" is empty"},
      {"{\"task\": 3, \"kind\": \"generate\", \"query\": \"q\", \"answer\": \"#### 1\"}", "\"task\" must be a string"},
      {"{\"task\": \"g\", \"kind\": \"generate\", \"query\": \"q\", \"answer\": \"#### 1\", \"fewshot\": 1}", "\"fewshot\" must be true or false"},
  };
  for (auto const& b : bad) {
    INFO(b.line);
    auto const path = write_file("bad.jsonl", std::string(b.line) + "\n");
    CHECK_THROWS_AS(eval::read_task_file(path), InputError);
    CHECK_THROWS_WITH(eval::read_task_file(path), Contains("task file '" + path + "'") && Contains(b.says));
  }
  CHECK_THROWS_WITH(eval::read_task_file(write_file("empty.jsonl", "\n\n")), Contains("holds no item"));
  CHECK_THROWS_WITH(eval::group_tasks(eval::read_task_file(write_file("pool.jsonl",
                        "{\"task\": \"g\", \"kind\": \"generate\", \"query\": \"q\", \"answer\": \"#### 1\", \"fewshot\": true}\n"))),
                    Contains("task \"g\" has only few-shot examples"));
}

TEST_CASE("tasks: few-shot prompts hold K distinct examples of the task, never the item, reproducibly", "[eval]") {
  std::string text;
  for (int i = 0; i < 6; ++i)
    text += kumiki::detail::concat("{\"task\": \"t\", \"kind\": \"generate\", \"query\": \"Q", i, "\", \"answer\": \"#### ", i, "\"}\n");
  auto const tasks = eval::group_tasks(eval::read_task_file(write_file("shots.jsonl", text)));
  auto const& t = tasks.at(0);
  CHECK(eval::fewshot_prompt(t, 2, 0, 1) == "Q2");
  std::vector<std::string> seen;
  for (std::size_t i = 0; i < 6; ++i) {
    std::string const p = eval::fewshot_prompt(t, i, 3, 1234);
    CHECK(p == eval::fewshot_prompt(t, i, 3, 1234));
    std::vector<std::string> parts;
    for (std::size_t at = 0;;) {
      auto const next = p.find("\n\n", at);
      parts.push_back(p.substr(at, next == std::string::npos ? std::string::npos : next - at));
      if (next == std::string::npos) break;
      at = next + 2;
    }
    REQUIRE(parts.size() == 4);
    CHECK(parts[3] == kumiki::detail::concat("Q", i));
    std::string const itself = kumiki::detail::concat("Q", i, " #### ", i);
    for (int k = 0; k < 3; ++k) {
      CHECK(parts[static_cast<std::size_t>(k)] != itself);
      CHECK(parts[static_cast<std::size_t>(k)].substr(0, 1) == "Q");
      for (int k2 = 0; k2 < k; ++k2) CHECK(parts[static_cast<std::size_t>(k)] != parts[static_cast<std::size_t>(k2)]);
      // An example shows its query, the target delimiter and its answer.
      std::string const& e = parts[static_cast<std::size_t>(k)];
      CHECK(e == e.substr(0, 2) + " #### " + e.substr(1, 1));
    }
    seen.push_back(p);
  }
  CHECK(eval::fewshot_prompt(t, 0, 3, 1234) != eval::fewshot_prompt(t, 0, 3, 99));  // the seed chooses
  CHECK_THROWS_WITH(eval::fewshot_prompt(t, 0, 6, 1), Contains("task \"t\" has 5 few-shot examples for each item, fewer than --shots 6"));
}
