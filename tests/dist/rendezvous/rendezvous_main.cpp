// The rendezvous of dist/rendezvous.hpp as a program, for tests/dist/rendezvous/rendezvous_test.py:
// reads RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT, exchanges a payload (rank 0's bytes are
// (37 i + 11) mod 256, the others pass zeros) and prints `payload <hex>` on stdout; an error is one
// line `rendezvous_main: error: ...` on stderr and exit 1.
//
// usage: rendezvous_main TIMEOUT_S [PAYLOAD_BYTES (default 128, an NCCL unique id)]
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "kumiki/dist/rendezvous.hpp"

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3) {
    std::fprintf(stderr, "usage: %s TIMEOUT_S [PAYLOAD_BYTES]\n", argv[0]);
    return 2;
  }
  try {
    double const timeout_s = std::stod(argv[1]);
    std::size_t const bytes = argc > 2 ? std::stoul(argv[2]) : 128;
    kumiki::dist::EnvLaunch const env = kumiki::dist::read_env_launch();
    std::vector<std::byte> payload(bytes);
    if (env.rank == 0)
      for (std::size_t i = 0; i < bytes; ++i) payload[i] = static_cast<std::byte>((37 * i + 11) % 256);
    auto const start = std::chrono::steady_clock::now();
    std::vector<std::byte> const got = kumiki::dist::exchange(env, payload, timeout_s);
    double const took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::string hex;
    for (std::byte b : got) {
      char digits[3];
      std::snprintf(digits, sizeof digits, "%02x", static_cast<unsigned>(b));
      hex += digits;
    }
    std::printf("rank %d of %d (local rank %d) in %.3f s\npayload %s\n", env.rank, env.world_size, env.local_rank, took,
                hex.c_str());
    return 0;
  } catch (std::exception const& e) {
    std::fprintf(stderr, "rendezvous_main: error: %s\n", e.what());
    return 1;
  }
}
