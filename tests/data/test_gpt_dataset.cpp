// GPT samples: Fisher-Yates, Megatron's index structure (epochs, document/sample/shuffle index),
// the on-disk cache, resumption, data-parallel slicing, blending.
#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <numeric>

#include "kumiki/data/batch.hpp"
#include "kumiki/data/blended_dataset.hpp"
#include "kumiki/data/gpt_dataset.hpp"
#include "kumiki/data/sampler.hpp"
#include "test_util.hpp"

namespace kd = kumiki::data;
using kumiki_test::TempDir;

TEST_CASE("philox_shuffle: permutations, uniform over all orders, deterministic", "[data][shuffle]") {
  // 4 elements: 24 orders; 48000 independent streams give 2000 each, sd ~ 44.
  std::map<std::vector<int>, int> counts;
  for (std::uint64_t s = 0; s < 48000; ++s) {
    std::vector<int> v{0, 1, 2, 3};
    kd::philox_shuffle(v.data(), v.size(), kumiki::PhiloxStream{7, s});
    counts[v]++;
  }
  REQUIRE(counts.size() == 24);
  for (auto const& [perm, c] : counts) REQUIRE(std::abs(c - 2000) < 250);

  std::vector<int> a(1000), b(1000);
  std::iota(a.begin(), a.end(), 0);
  std::iota(b.begin(), b.end(), 0);
  kd::philox_shuffle(a.data(), a.size(), kumiki::PhiloxStream{1234, 1});
  kd::philox_shuffle(b.data(), b.size(), kumiki::PhiloxStream{1234, 1});
  REQUIRE(a == b);
  std::vector<int> sorted = a;
  std::sort(sorted.begin(), sorted.end());
  for (int i = 0; i < 1000; ++i) REQUIRE(sorted[static_cast<std::size_t>(i)] == i);
  REQUIRE(a != sorted);

  // below(n) stays in range, including n that are not powers of two and n = 1.
  kd::PhiloxDraws d(kumiki::PhiloxStream{3, 3});
  for (std::uint64_t n : {1ULL, 2ULL, 3ULL, 1000003ULL, (1ULL << 63) + 5})
    for (int k = 0; k < 200; ++k) REQUIRE(d.below(n) < n);
}

namespace {

kd::GptDatasetConfig gpt_cfg(std::int64_t L, std::int64_t samples, std::uint64_t seed = 1234, std::int64_t begin = 0,
                             std::int64_t end = -1) {
  kd::GptDatasetConfig c;
  c.seq_len = L;
  c.num_samples = samples;
  c.seed = seed;
  c.split_begin = begin;
  c.split_end = end;
  return c;
}

// The document stream of a GPT index, built independently from the document index.
std::vector<std::int32_t> doc_stream(kd::GptDataset const& g) {
  std::vector<std::int32_t> s;
  for (auto doc : g.index().document_index) {
    auto const t = g.indexed_dataset().sequence(doc);
    s.insert(s.end(), t.begin(), t.end());
  }
  return s;
}

void check_structure(kd::GptDataset const& g, std::vector<int> const& lengths, std::int64_t L, std::int64_t requested) {
  auto const& ix = g.index();
  std::int64_t const n_docs = static_cast<std::int64_t>(lengths.size());
  std::int64_t const tpe = std::accumulate(lengths.begin(), lengths.end(), std::int64_t{0});
  REQUIRE(ix.tokens_per_epoch == tpe);
  // Epochs: the smallest E with E * tpe >= requested * L + 1.
  std::int64_t E = 1;
  while (E * tpe < requested * L + 1) ++E;
  REQUIRE(ix.num_epochs == E);
  // Separate final epoch exactly when the last epoch is used below 80%.
  if (E > 1) {
    std::int64_t const sans = ((E - 1) * tpe - 1) / L;
    std::int64_t const per_epoch = (tpe - 1) / L;
    bool const sep = (requested - sans) < static_cast<std::int64_t>(0.8 * static_cast<double>(per_epoch));
    REQUIRE(ix.separate_final_epoch == sep);
  } else {
    REQUIRE_FALSE(ix.separate_final_epoch);
  }
  // Document index: every document exactly once per epoch.
  REQUIRE(static_cast<std::int64_t>(ix.document_index.size()) == E * n_docs);
  std::vector<int> seen(static_cast<std::size_t>(n_docs), 0);
  for (auto d : ix.document_index) seen[static_cast<std::size_t>(d)]++;
  for (int c : seen) REQUIRE(c == E);
  if (ix.separate_final_epoch) {  // the final epoch is a permutation of its own
    std::vector<std::int32_t> last(ix.document_index.end() - n_docs, ix.document_index.end());
    std::sort(last.begin(), last.end());
    for (std::int64_t d = 0; d < n_docs; ++d) REQUIRE(last[static_cast<std::size_t>(d)] == d);
  }
  // Sample index: sample s is tokens [s L, s L + L + 1) of the document stream; consecutive samples
  // share exactly one token, and only a tail shorter than a sample is left out.
  auto const stream = doc_stream(g);
  REQUIRE(static_cast<std::int64_t>(stream.size()) == E * tpe);
  std::int64_t const S = g.size();
  REQUIRE(S == (E * tpe - 1) / L);
  REQUIRE(S >= requested);
  REQUIRE(static_cast<std::int64_t>(stream.size()) - S * L < L + 1);
  std::vector<std::int32_t> buf(static_cast<std::size_t>(L + 1));
  for (std::int64_t s = 0; s < S; ++s) {
    g.get_unshuffled(s, buf.data());
    REQUIRE(std::equal(buf.begin(), buf.end(), stream.begin() + s * L));
  }
  // Shuffle index: a permutation; with a separate final epoch its two parts stay apart.
  std::vector<std::int64_t> perm = ix.shuffle_index;
  std::sort(perm.begin(), perm.end());
  for (std::int64_t s = 0; s < S; ++s) REQUIRE(perm[static_cast<std::size_t>(s)] == s);
  if (ix.separate_final_epoch) {
    std::int64_t const sans = ((E - 1) * tpe - 1) / L;
    for (std::int64_t s = 0; s < sans; ++s) REQUIRE(ix.shuffle_index[static_cast<std::size_t>(s)] < sans);
  }
  for (std::int64_t i = 0; i < std::min<std::int64_t>(S, 50); ++i) {
    std::vector<std::int32_t> want(static_cast<std::size_t>(L + 1));
    g.get_unshuffled(ix.shuffle_index[static_cast<std::size_t>(i)], want.data());
    REQUIRE(g.get(i) == want);
  }
}

}  // namespace

TEST_CASE("GPT dataset: Megatron's index structure and its invariants", "[data][gpt]") {
  TempDir dir("gpt");
  auto const lengths = kumiki_test::random_lengths(40, 0, 90, 5);  // includes empty documents
  kumiki_test::write_dataset(dir / "ds", lengths);
  auto ds = std::make_shared<kd::IndexedDataset const>(dir / "ds");
  std::int64_t const tpe = ds->total_tokens();
  for (std::int64_t L : {1, 7, 32, 100}) {
    for (std::int64_t samples : {std::int64_t{1}, tpe / L / 2, (tpe - 1) / L, (tpe - 1) / L + 1, 3 * tpe / L,
                                 (3 * tpe + tpe / 10) / L, (3 * tpe + 9 * tpe / 10) / L}) {
      CAPTURE(L, samples);
      kd::GptDataset g(ds, gpt_cfg(L, samples, 99));
      check_structure(g, lengths, L, samples);
    }
  }
  // Both final-epoch cases actually occur above.
  kd::GptDataset sep(ds, gpt_cfg(7, (3 * tpe + tpe / 10) / 7));
  kd::GptDataset nosep(ds, gpt_cfg(7, (3 * tpe + 9 * tpe / 10) / 7));
  REQUIRE(sep.index().separate_final_epoch);
  REQUIRE_FALSE(nosep.index().separate_final_epoch);
  REQUIRE(sep.index().num_epochs == 4);

  // Seeds matter; a split restricts documents.
  kd::GptDataset a(ds, gpt_cfg(16, 50, 1));
  kd::GptDataset b(ds, gpt_cfg(16, 50, 2));
  REQUIRE(a.index().document_index != b.index().document_index);
  kd::GptDataset part(ds, gpt_cfg(16, 20, 1, 10, 30));
  for (auto d : part.index().document_index) REQUIRE((d >= 10 && d < 30));
  REQUIRE_THROWS_AS(kd::GptDataset(ds, gpt_cfg(0, 5)), kumiki::Error);
}

TEST_CASE("GPT dataset: index cache keyed by its inputs, corrupt cache rebuilt", "[data][gpt][cache]") {
  TempDir dir("cache");
  kumiki_test::write_dataset(dir / "ds", kumiki_test::random_lengths(30, 1, 60, 9));
  auto ds = std::make_shared<kd::IndexedDataset const>(dir / "ds");
  kd::GptDatasetConfig cfg{.seq_len = 16, .num_samples = 200, .seed = 5, .cache_dir = dir / "cache"};
  kd::GptDataset built(ds, cfg);
  REQUIRE_FALSE(built.loaded_from_cache());
  REQUIRE(std::filesystem::exists(built.cache_path()));
  auto same = [&](kd::GptDataset const& g) {
    return g.index().document_index == built.index().document_index && g.index().sample_doc == built.index().sample_doc &&
           g.index().sample_offset == built.index().sample_offset && g.index().shuffle_index == built.index().shuffle_index;
  };
  kd::GptDataset again(ds, cfg);
  REQUIRE(again.loaded_from_cache());
  REQUIRE(same(again));

  // Any input change gives another key and a fresh build.
  for (auto change : {0, 1, 2, 3}) {
    auto c = cfg;
    if (change == 0) c.seed = 6;
    if (change == 1) c.seq_len = 17;
    if (change == 2) c.num_samples = 201;
    if (change == 3) c.split_begin = 1;
    kd::GptDataset other(ds, c);
    REQUIRE_FALSE(other.loaded_from_cache());
    REQUIRE(other.cache_path() != built.cache_path());
  }

  // Corruption of any kind -> rebuilt, identical, and the cache repaired.
  auto const good = kumiki_test::read_bytes(built.cache_path());
  std::mt19937_64 g(3);
  for (int iter = 0; iter < 60; ++iter) {
    auto bytes = good;
    if (iter % 3 == 0) bytes.resize(g() % bytes.size());
    else bytes[g() % bytes.size()] ^= static_cast<char>(1 + g() % 255);
    kumiki_test::write_bytes(built.cache_path(), bytes);
    kd::GptDataset rebuilt(ds, cfg);
    REQUIRE_FALSE(rebuilt.loaded_from_cache());
    REQUIRE(same(rebuilt));
    REQUIRE(kumiki_test::read_bytes(built.cache_path()) == good);
  }

  // A different dataset under the same name is another key too.
  kumiki_test::write_dataset(dir / "ds", kumiki_test::random_lengths(30, 1, 61, 10));
  kd::GptDataset changed(std::make_shared<kd::IndexedDataset const>(dir / "ds"), cfg);
  REQUIRE_FALSE(changed.loaded_from_cache());
}

TEST_CASE("pretraining sampler: Megatron's data-parallel slicing", "[data][sampler]") {
  // mbs 2, dp 3: each step takes 6 consecutive indices, rank r the pair [start + 2r, start + 2r + 2).
  std::vector<std::vector<std::int64_t>> got(3);
  for (std::int64_t r = 0; r < 3; ++r) {
    kd::PretrainingSampler s(20, 4, 2, r, 3);
    std::vector<std::int64_t> mb;
    while (s.next(mb)) got[static_cast<std::size_t>(r)].insert(got[static_cast<std::size_t>(r)].end(), mb.begin(), mb.end());
    REQUIRE(s.consumed_samples() == 16);  // 4 + 2 whole steps; the last 4 indices do not fill a step
  }
  REQUIRE(got[0] == std::vector<std::int64_t>{4, 5, 10, 11});
  REQUIRE(got[1] == std::vector<std::int64_t>{6, 7, 12, 13});
  REQUIRE(got[2] == std::vector<std::int64_t>{8, 9, 14, 15});
  kd::PretrainingSampler keep(20, 16, 2, 1, 3, /*drop_last=*/false);
  std::vector<std::int64_t> mb;
  REQUIRE(keep.next(mb));
  REQUIRE(mb == std::vector<std::int64_t>{18, 19});
  REQUIRE_FALSE(keep.next(mb));
  REQUIRE_THROWS_AS(kd::PretrainingSampler(20, 0, 2, 3, 3), kumiki::Error);
}

TEST_CASE("blended dataset: greedy index, surplus, sample reads, resume equivalence", "[data][blend]") {
  TempDir dir("blend");
  kumiki_test::write_dataset(dir / "a", kumiki_test::random_lengths(20, 1, 80, 1));
  kumiki_test::write_dataset(dir / "b", kumiki_test::random_lengths(50, 1, 30, 2));
  kumiki_test::write_dataset(dir / "c", kumiki_test::random_lengths(8, 100, 300, 3));
  auto const entries = kd::parse_data_path({"0.5", (dir / "a").string(), "0.3", (dir / "b").string(), "0.2",
                                            (dir / "c").string()});
  kd::BlendedDatasetConfig cfg{.seq_len = 32, .num_samples = 1000, .seed = 1234, .cache_dir = dir / "cache"};
  kd::BlendedDataset blend(entries, cfg);
  REQUIRE(blend.weights() == std::vector<double>{0.5 / 1.0, 0.3 / 1.0, 0.2 / 1.0});
  REQUIRE(blend.requested() == std::vector<std::int64_t>{503, 302, 201});  // ceil(ceil(1000 w) * 1.005)

  // The greedy rule keeps every dataset within one sample of its share at every prefix.
  std::vector<std::int64_t> count(3, 0);
  for (std::int64_t t = 0; t < blend.size(); ++t) {
    auto const [d, s] = blend.source(t);
    REQUIRE(s == count[static_cast<std::size_t>(d)]);
    ++count[static_cast<std::size_t>(d)];
    for (std::size_t i = 0; i < 3; ++i)
      REQUIRE(std::abs(static_cast<double>(count[i]) - blend.weights()[i] * static_cast<double>(t + 1)) <= 1.0);
    if (t == 499) REQUIRE(blend.consumed_per_dataset(500) == count);
    REQUIRE(blend.get(t) == blend.dataset(static_cast<std::size_t>(d)).get(s));
  }
  REQUIRE(count == std::vector<std::int64_t>{500, 300, 200});

  // Resume: a run restarted from its consumed-sample count (new objects, indices from the cache)
  // sees exactly the samples of the uninterrupted run, on every data-parallel rank.
  std::int64_t const mbs = 4, dp = 2;
  auto run = [&](kd::BlendedDataset const& bl, std::int64_t consumed, std::int64_t rank, int steps) {
    kd::PretrainingSampler s(bl.size(), consumed, mbs, rank, dp);
    std::vector<std::vector<std::int32_t>> seen;
    std::vector<std::int64_t> mb;
    for (int k = 0; k < steps && s.next(mb); ++k)
      for (auto i : mb) seen.push_back(bl.get(i));
    return seen;
  };
  for (std::int64_t rank = 0; rank < dp; ++rank) {
    auto const full = run(blend, 0, rank, 40);
    kd::BlendedDataset resumed(entries, cfg);
    for (std::size_t d = 0; d < 3; ++d) REQUIRE(resumed.dataset(d).loaded_from_cache());
    auto const tail = run(resumed, 15 * mbs * dp, rank, 25);
    REQUIRE(tail.size() == 25 * static_cast<std::size_t>(mbs));
    REQUIRE(std::equal(tail.begin(), tail.end(), full.begin() + 15 * mbs));
  }

  // A lone unweighted prefix is used directly (no surplus); weights need their prefixes.
  kd::BlendedDataset single(kd::parse_data_path({(dir / "a").string()}), cfg);
  REQUIRE(single.requested() == std::vector<std::int64_t>{1000});
  REQUIRE(single.source(777) == std::pair<std::int64_t, std::int64_t>{0, 777});
  REQUIRE_THROWS_AS(kd::parse_data_path({"0.5", "a", "0.5"}), kumiki::Error);
  REQUIRE_THROWS_AS(kd::parse_data_path({"x", "a", "0.5", "b"}), kumiki::Error);
}

TEST_CASE("fill_batch: inputs and next-token targets, every id checked once with its origin", "[data][batch]") {
  // Row r of the source is r*10 .. r*10+4 (L + 1 = 5 tokens): inputs drop the last, targets the first.
  std::vector<std::int32_t> sample, tokens, targets;
  auto get = [](std::int64_t r, std::int32_t* dst) {
    for (int t = 0; t < 5; ++t) dst[t] = static_cast<std::int32_t>(r * 10 + t);
  };
  auto describe = [](std::int64_t r) { return "row " + std::to_string(r) + " of the test source"; };
  kd::fill_batch(get, describe, 3, 4, 100, sample, tokens, targets);
  REQUIRE(tokens == std::vector<std::int32_t>{0, 1, 2, 3, 10, 11, 12, 13, 20, 21, 22, 23});
  REQUIRE(targets == std::vector<std::int32_t>{1, 2, 3, 4, 11, 12, 13, 14, 21, 22, 23, 24});
  // Vocabulary 24: row 2 holds 24 as its last token (a target only), which is refused all the same.
  CHECK_THROWS_AS(kd::fill_batch(get, describe, 3, 4, 24, sample, tokens, targets), kumiki::InputError);
  CHECK_THROWS_WITH(kd::fill_batch(get, describe, 3, 4, 24, sample, tokens, targets),
                    Catch::Contains("token id 24 at position 4 of row 2 of the test source is outside the vocabulary "
                                    "of the model (24 tokens, ids 0..23)"));
  std::vector<std::int32_t> const negative{3, -1};
  CHECK_THROWS_WITH(kd::check_token_ids(negative, 24, "x"), Catch::Contains("token id -1 at position 1 of x"));
}
