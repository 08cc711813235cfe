// Checkpoint directories: atomic appearance, manifest verification, corruption detection, pruning.
#include <catch2/catch.hpp>

#include "test_util.hpp"

#include <filesystem>
#include <fstream>
#include <string>

#include "kumiki/train/checkpoint_dir.hpp"

namespace fs = std::filesystem;
using namespace kumiki::train;

namespace {
using kumiki_test::fresh_dir;
fs::path save(fs::path const& root, std::int64_t step, std::string const& payload) {
  CheckpointWriter w(root, step);
  kumiki::write_file_atomic(w.path("model.bin"), payload);
  kumiki::write_file_atomic(w.path("state.json"), "{\"step\": " + std::to_string(step) + "}");
  return w.commit();
}
}  // namespace

TEST_CASE("checkpoint names sort by step and parse back", "[train][checkpoint]") {
  CHECK(checkpoint_name(1234) == "step_000001234");
  CHECK(checkpoint_step("/x/step_000001234") == 1234);
  CHECK_FALSE(checkpoint_step("/x/.tmp-step_000001234-77").has_value());
  CHECK_FALSE(checkpoint_step("/x/step_00000123a").has_value());
}

TEST_CASE("a committed checkpoint verifies, an uncommitted write leaves nothing", "[train][checkpoint]") {
  fs::path const root = fresh_dir("kumiki-test-ckpt-commit");
  fs::path const dir = save(root, 10, "weights-10");
  CHECK(dir == root / "step_000000010");
  CHECK_NOTHROW(verify_checkpoint(dir));
  CHECK(fs::is_regular_file(dir / "manifest.json"));
  {
    CheckpointWriter w(root, 20);
    kumiki::write_file_atomic(w.path("model.bin"), std::string("partial"));
    // destroyed without commit: an interrupted save
  }
  CHECK(list_checkpoints(root).size() == 1);
  for (auto const& e : fs::directory_iterator(root)) CHECK(e.path().filename().string().rfind(".tmp-", 0) != 0);
  CHECK(newest_valid_checkpoint(root) == dir);
}

TEST_CASE("corrupt, truncated and manifest-less checkpoints are reported and skipped", "[train][checkpoint]") {
  fs::path const root = fresh_dir("kumiki-test-ckpt-corrupt");
  fs::path const good = save(root, 1, "good weights");
  fs::path const flipped = save(root, 2, "flipped weights");
  fs::path const truncated = save(root, 3, "truncated weights");
  fs::path const partial = root / checkpoint_name(4);
  fs::create_directories(partial);
  std::ofstream(partial / "model.bin") << "no manifest";
  {
    std::fstream f(flipped / "model.bin", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(3);
    f.put('X');
  }
  fs::resize_file(truncated / "model.bin", 4);

  CHECK_THROWS_WITH(verify_checkpoint(flipped), Catch::Contains("'model.bin' fails its checksum"));
  CHECK_THROWS_WITH(verify_checkpoint(truncated), Catch::Contains("'model.bin' has 4 bytes, manifest says 17"));
  CHECK_THROWS_WITH(verify_checkpoint(partial), Catch::Contains("has no manifest.json"));
  fs::remove(good / "state.json");
  CHECK_THROWS_WITH(verify_checkpoint(good), Catch::Contains("'state.json' is missing"));
  std::ofstream(good / "state.json") << "{\"step\": 1}";

  std::vector<std::string> problems;
  CHECK(newest_valid_checkpoint(root, &problems) == good);
  CHECK(problems.size() == 3);
}

TEST_CASE("saving a step again keeps a valid copy and replaces a corrupt one", "[train][checkpoint]") {
  fs::path const root = fresh_dir("kumiki-test-ckpt-again");
  fs::path const dir = save(root, 5, "first");
  save(root, 5, "second");
  std::ifstream in(dir / "model.bin");
  std::string s;
  in >> s;
  CHECK(s == "first");
  fs::resize_file(dir / "model.bin", 1);
  save(root, 5, "third");
  CHECK_NOTHROW(verify_checkpoint(dir));
  std::ifstream in2(dir / "model.bin");
  in2 >> s;
  CHECK(s == "third");
}

TEST_CASE("pruning keeps the newest N and the stage ends, and removes leftovers", "[train][checkpoint]") {
  fs::path const root = fresh_dir("kumiki-test-ckpt-prune");
  // std::string("w").append(...), not "w" + ...: the latter trips a GCC 12 -Wrestrict false positive.
  for (int s = 1; s <= 5; ++s) save(root, s * 100, std::string("w").append(std::to_string(s)));
  fs::create_directories(root / ".tmp-step_000000600-999");
  prune_checkpoints(root, 2);
  auto const left = list_checkpoints(root);
  REQUIRE(left.size() == 2);
  CHECK(checkpoint_step(left[0]) == 400);
  CHECK(checkpoint_step(left[1]) == 500);
  CHECK_FALSE(fs::exists(root / ".tmp-step_000000600-999"));
  // Stage ends stay whatever their age.
  for (int s = 6; s <= 9; ++s) save(root, s * 100, std::string("w").append(std::to_string(s)));
  prune_checkpoints(root, 2, {500, 700});
  std::vector<std::int64_t> steps;
  for (auto const& d : list_checkpoints(root)) steps.push_back(*checkpoint_step(d));
  CHECK(steps == std::vector<std::int64_t>{500, 700, 800, 900});
}
