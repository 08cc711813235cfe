// examples/llmjp4/llmjp4_8b.cpp: the LLM-jp-4 8B ("7.7B", Llama-3-8B shapes) example program. The model
// is the compile-time configuration models::llmjp4_8b; the plan is the recipes beside this file (README.md).
//   llmjp4_8b --dry-run [--backend cuda|cpu] [--precision bf16|f32] [--gpu h200|h100] [--gpus N] [--mfu X]
//                       [--zero 0|1]
//   llmjp4_8b --smoke [--seq N]
// Its body is llmjp4::main<kumiki::models::llmjp4_8b> (llmjp4.hpp), compiled in programs.cpp beside the 1.3B's.
int llmjp4_8b_main(int argc, char** argv);

int main(int argc, char** argv) { return llmjp4_8b_main(argc, argv); }
