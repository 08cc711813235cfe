// examples/llmjp4/llmjp4_1_3b.cpp: the LLM-jp-4 1.3B example program. The model is the compile-time
// configuration models::llmjp4_1_3b; the plan is the recipes beside this file. See README.md here.
//   llmjp4_1_3b --dry-run [--backend cuda|cpu] [--precision bf16|f32] [--gpu h200|h100] [--gpus N] [--mfu X]
//                         [--zero 0|1]
//   llmjp4_1_3b --smoke [--seq N]
// Its body is llmjp4::main<kumiki::models::llmjp4_1_3b> (llmjp4.hpp), compiled in programs.cpp beside the 8B's.
int llmjp4_1_3b_main(int argc, char** argv);

int main(int argc, char** argv) { return llmjp4_1_3b_main(argc, argv); }
