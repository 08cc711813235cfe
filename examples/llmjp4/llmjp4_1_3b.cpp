// examples/llmjp4/llmjp4_1_3b.cpp: the LLM-jp-4 1.3B example program. The model is the compile-time
// configuration models::llmjp4_1_3b; the plan is the recipes beside this file. See README.md here.
//   llmjp4_1_3b --dry-run [--backend cuda|cpu] [--precision bf16|f32] [--gpu h200|h100] [--gpus N] [--mfu X]
//   llmjp4_1_3b --smoke [--seq N]
#include "llmjp4.hpp"

int main(int argc, char** argv) {
  return llmjp4::main<kumiki::models::llmjp4_1_3b>(argc, argv, "llmjp4_1_3b", KUMIKI_LLMJP4_RECIPES);
}
