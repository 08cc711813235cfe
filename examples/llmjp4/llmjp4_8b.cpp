// examples/llmjp4/llmjp4_8b.cpp: the LLM-jp-4 8B ("7.7B", Llama-3-8B shapes) example program. The model
// is the compile-time configuration models::llmjp4_8b; the plan is the recipes beside this file (README.md).
//   llmjp4_8b --dry-run [--backend cuda|cpu] [--precision bf16|f32] [--gpu h200|h100] [--gpus N] [--mfu X]
//   llmjp4_8b --smoke [--seq N]
#include "llmjp4.hpp"

int main(int argc, char** argv) {
  return llmjp4::main<kumiki::models::llmjp4_8b>(argc, argv, "llmjp4_8b", KUMIKI_LLMJP4_RECIPES);
}
