// Tests of kumiki/data/{normalize,split,blended_dataset}.hpp against figures of Megatron-LM and
// numpy derived by hand (or quoted from Megatron's own output in issue 11): the pairwise numpy.sum,
// the double normalization, the requests, --split ranges, the weightless form and refused weights.
#include <catch2/catch.hpp>

#include <array>
#include <string>
#include <vector>

#include "kumiki/data/blended_dataset.hpp"
#include "kumiki/data/normalize.hpp"
#include "kumiki/data/split.hpp"
#include "test_util.hpp"

namespace kd = kumiki::data;
using kumiki_test::TempDir;

namespace {

/// Message of the InputError `f` throws ("" when it throws none or another type).
template <class F>
std::string input_error(F&& f) {
  try {
    f();
  } catch (kumiki::InputError const& e) {
    return e.what();
  } catch (...) {
    return "(another exception)";
  }
  return "";
}

bool contains(std::string const& s, std::string const& part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("numpy_sum is numpy's pairwise summation, not a left-to-right loop", "[data][blend]") {
  // Ten 0.1: left to right 0.9999999999999999; numpy: r0..r7 = 0.1, ((0.2 + 0.2) + (0.2 + 0.2)) = 0.8,
  // then + 0.1 = 0.9, + 0.1 = 1.0 exactly.
  std::vector<double> const tenth(10, 0.1);
  double left = 0;
  for (double x : tenth) left += x;
  REQUIRE(left == 0.9999999999999999);
  REQUIRE(kd::numpy_sum(tenth) == 1.0);
  // Below 8 elements numpy adds left to right too.
  REQUIRE(kd::numpy_sum({0.1, 0.2, 0.3}) == (0.1 + 0.2) + 0.3);
  // 1 then seven times 2^-53: left to right every tiny term is lost (1 + 2^-53 ties to even, 1);
  // numpy's eight accumulators are the elements themselves, combined ((1 + e) + (e + e)) + ((e + e) + (e + e))
  // = (1 + 2^-52) + 2^-51 = 1 + 3 * 2^-52 exactly.
  double const e = 0x1p-53;
  std::vector<double> const v{1.0, e, e, e, e, e, e, e};
  double lr = 0;
  for (double x : v) lr += x;
  REQUIRE(lr == 1.0);
  REQUIRE(kd::numpy_sum(v) == 1.0 + 3 * 0x1p-52);
  // Normalization divides by that sum.
  REQUIRE(kd::normalize_weights(tenth) == std::vector<double>(10, 0.1));
}

TEST_CASE("weighted blends: Megatron's requests, double normalization and blending index", "[data][blend]") {
  TempDir dir("mblend");
  kumiki_test::write_dataset(dir / "r", kumiki_test::random_lengths(200, 5, 50, 5));
  std::string const r = (dir / "r").string();

  // Issue 11: `--data-path 3 r 6 r 1 r --seq-len 2 --samples 12`; Megatron's dataset index is
  // 1 0 1 2 1 0 1 1 0 1 1 0 (kumiki's single normalization gave 1 0 2 1 1 0 1 1 0 1 0 1).
  kd::BlendedDatasetConfig cfg;
  cfg.seq_len = 2;
  cfg.num_samples = 12;
  kd::BlendedDataset blend(kd::parse_data_path({"3", r, "6", r, "1", r}), cfg);
  std::vector<std::int16_t> const megatron{1, 0, 1, 2, 1, 0, 1, 1, 0, 1, 1, 0};
  REQUIRE(blend.kind() == kd::BlendKind::weighted);
  REQUIRE(std::vector<std::int16_t>(blend.dataset_index().begin(), blend.dataset_index().begin() + 12) == megatron);
  // Megatron's blend holds sum_i ceil(12 w_i) = ceil(3.5999999999999996) + ceil(7.199999999999999) +
  // ceil(1.2000000000000002) = 4 + 8 + 2 = 14 samples; requests ceil(4 * 1.005), ceil(8 * 1.005), ceil(2 * 1.005).
  REQUIRE(blend.size() == 14);
  REQUIRE(blend.target() == 12);
  REQUIRE(blend.requested() == std::vector<std::int64_t>{5, 9, 3});
  // The index's weights are normalize(normalize(w)).
  REQUIRE(blend.weights() == kd::normalize_weights(kd::normalize_weights({3, 6, 1})));

  // Issue 11: ten weights of 0.1 and 1000 samples: Megatron builds 101 samples of each (numpy's sum is
  // exactly 1, so w = 0.1 and ceil(ceil(100) * 1.005) = 101); a left-to-right sum gave 102.
  std::vector<std::string> ten;
  for (int i = 0; i < 10; ++i) ten.insert(ten.end(), {"0.1", r});
  cfg.num_samples = 1000;
  kd::BlendedDataset tenths(kd::parse_data_path(ten), cfg);
  REQUIRE(tenths.requested() == std::vector<std::int64_t>(10, 101));
  REQUIRE(tenths.size() == 1000);
  REQUIRE(kd::blend_request(1000, 0.1 / 0.9999999999999999) == 102);  // what the left-to-right sum asked
}

TEST_CASE("data-path lists: weighted, weightless and single forms, bad weights refused", "[data][blend]") {
  auto const w = kd::parse_data_path({"0.3", "a", "0.7", "b"});
  REQUIRE(w.size() == 2);
  REQUIRE(w[0].weight == 0.3);
  REQUIRE(w[1].prefix == "b");
  for (auto const& list : {std::vector<std::string>{"a", "b"}, std::vector<std::string>{"a", "b", "c"}}) {
    auto const e = kd::parse_data_path(list);
    REQUIRE(e.size() == list.size());
    for (auto const& x : e) REQUIRE(!x.weight.has_value());
  }
  REQUIRE(kd::parse_data_path({"a"}).size() == 1);

  // Weight 0, negative, NaN and infinite are refused, naming the weight and its prefix.
  for (std::string const bad : {"0", "-1", "nan", "inf", "0.0"}) {
    std::string const m = input_error([&] { kd::parse_data_path({"0.5", "data/ja", bad, "data/en"}); });
    INFO(m);
    REQUIRE(contains(m, "weight " + bad));
    REQUIRE(contains(m, "data/en"));
  }
  // Mixed forms and a weight without its prefix.
  REQUIRE(contains(input_error([] { kd::parse_data_path({"0.5", "a", "b", "c"}); }), "`b`"));
  REQUIRE(contains(input_error([] { kd::parse_data_path({"0.5", "a", "0.5"}); }), "`0.5`"));
  REQUIRE(contains(input_error([] { kd::parse_data_path({"a", "0.5", "b", "0.5"}); }), "`0.5`"));
  REQUIRE(!input_error([] { kd::parse_data_path({}); }).empty());

  // Weights given directly to the library are checked too.
  TempDir dir("mblend-w");
  kumiki_test::write_dataset(dir / "a", {30, 30});
  kd::BlendedDatasetConfig cfg;
  cfg.seq_len = 4;
  cfg.num_samples = 10;
  std::string const m = input_error([&] {
    kd::BlendedDataset({{0.5, dir / "a"}, {0.0, dir / "a"}}, cfg);
  });
  REQUIRE(contains(m, "weight 0"));
  REQUIRE(contains(m, (dir / "a").string()));
}

TEST_CASE("split strings: Megatron's shares and the sequence range of each part", "[data][blend]") {
  auto const d = kd::parse_split(kd::megatron_default_split);
  REQUIRE(d == std::array<double, 3>{969.0 / 1000.0, 30.0 / 1000.0, 1.0 / 1000.0});
  using P = std::pair<std::int64_t, std::int64_t>;
  REQUIRE(kd::split_range(d, kd::SplitPart::train, 1000) == P{0, 969});
  REQUIRE(kd::split_range(d, kd::SplitPart::valid, 1000) == P{969, 999});
  REQUIRE(kd::split_range(d, kd::SplitPart::test, 1000) == P{999, 1000});
  // Book-ends are running sums, each rounded: 1/3, 2/3 of 10 -> 3, 7 (the older rule, rounding
  // each share and shifting the last, gave 4, 7).
  auto const thirds = kd::parse_split("1,1,1");
  REQUIRE(kd::split_range(thirds, kd::SplitPart::train, 10) == P{0, 3});
  REQUIRE(kd::split_range(thirds, kd::SplitPart::valid, 10) == P{3, 7});
  REQUIRE(kd::split_range(thirds, kd::SplitPart::test, 10) == P{7, 10});
  // Python's round: half to even (2.5 -> 2, 3.5 -> 4); missing shares are 0 and their part is not built.
  auto const halves = kd::parse_split("1 1");
  REQUIRE(kd::split_range(halves, kd::SplitPart::train, 5) == P{0, 2});
  REQUIRE(kd::split_range(halves, kd::SplitPart::train, 7) == P{0, 4});
  REQUIRE(!kd::split_range(halves, kd::SplitPart::test, 7).has_value());
  auto const whole = kd::parse_split(kd::whole_dataset_split);
  REQUIRE(kd::split_range(whole, kd::SplitPart::train, 12345) == P{0, 12345});
  REQUIRE(!kd::split_range(whole, kd::SplitPart::valid, 12345).has_value());
  for (std::string const bad : {"a", "1,2,3,4", "0,0,0", "-1,1", "1e3", "", "1..2"}) {
    INFO(bad);
    REQUIRE(!input_error([&] { kd::parse_split(bad); }).empty());
  }
}

TEST_CASE("a blend reads only its part of the split", "[data][blend]") {
  TempDir dir("msplit");
  // 50 documents whose tokens name their document (token / 1000).
  kumiki_test::write_dataset(dir / "a", kumiki_test::random_lengths(50, 3, 40, 9));
  kd::BlendedDatasetConfig cfg;
  cfg.seq_len = 8;
  cfg.num_samples = 500;
  cfg.split = "90,8,2";  // train [0, 45), valid [45, 49), test [49, 50)
  for (auto const part : {kd::SplitPart::train, kd::SplitPart::valid, kd::SplitPart::test}) {
    cfg.part = part;
    kd::BlendedDataset b(kd::parse_data_path({"1", (dir / "a").string()}), cfg);
    std::int64_t const lo = part == kd::SplitPart::train ? 0 : part == kd::SplitPart::valid ? 45 : 49;
    std::int64_t const hi = part == kd::SplitPart::train ? 45 : part == kd::SplitPart::valid ? 49 : 50;
    REQUIRE(b.dataset(0).config().split_begin == lo);
    REQUIRE(b.dataset(0).config().split_end == hi);
    for (std::int64_t i = 0; i < b.size(); ++i)
      for (std::int32_t t : b.get(i)) REQUIRE((t / 1000 >= lo && t / 1000 < hi));
  }
  // A part left empty by the split is refused, naming the dataset and the split.
  cfg.split = "100,0,0";
  cfg.part = kd::SplitPart::valid;
  std::string const m = input_error([&] { kd::BlendedDataset({{1.0, dir / "a"}}, cfg); });
  REQUIRE(contains(m, (dir / "a").string()));
  REQUIRE(contains(m, "100,0,0"));
}

TEST_CASE("weightless blends: in proportion to one epoch of each dataset, capped at the total", "[data][blend]") {
  TempDir dir("mweightless");
  // seq_len 10: 10 documents of 11 tokens hold (110 - 1) / 10 = 10 samples per epoch; 5 of 11 hold 5.
  kumiki_test::write_dataset(dir / "a", std::vector<int>(10, 11));
  kumiki_test::write_dataset(dir / "b", std::vector<int>(5, 11));
  kd::BlendedDatasetConfig cfg;
  cfg.seq_len = 10;
  cfg.num_samples = 100;
  cfg.split = kd::whole_dataset_split;
  auto const entries = kd::parse_data_path({(dir / "a").string(), (dir / "b").string()});
  kd::BlendedDataset b(entries, cfg);
  REQUIRE(b.kind() == kd::BlendKind::weightless);
  REQUIRE(b.requested() == std::vector<std::int64_t>{10, 5});
  REQUIRE(b.weights() == std::vector<double>{10.0 / 15.0, 5.0 / 15.0});
  REQUIRE(b.size() == 15);  // min(100, 10 + 5)
  REQUIRE(b.consumed_per_dataset(15) == std::vector<std::int64_t>{10, 5});
  // Greedy with w = (2/3, 1/3): t = 0: 2/3 vs 1/3 -> 0; t = 1: -1/3 vs 1/3 -> 1; t = 2: 1/3 vs -1/3 -> 0;
  // t = 3: 2 - 2 = 0 vs 1 - 1 = 0, a tie -> 0; t = 4: 8/3 - 3 vs 4/3 - 1 -> 1.
  REQUIRE(std::vector<std::int16_t>(b.dataset_index().begin(), b.dataset_index().begin() + 5) ==
          std::vector<std::int16_t>{0, 1, 0, 0, 1});
  cfg.num_samples = 6;
  REQUIRE(kd::BlendedDataset(entries, cfg).size() == 6);
}
