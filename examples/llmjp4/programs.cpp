// examples/llmjp4/programs.cpp: the two LLM-jp-4 example programs' bodies, llmjp4::main (llmjp4.hpp)
// for models::llmjp4_1_3b and models::llmjp4_8b, compiled in one translation unit: each instantiation
// parses and compiles most of the library, so one file for both halves their build time. Each
// program's own file (llmjp4_1_3b.cpp, llmjp4_8b.cpp) holds its main.
#include "llmjp4.hpp"

int llmjp4_1_3b_main(int argc, char** argv) {
  return llmjp4::main<kumiki::models::llmjp4_1_3b>(argc, argv, "llmjp4_1_3b", KUMIKI_LLMJP4_RECIPES);
}

int llmjp4_8b_main(int argc, char** argv) {
  return llmjp4::main<kumiki::models::llmjp4_8b>(argc, argv, "llmjp4_8b", KUMIKI_LLMJP4_RECIPES);
}
