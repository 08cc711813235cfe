// The LLM-jp-4 example programs' body (examples/llmjp4/llmjp4.hpp) on tiny_test, so that CTest runs
// its --smoke step in seconds; tests/examples/llmjp4_test.py drives it.
#include "llmjp4.hpp"

int main(int argc, char** argv) {
  return llmjp4::main<kumiki::models::tiny_test>(argc, argv, "tiny_test", KUMIKI_LLMJP4_RECIPES);
}
