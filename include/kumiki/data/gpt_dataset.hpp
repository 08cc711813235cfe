// kumiki/data/gpt_dataset.hpp: Megatron's GPTDataset structure over an indexed dataset: epochs,
// shuffled document index, sample index with the one-token overlap, shuffle index; cached on disk.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <sstream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "kumiki/config.hpp"
#include "kumiki/core/error.hpp"
#include "kumiki/data/indexed_dataset.hpp"
#include "kumiki/core/atomic_file.hpp"
#include "kumiki/core/mmap.hpp"
#include "kumiki/data/shuffle.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace data {

/// What a GPT sample index depends on.
struct GptDatasetConfig {
  std::int64_t seq_len = 0;       ///< L: each sample holds L + 1 tokens (inputs x[:-1], labels x[1:])
  std::int64_t num_samples = 0;   ///< samples requested; the index may hold more (whole epochs)
  std::uint64_t seed = 1234;      ///< Megatron's default --seed
  std::int64_t split_begin = 0;   ///< the split: sequences [split_begin, split_end) of the file
  std::int64_t split_end = -1;    ///< -1: to the end
  std::filesystem::path cache_dir{};  ///< empty: build in memory only
};

/// The three index arrays (Megatron's document_index, sample_index, shuffle_index).
struct GptIndex {
  std::int64_t num_epochs = 0;
  std::int64_t tokens_per_epoch = 0;
  bool separate_final_epoch = false;
  std::vector<std::int32_t> document_index;   ///< sequence ids, the split tiled num_epochs times, shuffled
  std::vector<std::int64_t> sample_doc;       ///< (S + 1): position in document_index where sample s starts
  std::vector<std::int32_t> sample_offset;    ///< (S + 1): token offset inside that document
  std::vector<std::int64_t> shuffle_index;    ///< (S): permutation of [0, S)
  std::int64_t num_samples() const { return static_cast<std::int64_t>(shuffle_index.size()); }
};

namespace detail {

// Stream ids of the four shuffles, so each is independent of the others' lengths.
inline constexpr std::uint64_t stream_document_index = 1;
inline constexpr std::uint64_t stream_document_index_final = 2;
inline constexpr std::uint64_t stream_shuffle_index = 3;
inline constexpr std::uint64_t stream_shuffle_index_final = 4;

/// Megatron's GPTDataset index construction (megatron/core/datasets/gpt_dataset.py and helpers.cpp
/// build_sample_idx), with our Philox Fisher-Yates in place of numpy's RandomState.
inline GptIndex build_gpt_index(std::vector<std::int32_t> const& sizes, std::int64_t split_begin, std::int64_t split_end,
                                std::int64_t seq_len, std::int64_t num_samples, std::uint64_t seed) {
  constexpr std::int64_t extra = 1;  // the one-token overlap: a sample reads L + 1 tokens
  KUMIKI_CHECK(seq_len > 0, "sequence length must be positive, got ", seq_len);
  KUMIKI_CHECK(num_samples >= 0 && num_samples <= (std::numeric_limits<std::int64_t>::max() - 1) / seq_len,
               "number of samples ", num_samples, " outside [0, 2^63 / seq_len)");
  KUMIKI_CHECK(0 <= split_begin && split_begin <= split_end && split_end <= static_cast<std::int64_t>(sizes.size()),
               "split [", split_begin, ", ", split_end, ") outside the ", sizes.size(), " sequences");
  GptIndex ix;
  std::int64_t const n_docs = split_end - split_begin;
  std::int64_t tpe = 0;
  for (std::int64_t d = split_begin; d < split_end; ++d) tpe += sizes[static_cast<std::size_t>(d)];
  KUMIKI_CHECK(tpe > extra, "the split holds ", tpe, " tokens; a GPT sample needs at least ", extra + 1);
  ix.tokens_per_epoch = tpe;

  // Epochs: the smallest E with E * tpe >= num_samples * L + 1.
  std::int64_t const needed = num_samples * seq_len + extra;
  std::int64_t const epochs = std::max<std::int64_t>(1, (needed + tpe - 1) / tpe);
  ix.num_epochs = epochs;

  // A last epoch used below 80% gets its own shuffle, so its samples do not crowd into a few documents.
  std::int64_t samples_sans_final = 0;
  if (epochs > 1) {
    samples_sans_final = ((epochs - 1) * tpe - extra) / seq_len;
    std::int64_t const from_final = num_samples - samples_sans_final;
    std::int64_t const per_epoch = (tpe - extra) / seq_len;
    KUMIKI_CHECK(from_final >= 0 && from_final <= per_epoch + 1, "inconsistent epoch arithmetic");
    ix.separate_final_epoch = from_final < static_cast<std::int64_t>(0.80 * static_cast<double>(per_epoch));
  }

  // Document index: the split's ids tiled E times, shuffled as a whole, or as (E-1 epochs) + (final).
  KUMIKI_CHECK(split_end <= std::numeric_limits<std::int32_t>::max(), "more than 2^31 sequences");
  KUMIKI_CHECK(epochs <= std::numeric_limits<std::int64_t>::max() / std::max<std::int64_t>(n_docs, 1), "too many epochs");
  ix.document_index.resize(static_cast<std::size_t>(epochs * n_docs));
  for (std::int64_t e = 0; e < epochs; ++e)
    for (std::int64_t d = 0; d < n_docs; ++d)
      ix.document_index[static_cast<std::size_t>(e * n_docs + d)] = static_cast<std::int32_t>(split_begin + d);
  if (!ix.separate_final_epoch) {
    philox_shuffle(ix.document_index.data(), ix.document_index.size(), PhiloxStream{seed, stream_document_index});
  } else {
    auto const first = static_cast<std::size_t>((epochs - 1) * n_docs);
    philox_shuffle(ix.document_index.data(), first, PhiloxStream{seed, stream_document_index});
    philox_shuffle(ix.document_index.data() + first, static_cast<std::size_t>(n_docs),
                   PhiloxStream{seed, stream_document_index_final});
  }

  // Sample index: walk the shuffled documents taking L + 1 tokens per sample; the last token of a
  // sample is the first of the next. A final partial sample is dropped.
  std::int64_t const total = (epochs * tpe - extra) / seq_len;
  ix.sample_doc.resize(static_cast<std::size_t>(total + 1));
  ix.sample_offset.resize(static_cast<std::size_t>(total + 1));
  std::int64_t pos = 0, offset = 0;
  ix.sample_doc[0] = 0;
  ix.sample_offset[0] = 0;
  auto const last_pos = static_cast<std::int64_t>(ix.document_index.size()) - 1;
  for (std::int64_t s = 1; s <= total; ++s) {
    std::int64_t remaining = seq_len + extra;
    while (remaining != 0) {
      std::int64_t const doc_len = sizes[static_cast<std::size_t>(ix.document_index[static_cast<std::size_t>(pos)])] - offset;
      remaining -= doc_len;
      if (remaining <= 0) {
        offset += remaining + doc_len - extra;  // step back one token: the overlap
        remaining = 0;
      } else {
        if (pos == last_pos) {  // only the very last sample can end exactly at the stream's end
          KUMIKI_CHECK(s == total, "sample index ran out of documents at sample ", s, " of ", total);
          offset = sizes[static_cast<std::size_t>(ix.document_index[static_cast<std::size_t>(pos)])] - extra;
          break;
        }
        ++pos;
        offset = 0;
      }
    }
    ix.sample_doc[static_cast<std::size_t>(s)] = pos;
    ix.sample_offset[static_cast<std::size_t>(s)] = static_cast<std::int32_t>(offset);
  }

  // Shuffle index: a permutation of the samples; with a separate final epoch, its samples are
  // shuffled among themselves after those of the earlier epochs.
  ix.shuffle_index.resize(static_cast<std::size_t>(total));
  for (std::int64_t s = 0; s < total; ++s) ix.shuffle_index[static_cast<std::size_t>(s)] = s;
  std::int64_t const first_part = ix.separate_final_epoch ? samples_sans_final : total;
  philox_shuffle(ix.shuffle_index.data(), static_cast<std::size_t>(first_part), PhiloxStream{seed, stream_shuffle_index});
  philox_shuffle(ix.shuffle_index.data() + first_part, static_cast<std::size_t>(total - first_part),
                 PhiloxStream{seed, stream_shuffle_index_final});
  return ix;
}

// ---- on-disk cache ------------------------------------------------------------------------------
// File: magic "KMGPTIX1", u64 key hash, u64 description length, description (text), then u64
// num_epochs, tokens_per_epoch, separate_final_epoch, |document_index|, |samples + 1|, |shuffle|,
// the four arrays, and a u64 checksum of everything before it. Any mismatch means "rebuild".

inline constexpr char gpt_cache_magic[8] = {'K', 'M', 'G', 'P', 'T', 'I', 'X', '1'};

inline void save_gpt_index(std::filesystem::path const& path, std::uint64_t key, std::string const& description,
                           GptIndex const& ix) {
  std::string buf;
  auto put = [&buf](void const* p, std::size_t n) { buf.append(static_cast<char const*>(p), n); };
  auto put64 = [&put](std::uint64_t v) { put(&v, 8); };
  put(gpt_cache_magic, 8);
  put64(key);
  put64(description.size());
  put(description.data(), description.size());
  put64(static_cast<std::uint64_t>(ix.num_epochs));
  put64(static_cast<std::uint64_t>(ix.tokens_per_epoch));
  put64(ix.separate_final_epoch ? 1 : 0);
  put64(ix.document_index.size());
  put64(ix.sample_doc.size());
  put64(ix.shuffle_index.size());
  put(ix.document_index.data(), ix.document_index.size() * 4);
  put(ix.sample_doc.data(), ix.sample_doc.size() * 8);
  put(ix.sample_offset.data(), ix.sample_offset.size() * 4);
  put(ix.shuffle_index.data(), ix.shuffle_index.size() * 8);
  put64(hash_bytes(buf.data(), buf.size()));
  std::filesystem::create_directories(path.parent_path());
  AtomicFile f(path);
  f.write(buf.data(), buf.size());
  f.commit();
}

/// Loads a cached index; false (and nothing loaded) when the file is missing, for another key,
/// truncated, fails its checksum or holds values outside the dataset.
inline bool load_gpt_index(std::filesystem::path const& path, std::uint64_t key, std::string const& description,
                           std::vector<std::int32_t> const& sizes, GptIndex& out) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return false;
  MappedFile f(path);
  std::byte const* p = f.data();
  std::size_t const size = f.size();
  std::size_t at = 0;
  auto take = [&](void* dst, std::size_t n) {
    if (n > size - at) return false;
    if (n) std::memcpy(dst, p + at, n);
    at += n;
    return true;
  };
  char magic[8];
  std::uint64_t k = 0, dlen = 0;
  if (size < 8 + 16 + 8 || !take(magic, 8) || std::memcmp(magic, gpt_cache_magic, 8) != 0) return false;
  if (!take(&k, 8) || k != key || !take(&dlen, 8) || dlen != description.size()) return false;
  if (dlen > size - at || std::memcmp(p + at, description.data(), dlen) != 0) return false;
  at += dlen;
  std::uint64_t h[6];
  if (!take(h, sizeof(h))) return false;
  auto const [epochs, tpe, sep, n_doc, n_sample, n_shuffle] = std::tuple(h[0], h[1], h[2], h[3], h[4], h[5]);
  if (n_sample < 1 || n_shuffle != n_sample - 1 || sep > 1) return false;
  std::uint64_t const rest = size - at;
  if (n_doc > rest / 4 || n_sample > rest / 12 || n_shuffle > rest / 8) return false;
  if (4 * n_doc + 12 * n_sample + 8 * n_shuffle + 8 != rest) return false;
  std::uint64_t stored_sum = 0;
  std::memcpy(&stored_sum, p + size - 8, 8);
  if (hash_bytes(p, size - 8) != stored_sum) return false;
  GptIndex ix;
  ix.num_epochs = static_cast<std::int64_t>(epochs);
  ix.tokens_per_epoch = static_cast<std::int64_t>(tpe);
  ix.separate_final_epoch = sep == 1;
  ix.document_index.resize(n_doc);
  ix.sample_doc.resize(n_sample);
  ix.sample_offset.resize(n_sample);
  ix.shuffle_index.resize(n_shuffle);
  take(ix.document_index.data(), 4 * n_doc);
  take(ix.sample_doc.data(), 8 * n_sample);
  take(ix.sample_offset.data(), 4 * n_sample);
  take(ix.shuffle_index.data(), 8 * n_shuffle);
  // Values must stay inside the dataset whatever the file says, so sample reads stay in bounds.
  auto const n_seq = static_cast<std::int64_t>(sizes.size());
  for (auto d : ix.document_index)
    if (d < 0 || d >= n_seq) return false;
  for (std::size_t s = 0; s < n_sample; ++s) {
    std::int64_t const pos = ix.sample_doc[s];
    if (pos < 0 || pos >= static_cast<std::int64_t>(n_doc)) return false;
    std::int32_t const off = ix.sample_offset[s];
    if (off < 0 || off >= std::max(sizes[static_cast<std::size_t>(ix.document_index[static_cast<std::size_t>(pos)])], 1))
      return false;
    if (s > 0 && (pos < ix.sample_doc[s - 1] || (pos == ix.sample_doc[s - 1] && off < ix.sample_offset[s - 1])))
      return false;
  }
  for (auto v : ix.shuffle_index)
    if (v < 0 || v >= static_cast<std::int64_t>(n_shuffle)) return false;
  out = std::move(ix);
  return true;
}

}  // namespace detail

/// GPT training samples from one indexed dataset, as Megatron's GPTDataset builds them: sample i is
/// the L + 1 tokens starting at sample_index[shuffle_index[i]] in the shuffled document stream.
/// Documents are the file's sequences (one per document unless it was split into sentences).
class GptDataset {
 public:
  GptDataset(std::shared_ptr<IndexedDataset const> dataset, GptDatasetConfig config)
      : ds_(std::move(dataset)), cfg_(std::move(config)) {
    KUMIKI_CHECK(ds_ != nullptr, "GptDataset needs a dataset");
    if (cfg_.split_end < 0) cfg_.split_end = ds_->num_sequences();
    sizes_.resize(static_cast<std::size_t>(ds_->num_sequences()));
    for (std::int64_t i = 0; i < ds_->num_sequences(); ++i) sizes_[static_cast<std::size_t>(i)] = ds_->sequence_length(i);
    description_ = describe();
    key_ = detail::hash_string(description_);
    if (!cfg_.cache_dir.empty()) {
      char hex[17];
      std::snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(key_));
      cache_path_ = cfg_.cache_dir / (ds_->prefix().filename().string() + "-" + hex + ".gptidx");
      from_cache_ = detail::load_gpt_index(cache_path_, key_, description_, sizes_, ix_);
    }
    if (!from_cache_) {
      ix_ = detail::build_gpt_index(sizes_, cfg_.split_begin, cfg_.split_end, cfg_.seq_len, cfg_.num_samples, cfg_.seed);
      if (!cache_path_.empty()) detail::save_gpt_index(cache_path_, key_, description_, ix_);
    }
    KUMIKI_CHECK(ix_.num_samples() >= cfg_.num_samples, "index holds ", ix_.num_samples(), " samples, ",
                 cfg_.num_samples, " requested");
  }
  GptDataset(std::filesystem::path const& prefix, GptDatasetConfig config)
      : GptDataset(std::make_shared<IndexedDataset const>(prefix), std::move(config)) {}

  /// Samples in the index (whole epochs: at least the number requested).
  std::int64_t size() const { return ix_.num_samples(); }
  std::int64_t seq_len() const { return cfg_.seq_len; }
  GptDatasetConfig const& config() const { return cfg_; }
  GptIndex const& index() const { return ix_; }
  IndexedDataset const& indexed_dataset() const { return *ds_; }
  std::shared_ptr<IndexedDataset const> const& indexed_dataset_ptr() const { return ds_; }
  bool loaded_from_cache() const { return from_cache_; }
  std::filesystem::path const& cache_path() const { return cache_path_; }
  std::string const& description() const { return description_; }

  /// Writes the L + 1 tokens of sample i (in shuffled order) to out.
  void get(std::int64_t i, std::int32_t* out) const {
    KUMIKI_CHECK(i >= 0 && i < size(), "sample ", i, " outside [0, ", size(), ") of ", ds_->prefix());
    get_unshuffled(ix_.shuffle_index[static_cast<std::size_t>(i)], out);
  }
  std::vector<std::int32_t> get(std::int64_t i) const {
    std::vector<std::int32_t> v(static_cast<std::size_t>(cfg_.seq_len + 1));
    get(i, v.data());
    return v;
  }

  /// Sample s in the order of the document stream (before the shuffle index).
  void get_unshuffled(std::int64_t s, std::int32_t* out) const {
    auto const u = static_cast<std::size_t>(s);
    std::int64_t pos = ix_.sample_doc[u];
    std::int64_t const end_pos = ix_.sample_doc[u + 1];
    std::int64_t offset = ix_.sample_offset[u];
    std::int64_t const end_offset = ix_.sample_offset[u + 1];
    std::int64_t written = 0;
    std::int64_t const want = cfg_.seq_len + 1;
    while (true) {
      std::int32_t const doc = ix_.document_index[static_cast<std::size_t>(pos)];
      std::int64_t const len = sizes_[static_cast<std::size_t>(doc)];
      std::int64_t const stop = pos == end_pos ? std::min(end_offset + 1, len) : len;
      std::int64_t const n = std::min(stop - offset, want - written);
      if (n > 0) {
        ds_->read(doc, offset, n, out + written);
        written += n;
      }
      if (pos == end_pos || written == want) break;
      ++pos;
      offset = 0;
    }
    KUMIKI_CHECK(written == want, "sample ", s, " of ", ds_->prefix(), " has ", written, " tokens, expected ", want);
  }

 private:
  std::string describe() const {
    std::ostringstream d;
    std::error_code ec;
    auto const idx = idx_path(ds_->prefix());
    auto const canonical = std::filesystem::weakly_canonical(idx, ec);
    auto const idx_size = std::filesystem::file_size(idx, ec);
    d << "kumiki GPT sample index v1 (philox4x32-10 fisher-yates, megatron gpt_dataset structure)\n"
      << "idx=" << (canonical.empty() ? idx.string() : canonical.string()) << "\n"
      << "idx_bytes=" << idx_size << "\n"
      << "sequences=" << ds_->num_sequences() << "\n"
      << "lengths_hash=" << detail::hash_bytes(sizes_.data(), sizes_.size() * 4) << "\n"
      << "seq_len=" << cfg_.seq_len << "\nnum_samples=" << cfg_.num_samples << "\nseed=" << cfg_.seed << "\n"
      << "split=" << cfg_.split_begin << ":" << cfg_.split_end << "\n";
    return d.str();
  }

  std::shared_ptr<IndexedDataset const> ds_;
  GptDatasetConfig cfg_;
  std::vector<std::int32_t> sizes_;
  std::string description_;
  std::uint64_t key_ = 0;
  std::filesystem::path cache_path_;
  bool from_cache_ = false;
  GptIndex ix_;
};

}  // namespace data
KUMIKI_NAMESPACE_END
