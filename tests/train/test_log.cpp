// Training log lines, the progress line, and `kumiki plot` on a log written through JsonlLog.
#include <catch2/catch.hpp>

#include "test_util.hpp"

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>

#include "kumiki/dist/comm.hpp"
#include "kumiki/train/log.hpp"

namespace fs = std::filesystem;
using namespace kumiki::train;

namespace {
using kumiki_test::fresh_dir;
}  // namespace

TEST_CASE("log lines are JSON objects with every field, non-finite numbers as null", "[train][log]") {
  fs::path const dir = fresh_dir("kumiki-test-log");
  {
    JsonlLog log((dir / "log.jsonl").string());
    log.write(StageRecord{"english", 0, 0});
    StepRecord r;
    r.step = 0;
    r.stage = "english";
    r.tokens = 2048;
    r.loss = 5.5;
    r.lr = 3e-4;
    r.grad_norm = std::numeric_limits<double>::infinity();
    r.skipped = true;
    log.write(r);
    log.write(EvalRecord{1, "english", 2048, "wiki", 5.0, std::exp(5.0), 512});
  }
  auto const lines = read_jsonl((dir / "log.jsonl").string());
  REQUIRE(lines.size() == 3);
  CHECK(lines[0]["type"] == "stage");
  CHECK(lines[1]["type"] == "step");
  CHECK(lines[1]["tokens"] == 2048);
  CHECK(lines[1]["loss"].get<double>() == 5.5);
  CHECK(lines[1]["grad_norm"].is_null());
  CHECK(lines[1]["skipped"] == true);
  for (char const* key : {"step", "stage", "tokens", "loss", "lr", "grad_norm", "tokens_per_s", "mfu", "peak_rss_mb"})
    CHECK(lines[1].contains(key));
  // Device and data-parallel fields only where they apply (a CPU run of one process writes neither).
  CHECK_FALSE(lines[1].contains("peak_device_mb"));
  CHECK_FALSE(lines[1].contains("overlapped_buckets"));
  CHECK(lines[2]["dataset"] == "wiki");
  CHECK(std::abs(lines[2]["perplexity"].get<double>() - std::exp(5.0)) < 1e-9);

  std::ofstream(dir / "bad.jsonl") << "{\"type\":\"step\"}\nnot json\n";
  CHECK_THROWS_WITH(read_jsonl((dir / "bad.jsonl").string()), Catch::Contains("line 2 is not a JSON object"));
}

TEST_CASE("a GPU data-parallel step logs its device memory peak and its overlapped buckets", "[train][log]") {
  StepRecord r;
  r.peak_device_mb = 1234.5;
  r.overlapped_buckets = 7;
  nlohmann::json const j = to_json(r);
  CHECK(j["peak_device_mb"].get<double>() == 1234.5);
  CHECK(j["overlapped_buckets"].get<std::int64_t>() == 7);
}

TEST_CASE("gradient buckets: a bucket starts once its bytes are final and large enough, the rest at the end",
          "[train][dist]") {
  kumiki::dist::GradientBuckets b(100);
  using R = kumiki::dist::GradientBuckets::Range;
  auto same = [](R x, R y) { return x.begin == y.begin && x.end == y.end; };
  CHECK(!b.started());
  CHECK(b.take(950, 1000).bytes() == 0);  // 50 bytes final: not yet a bucket
  CHECK(b.started());
  CHECK(same(b.take(880, 1000), R{880, 1000}));
  CHECK(b.take(880, 1000).bytes() == 0);  // nothing new
  CHECK(same(b.take(500, 1000), R{500, 880}));
  CHECK(b.take(450, 1000).bytes() == 0);
  CHECK(same(b.rest(1000), R{0, 500}));  // the embedding's and what gathered below 500
  CHECK(b.last_early() == 2);
  CHECK(!b.started());
  CHECK(same(b.rest(1000), R{0, 1000}));  // a step without reports: everything at the end
  CHECK(b.last_early() == 0);
}

TEST_CASE("progress line shows stage, step, loss, throughput and ETA", "[train][log]") {
  StepRecord r;
  r.stage = "japanese";
  r.step = 9;
  r.loss = 3.25;
  r.lr = 1e-4;
  r.tokens_per_s = 3100;
  std::string const line = progress_line(r, 100, 3725);
  CHECK_THAT(line, Catch::Contains("[japanese] step 10/100"));
  CHECK_THAT(line, Catch::Contains("loss 3.2500"));
  CHECK_THAT(line, Catch::Contains("3100 tok/s"));
  CHECK_THAT(line, Catch::Contains("ETA 1h02m05s"));
  CHECK(format_duration(59.4) == "59s");
  CHECK(format_duration(61) == "1m01s");
}

TEST_CASE("kumiki plot draws a PNG from a log and rejects a log without steps", "[train][plot]") {
  fs::path const dir = fresh_dir("kumiki-test-plot");
  {
    JsonlLog log((dir / "log.jsonl").string());
    std::int64_t tokens = 0, step = 0;
    for (char const* stage : {"english", "japanese"}) {
      log.write(StageRecord{stage, step, tokens});
      for (int i = 0; i < 20; ++i, ++step) {
        tokens += 1024;
        StepRecord r;
        r.step = step;
        r.stage = stage;
        r.tokens = tokens;
        r.loss = 6.0 - 0.05 * static_cast<double>(step);
        r.lr = 1e-3;
        log.write(r);
      }
      log.write(EvalRecord{step, stage, tokens, "heldout", 5.0, std::exp(5.0), 100});
    }
  }
  std::string const cmd = std::string(KUMIKI_CLI) + " plot " + (dir / "log.jsonl").string() + " --out " +
                          (dir / "curves.png").string() + " > /dev/null";
  REQUIRE(std::system(cmd.c_str()) == 0);
  std::ifstream png(dir / "curves.png", std::ios::binary);
  char sig[8] = {};
  png.read(sig, 8);
  CHECK(std::string(sig, 8) == std::string("\x89PNG\r\n\x1a\n", 8));
  CHECK(fs::file_size(dir / "curves.png") > 10000);

  std::ofstream(dir / "empty.jsonl") << "{\"type\":\"stage\",\"name\":\"a\",\"step\":0,\"tokens\":0}\n";
  std::string const bad = std::string(KUMIKI_CLI) + " plot " + (dir / "empty.jsonl").string() + " --out " +
                          (dir / "x.png").string() + " 2> " + (dir / "err.txt").string();
  CHECK(std::system(bad.c_str()) != 0);
  std::ifstream err(dir / "err.txt");
  std::string msg((std::istreambuf_iterator<char>(err)), {});
  CHECK_THAT(msg, Catch::Contains("holds no training steps"));
}
