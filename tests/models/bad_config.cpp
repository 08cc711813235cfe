// Must NOT compile: each KUMIKI_BAD_CONFIG case breaks one rule (heads, groups, head_dim, MoE top-k, a
// configuration list's names). The CTest case expects the readable static_assert message selected by
// -DKUMIKI_BAD_CONFIG=<n>.
#include "kumiki/models/configs.hpp"
#include "kumiki/models/transformer_config.hpp"

using kumiki::models::TransformerConfig;

#if KUMIKI_BAD_CONFIG == 1
inline constexpr TransformerConfig bad{.vocab_size = 10, .hidden = 100, .ffn_hidden = 8, .num_layers = 1,
                                       .num_heads = 3, .num_query_groups = 1, .max_seq_len = 8};
#elif KUMIKI_BAD_CONFIG == 2
inline constexpr TransformerConfig bad{.vocab_size = 10, .hidden = 96, .ffn_hidden = 8, .num_layers = 1,
                                       .num_heads = 6, .num_query_groups = 4, .max_seq_len = 8};
#elif KUMIKI_BAD_CONFIG == 4
inline constexpr TransformerConfig bad{.vocab_size = 10, .hidden = 32, .ffn_hidden = 8, .num_layers = 1,
                                       .num_heads = 2, .num_query_groups = 1, .max_seq_len = 8,
                                       .num_experts = 4, .moe_top_k = 5};
#elif KUMIKI_BAD_CONFIG == 5
inline constexpr TransformerConfig bad{.vocab_size = 10, .hidden = 32, .ffn_hidden = 8, .num_layers = 1,
                                       .num_heads = 2, .num_query_groups = 1, .max_seq_len = 8, .moe_top_k = 2};
#elif KUMIKI_BAD_CONFIG == 6 || KUMIKI_BAD_CONFIG == 7  // lists: every configuration named, no name twice
inline constexpr TransformerConfig unnamed{.vocab_size = 10, .hidden = 32, .ffn_hidden = 8, .num_layers = 1,
                                           .num_heads = 2, .num_query_groups = 1, .max_seq_len = 8};
inline constexpr TransformerConfig also_demo = [] { auto c = unnamed; c.name = "demo"; return c; }();
#if KUMIKI_BAD_CONFIG == 6
using List = kumiki::models::ConfigList<kumiki::models::demo, unnamed>;
#else
using List = kumiki::models::BuiltinConfigs::with<also_demo>;
#endif
static_assert(List::size > 0);
inline constexpr TransformerConfig bad = kumiki::models::demo;
#else
inline constexpr TransformerConfig bad{.vocab_size = 10, .hidden = 30, .ffn_hidden = 8, .num_layers = 1,
                                       .num_heads = 2, .num_query_groups = 1, .max_seq_len = 8};
#endif
static_assert(kumiki::models::check_config<bad>());
int main() { return 0; }
