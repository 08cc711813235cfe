// Replays fuzz inputs without libFuzzer (any C++ compiler): `fuzz_replay_<name> FILE|DIR...` feeds
// each file (each regular file of a directory, in name order) to the target's LLVMFuzzerTestOneInput
// once. Used when clang's -fsanitize=fuzzer is not available; a finding aborts as under libFuzzer.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size);

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  std::vector<fs::path> inputs;
  for (int i = 1; i < argc; ++i) {
    fs::path const arg(argv[i]);
    if (fs::is_directory(arg)) {
      std::vector<fs::path> files;
      for (auto const& e : fs::directory_iterator(arg))
        if (e.is_regular_file()) files.push_back(e.path());
      std::sort(files.begin(), files.end());
      inputs.insert(inputs.end(), files.begin(), files.end());
    } else {
      inputs.push_back(arg);
    }
  }
  for (fs::path const& p : inputs) {
    std::ifstream in(p, std::ios::binary);
    if (!in) {
      std::fprintf(stderr, "replay: cannot read %s\n", p.c_str());
      return 1;
    }
    std::vector<char> const bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    // A copy of exactly the input's size, as libFuzzer hands it: a read past the end is a heap overflow.
    std::vector<std::uint8_t> const data(bytes.begin(), bytes.end());
    std::fprintf(stderr, "replay: %s\n", p.c_str());  // the last line names the input of a finding
    LLVMFuzzerTestOneInput(data.data(), data.size());
  }
  std::printf("replay: %zu input(s) replayed\n", inputs.size());
  return 0;
}
