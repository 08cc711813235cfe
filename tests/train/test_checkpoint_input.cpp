// Hostile checkpoints (issue 11, fuzzing): every malformed manifest.json, step_count or state.json is
// a kumiki::InputError naming the file, the key and what it holds; manifest file names cannot leave
// the checkpoint directory. Each input the fuzzing campaign produced is a case here.
#include <catch2/catch.hpp>

#include "test_util.hpp"

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "kumiki/cpu.hpp"
#include "kumiki/core/arena.hpp"
#include "kumiki/optim/adamw.hpp"
#include "kumiki/train/checkpoint.hpp"
#include "kumiki/train/checkpoint_dir.hpp"
#include "kumiki/train/trainer.hpp"

namespace fs = std::filesystem;
using namespace kumiki;
using namespace kumiki::train;
using Catch::Contains;

namespace {

using kumiki_test::fresh_dir;

void spit(fs::path const& p, std::string const& s) { std::ofstream(p, std::ios::binary | std::ios::trunc) << s; }

// The error message of `f`, which must throw kumiki::InputError (any other exception fails the test).
template <class F>
std::string input_error(F&& f) {
  try {
    f();
  } catch (InputError const& e) {
    return e.what();
  }
  FAIL("no kumiki::InputError was thrown");
  return {};
}

// A committed checkpoint holding model.bin (20 bytes) and state.json, with "secret.bin" beside it.
fs::path small_checkpoint(char const* name) {
  fs::path const root = fresh_dir(name);
  CheckpointWriter w(root, 1);
  spit(w.path("model.bin"), "kumiki test weights\n");
  spit(w.path("state.json"), "{\"step\": 1}\n");
  fs::path const dir = w.commit();
  spit(root / "secret.bin", "outside the checkpoint\n");
  return dir;
}

std::string crc_of(fs::path const& p) {
  char crc[16];
  std::snprintf(crc, sizeof crc, "%08x", crc32c_file(p));
  return crc;
}

ArenaLayout tiny_layout() {
  ArenaLayout l;
  l.add("w", DType::f32, Shape{2, 3});
  l.add("b", DType::f32, Shape{3});
  return l;
}

// A training checkpoint of tiny_layout() at step 4 whose optimizer file carries `step_count` and
// `moment_dtype` moments, and whose state.json is `state` (empty: a valid one).
fs::path training_checkpoint(char const* name, std::string const& step_count, std::string const& state = {},
                             DType moment_dtype = DType::f32) {
  fs::path const root = fresh_dir(name);
  Arena<Cpu> params(tiny_layout());
  CheckpointWriter w(root, 4);
  io::write_safetensors(w.path(ckpt_model_file), params);
  std::vector<std::byte> zeros(64);
  std::vector<io::NamedTensor> moments;
  ArenaLayout const layout = tiny_layout();
  for (char const* prefix : {"exp_avg.", "exp_avg_sq."})
    for (ArenaEntry const& e : layout.entries())
      moments.push_back({prefix + e.name, AnyView{zeros.data(), moment_dtype, e.shape, DeviceKind::cpu}});
  io::write_safetensors(w.path(ckpt_optimizer_file), moments, {{"optimizer", "adamw"}, {"step_count", step_count}});
  TrainState s;
  s.step = 4;
  spit(w.path(ckpt_state_file), state.empty() ? to_json(s).dump(2) : state);
  spit(w.path(ckpt_recipe_file), "model = \"tiny_test\"\n");
  return w.commit();
}

TrainState load(fs::path const& dir) {
  Arena<Cpu> params(tiny_layout());
  optim::AdamW<Cpu> opt(tiny_layout());
  return load_checkpoint(dir, params, opt);
}

// The same as a ZeRO-1 rank reads it: the weights whole, the moments of elements [1, 5) only.
TrainState load_part(fs::path const& dir) {
  Arena<Cpu> params(tiny_layout());
  optim::AdamW<Cpu> opt(tiny_layout(), {}, {}, FlatRange{1, 5});
  std::int64_t steps = 0;
  return load_checkpoint_part(dir, params, opt.range(), opt.exp_avg(), opt.exp_avg_sq(), steps);
}

}  // namespace

TEST_CASE("manifest.json keys of the wrong type are input errors naming the file, key and value", "[train][checkpoint]") {
  fs::path const dir = small_checkpoint("kumiki-test-hostile-types");
  std::string const mpath = (dir / "manifest.json").string();
  std::string const model_crc = crc_of(dir / "model.bin");
  auto verify_with = [&](std::string const& manifest) {
    spit(dir / "manifest.json", manifest);
    return input_error([&] { verify_checkpoint(dir); });
  };
  std::string const head = R"("format": "kumiki-checkpoint", "version": 1)";
  // The issue's inputs, each of which escaped as nlohmann::json::type_error.
  CHECK_THAT(verify_with(R"({"format": {}})"),
             Contains("checkpoint manifest '" + mpath + "'") && Contains("\"format\" is an empty object"));
  CHECK_THAT(verify_with(R"({"format": "kumiki-checkpoint", "version": {}})"), Contains("\"version\" is an empty object"));
  CHECK_THAT(verify_with(R"({"format": "kumiki-checkpoint", "version": "1", "files": {}})"),
             Contains("\"version\" is the string \"1\"; this kumiki reads checkpoint version 1"));
  CHECK_THAT(verify_with("{" + head + R"(, "files": {"model.safetensors": 5}})"),
             Contains(mpath) && Contains("file \"model.safetensors\" is the number 5, expected an object"));
  CHECK_THAT(verify_with("{" + head + R"(, "files": {"model.bin": {"bytes": 20, "crc32c": 3735928559}}})"),
             Contains("file \"model.bin\": \"crc32c\" is the number 3735928559, expected a string"));
  // Further shapes of the same mistake.
  CHECK_THAT(verify_with("[1]"), Contains("is an array, not a JSON object"));
  CHECK_THAT(verify_with("{" + head + R"(, "files": [1]})"), Contains("\"files\" is an array"));
  CHECK_THAT(verify_with("{" + head + R"(, "files": {"model.bin": {"bytes": 20.0, "crc32c": "x"}}})"),
             Contains("\"bytes\" is the number 20.0, expected a non-negative integer"));
  CHECK_THAT(verify_with("{" + head + R"(, "files": {"model.bin": {"bytes": -20, "crc32c": "x"}}})"),
             Contains("\"bytes\" is the number -20"));
  CHECK_THAT(verify_with("{" + head + R"(, "files": {"model.bin": {"crc32c": "x"}}})"), Contains("has no \"bytes\""));
  CHECK_THAT(verify_with("{" + head + R"(, "step": "1", "files": {}})"), Contains("\"step\" is the string \"1\""));
  CHECK_THAT(verify_with("{" + head + "}"), Contains("lists no files"));
  CHECK_THAT(verify_with("{" + head + R"(, "files": {}, "files": {}})"), Contains("repeats the key \"files\""));
  CHECK_THAT(verify_with("{" + head + R"(, "files": )" + std::string(100, '[') + std::string(100, ']') + "}"),
             Contains("nests deeper than 64 levels"));
  CHECK_THAT(verify_with("{\"format\": "), Contains("is not valid JSON"));
  // A long string is shown shortened, never pasted whole.
  std::string const msg = verify_with(R"({"format": ")" + std::string(5000, 'k') + "\"}");
  CHECK(msg.size() < 400);
  // The same manifest, well typed, verifies.
  spit(dir / "manifest.json", "{" + head + R"(, "files": {"model.bin": {"bytes": 20, "crc32c": ")" + model_crc + "\"}}}");
  CHECK_NOTHROW(verify_checkpoint(dir));
}

TEST_CASE("manifest file names must stay inside the checkpoint directory", "[train][checkpoint]") {
  fs::path const dir = small_checkpoint("kumiki-test-hostile-names");
  std::string const secret_crc = crc_of(dir.parent_path() / "secret.bin");
  auto verify_listing = [&](std::string const& name, std::uint64_t bytes, std::string const& crc) {
    nlohmann::json m = {{"format", "kumiki-checkpoint"}, {"version", 1}, {"files", nlohmann::json::object()}};
    m["files"][name] = {{"bytes", bytes}, {"crc32c", crc}};
    spit(dir / "manifest.json", m.dump());
    return input_error([&] { verify_checkpoint(dir); });
  };
  // "../secret.bin" matches the outside file's size and CRC: it was read and verified before the fix.
  CHECK_THAT(verify_listing("../secret.bin", 23, secret_crc),
             Contains("file \"../secret.bin\" is not a plain file name inside the checkpoint directory"));
  CHECK_THAT(verify_listing((dir.parent_path() / "secret.bin").string(), 23, secret_crc),
             Contains("is not a plain file name"));
  CHECK_THAT(verify_listing("/etc/hostname", 0, "00000000"), Contains("\"/etc/hostname\" is not a plain file name"));
  for (std::string const& name : std::vector<std::string>{"..", ".", "", "sub/model.bin", "model.bin/", "..\\secret.bin",
                                                         std::string("model.bin\0x", 11)})
    CHECK_THAT(verify_listing(name, 20, "x"), Contains("is not a plain file name"));
  // A name the file system cannot even look up is reported, not thrown as std::filesystem_error.
  CHECK_THAT(verify_listing(std::string(300, 'x'), 1, "00000000"), Contains("is missing"));
  // The file names the writer produces remain fine, dots included.
  spit(dir / "..model.bin", "x");
  CHECK_NOTHROW(
      [&] {
        nlohmann::json m = {{"format", "kumiki-checkpoint"}, {"version", 1}, {"files", nlohmann::json::object()}};
        m["files"]["..model.bin"] = {{"bytes", 1}, {"crc32c", crc_of(dir / "..model.bin")}};
        spit(dir / "manifest.json", m.dump());
        verify_checkpoint(dir);
      }());
}

TEST_CASE("a hostile checkpoint is skipped when looking for the newest valid one", "[train][checkpoint]") {
  fs::path const dir = small_checkpoint("kumiki-test-hostile-newest");
  fs::path const root = dir.parent_path();
  fs::path const bad = root / checkpoint_name(2);
  fs::create_directories(bad);
  spit(bad / "manifest.json", R"({"format": "kumiki-checkpoint", "version": "1"})");
  std::vector<std::string> problems;
  CHECK(newest_valid_checkpoint(root, &problems) == dir);
  REQUIRE(problems.size() == 1);
  CHECK_THAT(problems[0], Contains("\"version\" is the string \"1\""));
}

TEST_CASE("step_count metadata is parsed strictly", "[train][checkpoint]") {
  CHECK(parse_step_count("0", "o") == 0);
  CHECK(parse_step_count("12", "o") == 12);
  CHECK(parse_step_count("9223372036854775807", "o") == INT64_MAX);
  for (char const* bad : {"", "abc", "12x", " 12", "12 ", "+1", "0x10", "1e3", "1.0"})
    CHECK_THAT(input_error([&] { parse_step_count(bad, "opt.safetensors"); }),
               Contains("the step_count metadata of optimizer file 'opt.safetensors' is \"") && Contains("not a decimal integer"));
  CHECK_THAT(input_error([&] { parse_step_count("99999999999999999999", "o"); }), Contains("outside the range of a 64-bit integer"));
  CHECK_THAT(input_error([&] { parse_step_count("-3", "o"); }), Contains("is -3, a negative step count"));
}

TEST_CASE("load_checkpoint reports a bad step_count, moment or state as an input error", "[train][checkpoint]") {
  // The valid checkpoint loads.
  TrainState const s = load(training_checkpoint("kumiki-test-load-ok", "7"));
  CHECK(s.step == 4);
  // std::stoll threw std::invalid_argument / std::out_of_range here before.
  CHECK_THAT(input_error([&] { load(training_checkpoint("kumiki-test-load-stepcount", "seven")); }),
             Contains("step_count metadata of optimizer file") && Contains("\"seven\", not a decimal integer"));
  CHECK_THAT(input_error([&] { load(training_checkpoint("kumiki-test-load-stepcount2", "18446744073709551616")); }),
             Contains("outside the range of a 64-bit integer"));
  CHECK_THAT(input_error([&] { load(training_checkpoint("kumiki-test-load-stepcount3", "-1")); }),
             Contains("a negative step count"));
  // Moments of the right byte size but another dtype were copied bit for bit before.
  CHECK_THAT(input_error([&] { load(training_checkpoint("kumiki-test-load-dtype", "7", {}, DType::i32)); }),
             Contains("optimizer tensor 'exp_avg.w'") && Contains("is i32 [2, 3], the optimizer expects f32 [2, 3]"));
  CHECK(load_part(training_checkpoint("kumiki-test-load-part-ok", "7")).step == 4);
  CHECK_THAT(input_error([&] { load_part(training_checkpoint("kumiki-test-load-part-dtype", "7", {}, DType::i32)); }),
             Contains("optimizer tensor 'exp_avg.w'") && Contains("is i32 [2, 3], the optimizer expects f32 [2, 3]"));
  CHECK_THAT(input_error([&] { load(training_checkpoint("kumiki-test-load-state", "7", R"({"step": "4"})")); }),
             Contains("state.json': \"step\" is the string \"4\", expected a non-negative integer"));
  // A file the manifest does not list is never read unverified.
  fs::path const dir = training_checkpoint("kumiki-test-load-unlisted", "7");
  nlohmann::json m = nlohmann::json::parse(std::ifstream(dir / "manifest.json"));
  m["files"].erase("state.json");
  spit(dir / "manifest.json", m.dump());
  CHECK_THAT(input_error([&] { load(dir); }), Contains("does not list 'state.json', so that file is unverified"));
}

TEST_CASE("state.json keys are checked for type, sign and consistency", "[train][checkpoint]") {
  TrainState good;
  good.step = 120;
  good.tokens = 491520;
  good.stage_index = 1;
  good.stage_step = 20;
  good.stage = "anneal";
  good.nonfinite_run = 1;
  good.skipped_total = 3;
  good.init_seed = 1234;
  good.data_seed = UINT64_MAX;
  good.datasets = {"data/a", "data/b"};
  good.consumed_per_dataset = {150, 90};
  nlohmann::json const j = to_json(good);
  TrainState const back = parse_train_state(j.dump(), "s.json");
  CHECK(back.step == 120);
  CHECK(back.stage == "anneal");
  CHECK(back.data_seed == UINT64_MAX);
  CHECK(back.datasets == good.datasets);
  CHECK(back.consumed_per_dataset == good.consumed_per_dataset);

  auto error_with = [&](auto&& change) {
    nlohmann::json k = j;
    change(k);
    return input_error([&] { parse_train_state(k.dump(), "ck/state.json"); });
  };
  CHECK_THAT(error_with([](auto& k) { k["step"] = "120"; }),
             Contains("checkpoint state 'ck/state.json': \"step\" is the string \"120\", expected a non-negative integer"));
  CHECK_THAT(error_with([](auto& k) { k["tokens"] = -1; }), Contains("\"tokens\" is the number -1"));
  CHECK_THAT(error_with([](auto& k) { k["step"] = 18446744073709551615ull; }),
             Contains("\"step\" is the number 18446744073709551615"));
  CHECK_THAT(error_with([](auto& k) { k["stage_index"] = 1.5; }), Contains("\"stage_index\" is the number 1.5"));
  CHECK_THAT(error_with([](auto& k) { k.erase("stage"); }), Contains("has no \"stage\""));
  CHECK_THAT(error_with([](auto& k) { k["stage"] = nullptr; }), Contains("\"stage\" is null, expected a string"));
  CHECK_THAT(error_with([](auto& k) { k["rng"] = {1, 2}; }), Contains("\"rng\" is an array, expected an object"));
  CHECK_THAT(error_with([](auto& k) { k["rng"].erase("data_seed"); }), Contains("has no \"rng.data_seed\""));
  CHECK_THAT(error_with([](auto& k) { k["rng"]["init_seed"] = -5; }), Contains("\"rng.init_seed\" is the number -5"));
  CHECK_THAT(error_with([](auto& k) { k["data"]["datasets"] = {"a", 5}; }),
             Contains("\"data.datasets[1]\" is the number 5, expected a string"));
  CHECK_THAT(error_with([](auto& k) { k["data"]["consumed_samples"] = "many"; }),
             Contains("\"data.consumed_samples\" is the string \"many\", expected an array"));
  CHECK_THAT(error_with([](auto& k) { k["data"]["consumed_samples"] = {1}; }),
             Contains("lists 2 datasets but 1 consumed-sample counts"));
  CHECK_THAT(error_with([](auto& k) { k["stage_step"] = 121; }),
             Contains("\"stage_step\" is 121, more than the 120 steps of the whole run"));
  CHECK_THAT(error_with([](auto& k) { k["nonfinite_run"] = 1000000000000; }), Contains("\"nonfinite_run\" is 1000000000000"));
  CHECK_THAT(input_error([&] { parse_train_state("[1]", "s.json"); }), Contains("'s.json' is an array, not a JSON object"));
  CHECK_THAT(input_error([&] { parse_train_state(R"({"step": 1, "step": 2})", "s.json"); }), Contains("repeats the key \"step\""));
  CHECK_THAT(input_error([&] { parse_train_state("{", "s.json"); }), Contains("checkpoint state 's.json' is not valid JSON"));
}

TEST_CASE("resuming truncates a log whose step is not a number with an input error", "[train][checkpoint]") {
  fs::path const dir = fresh_dir("kumiki-test-hostile-log");
  spit(dir / "log.jsonl", "{\"type\": \"step\", \"step\": 0}\n{\"type\": 5, \"step\": 1}\n{\"type\": \"step\", \"step\": \"2\"}\n");
  CHECK_THAT(input_error([&] { train::detail::truncate_log(dir / "log.jsonl", 1, 0); }),
             Contains("log.jsonl' line 3: \"step\" is the string \"2\", expected an integer"));
  spit(dir / "log.jsonl", "{\"type\": \"step\", \"step\": 0}\n{\"type\": 5, \"step\": 1}\n{\"type\": \"step\", \"step\": 2}\n");
  train::detail::truncate_log(dir / "log.jsonl", 2, 0);
  std::ifstream in(dir / "log.jsonl");
  std::string const kept((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(kept == "{\"step\":0,\"type\":\"step\"}\n{\"step\":1,\"type\":5}\n");
}
