// my_kumiki: every kumiki command (train, eval, export-hf, import-hf, dump, upcycle, generate,
// eval-tasks, soup, micro-anneal, ...) over a model configuration of one's own. Recipes and
// checkpoints name it (`model = "my_model"`); every command checks that they hold exactly it.
#include <kumiki/cli/all.hpp>

// Byte tokens (256 bytes + BOS/EOS) as kumiki's demo, a narrower and shallower model.
inline constexpr kumiki::models::TransformerConfig my_model{
    .name = "my_model", .vocab_size = 258, .make_vocab_divisible_by = 128, .hidden = 128, .ffn_hidden = 352,
    .num_layers = 3, .num_heads = 4, .num_query_groups = 2, .rope_base = 10000.0, .rms_eps = 1e-5, .max_seq_len = 128};

// Only this configuration; kumiki::models::BuiltinConfigs::with<my_model> would add kumiki's own.
using MyConfigs = kumiki::models::ConfigList<my_model>;

int main(int argc, char** argv) { return kumiki::cli::main<MyConfigs>(argc, argv, {.name = "my_kumiki"}); }
