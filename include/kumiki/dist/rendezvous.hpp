// kumiki/dist/rendezvous.hpp: starting data-parallel ranks the way torchrun does: the environment
// (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) and a small TCP rendezvous through which
// rank 0 hands every other rank the same bytes (the NCCL unique id). Host code, POSIX sockets only.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "kumiki/config.hpp"
#include "kumiki/core/error.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace dist {

/// What a torchrun-style launcher tells each process (torchrun, or any launcher that sets the same
/// variables: a Kubernetes job, a Slurm script exporting them):
///   RANK, WORLD_SIZE   this process's rank among WORLD_SIZE ranks (required);
///   LOCAL_RANK         its rank on its node, which picks its GPU (default: RANK, right on one node);
///   MASTER_ADDR/_PORT  where rank 0 listens for the rendezvous (required when WORLD_SIZE > 1).
/// Under torchrun itself its agent's store already listens on MASTER_PORT (TORCHELASTIC_USE_AGENT_STORE
/// is set): the rendezvous then takes MASTER_PORT + 1. KUMIKI_RENDEZVOUS_PORT, when set, overrides both.
struct EnvLaunch {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  std::string master_addr;
  int master_port = 0;      ///< the port of the rendezvous (MASTER_PORT unless `port_source` says otherwise)
  std::string port_source;  ///< where master_port comes from, for messages: "MASTER_PORT=29500", ...
};

/// Whether a torchrun-style launcher started this process: RANK and WORLD_SIZE are both set.
inline bool launched_by_env() { return std::getenv("RANK") != nullptr && std::getenv("WORLD_SIZE") != nullptr; }

namespace rendezvous_detail {

/// Environment variable `name` as an integer in [lo, hi]; `role` says what it is, for the error.
inline int env_int(char const* name, int lo, int hi, std::string const& role) {
  char const* v = std::getenv(name);
  KUMIKI_REQUIRE(v != nullptr, "the environment variable ", name, " is not set (", role, ")");
  std::string_view const s(v);
  int x = 0;
  auto const [end, ec] = std::from_chars(s.data(), s.data() + s.size(), x);
  KUMIKI_REQUIRE(!s.empty() && ec == std::errc{} && end == s.data() + s.size(), "the environment variable ", name, "='",
                 s, "' is not an integer (", role, ")");
  KUMIKI_REQUIRE(x >= lo && x <= hi, "the environment variable ", name, "=", x, " is out of range ", lo, "..", hi, " (",
                 role, ")");
  return x;
}

}  // namespace rendezvous_detail

/// Reads and checks the launcher's variables (EnvLaunch); a missing or malformed one is an InputError
/// naming the variable and its value.
inline EnvLaunch read_env_launch() {
  EnvLaunch env;
  env.world_size = rendezvous_detail::env_int("WORLD_SIZE", 1, 1 << 20, "the number of ranks");
  env.rank = rendezvous_detail::env_int("RANK", 0, env.world_size - 1,
                                        "this process's rank, below WORLD_SIZE=" + std::to_string(env.world_size));
  env.local_rank =
      std::getenv("LOCAL_RANK") != nullptr
          ? rendezvous_detail::env_int("LOCAL_RANK", 0, env.world_size - 1, "this process's rank on its node, its GPU")
          : env.rank;
  if (env.world_size > 1) {
    char const* addr = std::getenv("MASTER_ADDR");
    KUMIKI_REQUIRE(addr != nullptr && *addr != '\0',
                   "the environment variable MASTER_ADDR is not set (the host name or address of rank 0)");
    env.master_addr = addr;
    int const master_port = rendezvous_detail::env_int("MASTER_PORT", 1, 65535, "the TCP port rank 0 listens on");
    char const* agent_store = std::getenv("TORCHELASTIC_USE_AGENT_STORE");
    if (std::getenv("KUMIKI_RENDEZVOUS_PORT") != nullptr) {
      env.master_port = rendezvous_detail::env_int("KUMIKI_RENDEZVOUS_PORT", 1, 65535,
                                                   "the TCP port rank 0 listens on, instead of MASTER_PORT");
      env.port_source = "KUMIKI_RENDEZVOUS_PORT=" + std::to_string(env.master_port);
    } else if (agent_store != nullptr && std::string_view(agent_store) == "True") {
      KUMIKI_REQUIRE(master_port < 65535, "MASTER_PORT=65535 under torchrun: its agent's store holds it and the "
                     "rendezvous takes MASTER_PORT + 1; choose a lower MASTER_PORT or set KUMIKI_RENDEZVOUS_PORT");
      env.master_port = master_port + 1;
      env.port_source = "port " + std::to_string(env.master_port) +
                        " (MASTER_PORT + 1: torchrun's agent store holds MASTER_PORT; KUMIKI_RENDEZVOUS_PORT chooses another)";
    } else {
      env.master_port = master_port;
      env.port_source = "MASTER_PORT=" + std::to_string(master_port);
    }
  }
  return env;
}

namespace rendezvous_detail {

using Clock = std::chrono::steady_clock;

/// Wire format, all integers big-endian. A rank's hello: magic, its rank, its world size, the payload
/// bytes it expects. Rank 0's reply: a status (ok: the payload follows; refused: a message follows)
/// and the length of what follows.
inline constexpr std::uint32_t magic = 0x4b4d4b31;  // "KMK1": kumiki rendezvous, protocol 1
inline constexpr std::size_t hello_bytes = 20;
inline constexpr std::size_t reply_bytes = 12;
inline constexpr std::uint32_t status_ok = 0;
inline constexpr std::uint32_t status_refused = 1;
inline constexpr std::uint64_t max_message_bytes = 1 << 16;

inline void put_u32(unsigned char* p, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<unsigned char>(v >> (24 - 8 * i));
}
inline void put_u64(unsigned char* p, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<unsigned char>(v >> (56 - 8 * i));
}
inline std::uint32_t get_u32(unsigned char const* p) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | p[i];
  return v;
}
inline std::uint64_t get_u64(unsigned char const* p) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | p[i];
  return v;
}

/// A socket descriptor, closed on destruction. Move-only.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  Fd(Fd const&) = delete;
  Fd& operator=(Fd const&) = delete;
  ~Fd() { reset(); }
  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

inline std::string errno_text(int err) { return std::strerror(err); }

/// Milliseconds left before `deadline` for poll(): 0 once it has passed, at most a day.
inline int ms_left(Clock::time_point deadline) {
  auto const ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<long long>(ms, 0, 86'400'000));
}

/// Every descriptor here is non-blocking and close-on-exec: each wait goes through poll() with a deadline.
inline bool make_nonblocking(int fd) {
  int const flags = ::fcntl(fd, F_GETFL, 0);
  return flags >= 0 && ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0 && ::fcntl(fd, F_SETFD, FD_CLOEXEC) == 0;
}

enum class Io { done, closed, timed_out, failed };

/// Waits until `fd` is ready for `events` or the deadline passes.
inline Io wait_ready(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    int const rc = ::poll(&p, 1, ms_left(deadline));
    if (rc > 0) return Io::done;  // readable, writable, or an error / hang-up the next call reports
    if (rc == 0) return Io::timed_out;
    if (errno != EINTR) return Io::failed;
  }
}

/// Sends all `n` bytes before the deadline (MSG_NOSIGNAL: a peer that has gone is an error, not SIGPIPE).
inline Io send_all(int fd, void const* data, std::size_t n, Clock::time_point deadline) {
  auto const* p = static_cast<unsigned char const*>(data);
  while (n > 0) {
    ssize_t const k = ::send(fd, p, n, MSG_NOSIGNAL);
    if (k > 0) {
      p += k;
      n -= static_cast<std::size_t>(k);
    } else if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
      if (Io const r = wait_ready(fd, POLLOUT, deadline); r != Io::done) return r;
    } else {
      return errno == EPIPE || errno == ECONNRESET ? Io::closed : Io::failed;
    }
  }
  return Io::done;
}

/// Receives exactly `n` bytes before the deadline; Io::closed when the peer closes first.
inline Io recv_exact(int fd, void* data, std::size_t n, Clock::time_point deadline) {
  auto* p = static_cast<unsigned char*>(data);
  while (n > 0) {
    ssize_t const k = ::recv(fd, p, n, 0);
    if (k > 0) {
      p += k;
      n -= static_cast<std::size_t>(k);
    } else if (k == 0) {
      return Io::closed;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
      if (Io const r = wait_ready(fd, POLLIN, deadline); r != Io::done) return r;
    } else {
      return errno == ECONNRESET ? Io::closed : Io::failed;
    }
  }
  return Io::done;
}

/// Rank 0's reply: header, then `body`. Best effort (a rank that is gone is not waited for).
inline void send_reply(int fd, std::uint32_t status, std::span<unsigned char const> body, Clock::time_point deadline) {
  std::array<unsigned char, reply_bytes> head{};
  put_u32(head.data(), status);
  put_u64(head.data() + 4, body.size());
  if (send_all(fd, head.data(), head.size(), deadline) == Io::done)
    (void)send_all(fd, body.data(), body.size(), deadline);
}

inline std::span<unsigned char const> bytes_of(std::string const& s) {
  return {reinterpret_cast<unsigned char const*>(s.data()), s.size()};
}

/// A listening socket on every interface at `port`: IPv6 with IPv4 mapped in where the host has IPv6,
/// else IPv4. SO_REUSEADDR lets a rerun bind the port while the last run's connections linger in
/// TIME_WAIT.
inline Fd listen_on(int port, std::string const& port_source, int backlog, std::string const& who) {
  int err = 0;
  for (int family : {AF_INET6, AF_INET}) {
    Fd s(::socket(family, SOCK_STREAM, 0));
    if (!s) {
      err = errno;
      continue;
    }
    int const one = 1, zero = 0;
    (void)::setsockopt(s.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    int rc = 0;
    if (family == AF_INET6) {
      (void)::setsockopt(s.get(), IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
      sockaddr_in6 a{};
      a.sin6_family = AF_INET6;
      a.sin6_addr = in6addr_any;
      a.sin6_port = htons(static_cast<std::uint16_t>(port));
      rc = ::bind(s.get(), reinterpret_cast<sockaddr const*>(&a), sizeof a);
    } else {
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_ANY);
      a.sin_port = htons(static_cast<std::uint16_t>(port));
      rc = ::bind(s.get(), reinterpret_cast<sockaddr const*>(&a), sizeof a);
    }
    if (rc == 0 && ::listen(s.get(), std::min(backlog, SOMAXCONN)) == 0 && make_nonblocking(s.get())) return s;
    err = errno;
    if (err == EADDRINUSE) break;  // IPv4 would find the same port taken
  }
  KUMIKI_FAIL(who, " could not listen on ", port_source, ": ", errno_text(err),
              err == EADDRINUSE ? " (another job on this port? choose a free MASTER_PORT, or set KUMIKI_RENDEZVOUS_PORT)"
                                : "");
}

/// One connection to rank 0 that has not yet sent its whole hello.
struct Pending {
  Fd fd;
  std::array<unsigned char, hello_bytes> hello{};
  std::size_t got = 0;
};

/// Why a complete hello cannot join the rendezvous of rank 0 (`env`), or "" when it can.
inline std::string hello_problem(std::array<unsigned char, hello_bytes> const& hello, EnvLaunch const& env,
                                 std::size_t payload_bytes, std::vector<Fd> const& ranks) {
  unsigned char const* h = hello.data();
  std::uint32_t const their_magic = get_u32(h), their_rank = get_u32(h + 4), their_world = get_u32(h + 8);
  std::uint64_t const their_bytes = get_u64(h + 12);
  if (their_magic != magic)
    return ::kumiki::detail::concat("a connection to ", env.port_source,
                                    " did not introduce itself as a kumiki rank (another program on this port, or a "
                                    "different kumiki version?)");
  if (their_world != static_cast<std::uint32_t>(env.world_size))
    return ::kumiki::detail::concat("rank ", their_rank, " was started with WORLD_SIZE=", their_world,
                                    " but rank 0 with WORLD_SIZE=", env.world_size,
                                    ": every rank needs the same WORLD_SIZE");
  if (their_bytes != payload_bytes)
    return ::kumiki::detail::concat("rank ", their_rank, " expects ", their_bytes, " bytes from rank 0, which sends ",
                                    payload_bytes, " (ranks built from different kumiki versions?)");
  if (their_rank >= static_cast<std::uint32_t>(env.world_size))
    return ::kumiki::detail::concat("a process was started with RANK=", their_rank, ", outside 0..", env.world_size - 1,
                                    " for WORLD_SIZE=", env.world_size);
  if (their_rank == 0 || ranks[their_rank])
    return ::kumiki::detail::concat("two processes were started with RANK=", their_rank,
                                    ": every rank needs its own RANK in 0..", env.world_size - 1);
  return {};
}

/// Rank 0: accepts world_size - 1 ranks, checks their hellos and sends each the payload; on a bad hello
/// or a missing rank, every connected rank is told why and rank 0 throws.
inline void serve(EnvLaunch const& env, std::span<std::byte const> payload, double timeout_s,
                  Clock::time_point deadline) {
  std::string const who = "rank 0 of " + std::to_string(env.world_size);
  Fd listener = listen_on(env.master_port, env.port_source, env.world_size, who);
  std::vector<Fd> ranks(static_cast<std::size_t>(env.world_size));  // validated connections by rank
  std::vector<Pending> pending;
  int arrived = 0;

  // Tells every connected rank (and the offending connection) why the rendezvous failed, then throws.
  auto refuse = [&](Fd* offender, std::string const& why) {
    auto const until = Clock::now() + std::chrono::seconds(2);
    for (Fd& f : ranks)
      if (f) send_reply(f.get(), status_refused, bytes_of(why), until);
    if (offender != nullptr) send_reply(offender->get(), status_refused, bytes_of(why), until);
    KUMIKI_FAIL(who, ": the rendezvous on ", env.port_source, " failed: ", why);
  };

  while (arrived < env.world_size - 1) {
    if (Clock::now() >= deadline) {
      std::string missing;
      int listed = 0;
      for (int r = 1; r < env.world_size; ++r)
        if (!ranks[static_cast<std::size_t>(r)] && listed++ < 8)
          missing += (missing.empty() ? "" : ", ") + std::to_string(r);
      if (listed > 8) missing += ", ...";
      missing = (listed > 1 ? "ranks " : "rank ") + missing;
      refuse(nullptr,
             ::kumiki::detail::concat("only ", arrived, " of the ", env.world_size - 1,
                                      " other ranks reached rank 0 within ", timeout_s, " s (missing: ", missing,
                                      "; were they all started, with MASTER_ADDR / MASTER_PORT pointing at rank 0?)"));
    }
    std::vector<pollfd> fds{{listener.get(), POLLIN, 0}};
    for (Pending const& p : pending) fds.push_back({p.fd.get(), POLLIN, 0});
    int const rc = ::poll(fds.data(), fds.size(), std::max(1, ms_left(deadline)));
    if (rc < 0 && errno != EINTR) KUMIKI_FAIL(who, ": poll() failed during the rendezvous: ", errno_text(errno));
    if (rc <= 0) continue;

    // Each connection's hello arrives in pieces as it may; a connection that closes before finishing
    // its hello (a port probe, a rank that died) is dropped without failing the others.
    std::vector<Pending> still;
    for (std::size_t i = 0; i < pending.size(); ++i) {
      Pending& p = pending[i];
      if (fds[i + 1].revents == 0) {
        still.push_back(std::move(p));
        continue;
      }
      ssize_t const k = ::recv(p.fd.get(), p.hello.data() + p.got, hello_bytes - p.got, 0);
      if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        still.push_back(std::move(p));
        continue;
      }
      if (k <= 0) continue;  // closed or failed: dropped
      p.got += static_cast<std::size_t>(k);
      if (p.got < hello_bytes) {
        still.push_back(std::move(p));
        continue;
      }
      std::uint32_t const their_rank = get_u32(p.hello.data() + 4);
      std::string const why = hello_problem(p.hello, env, payload.size(), ranks);
      if (!why.empty()) refuse(&p.fd, why);  // throws
      ranks[their_rank] = std::move(p.fd);
      ++arrived;
    }
    pending = std::move(still);

    if (fds[0].revents != 0) {
      for (;;) {  // every connection waiting in the backlog
        Fd c(::accept(listener.get(), nullptr, nullptr));
        if (!c) break;
        if (make_nonblocking(c.get())) pending.push_back(Pending{std::move(c)});
      }
    }
  }

  std::span<unsigned char const> const body(reinterpret_cast<unsigned char const*>(payload.data()), payload.size());
  for (int r = 1; r < env.world_size; ++r) {
    Fd& f = ranks[static_cast<std::size_t>(r)];
    std::array<unsigned char, reply_bytes> head{};
    put_u32(head.data(), status_ok);
    put_u64(head.data() + 4, body.size());
    auto const until = std::max(deadline, Clock::now() + std::chrono::seconds(5));
    Io io = send_all(f.get(), head.data(), head.size(), until);
    if (io == Io::done) io = send_all(f.get(), body.data(), body.size(), until);
    if (io != Io::done)
      refuse(nullptr, ::kumiki::detail::concat("rank 0 could not send rank ", r, " its ", body.size(), " bytes (",
                                               io == Io::timed_out ? "timed out" : "the connection was lost", ")"));
  }
}

/// Connects to host:port before the deadline, retrying (rank 0 may start after this rank). Returns an
/// empty Fd when the deadline passes; `last_error` says what the last attempt met.
inline Fd connect_until(std::string const& host, int port, Clock::time_point deadline, std::string& last_error) {
  std::string const service = std::to_string(port);
  int backoff_ms = 20;
  for (;;) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    // A host name that does not resolve yet (rank 0's pod or node not up) is retried like a refusal.
    if (int const rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &found); rc != 0) {
      last_error = std::string("cannot resolve the host name: ") + ::gai_strerror(rc);
    } else {
      for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
        Fd s(::socket(a->ai_family, a->ai_socktype, a->ai_protocol));
        if (!s || !make_nonblocking(s.get())) {
          last_error = errno_text(errno);
          continue;
        }
        int err = 0;
        if (::connect(s.get(), a->ai_addr, a->ai_addrlen) != 0) {
          err = errno;
          if (err == EINPROGRESS) {  // non-blocking connect: writable once it succeeded or failed
            if (wait_ready(s.get(), POLLOUT, deadline) != Io::done) {
              err = ETIMEDOUT;
            } else {
              socklen_t len = sizeof err;
              if (::getsockopt(s.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
            }
          }
        }
        if (err == 0) {
          ::freeaddrinfo(found);
          return s;
        }
        last_error = errno_text(err);
      }
      ::freeaddrinfo(found);
    }
    int const left = ms_left(deadline);
    if (left <= 0) return Fd{};
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min(backoff_ms, left)));
    backoff_ms = std::min(backoff_ms * 2, 250);
  }
}

/// Any rank but 0: says hello to rank 0 and receives the payload.
inline std::vector<std::byte> join(EnvLaunch const& env, std::size_t bytes, double timeout_s,
                                   Clock::time_point deadline) {
  std::string const who = ::kumiki::detail::concat("rank ", env.rank, " of ", env.world_size);
  std::string const where = env.master_addr + ':' + std::to_string(env.master_port);
  std::string last_error = "no attempt";
  Fd s = connect_until(env.master_addr, env.master_port, deadline, last_error);
  if (!s)
    KUMIKI_FAIL(who, " could not reach the rendezvous at ", where, " within ", timeout_s,
                " s (is rank 0 running? check MASTER_ADDR / MASTER_PORT; last error: ", last_error, ")");

  std::array<unsigned char, hello_bytes> hello{};
  put_u32(hello.data(), magic);
  put_u32(hello.data() + 4, static_cast<std::uint32_t>(env.rank));
  put_u32(hello.data() + 8, static_cast<std::uint32_t>(env.world_size));
  put_u64(hello.data() + 12, bytes);
  auto lost = [&](Io io, char const* doing) {
    if (io == Io::timed_out)
      KUMIKI_FAIL(who, " reached rank 0 at ", where, " but ", doing, " did not complete within ", timeout_s,
                  " s (rank 0 waits for every rank: is one missing?)");
    KUMIKI_FAIL(who, ": rank 0 at ", where, " closed the rendezvous connection while this rank was ", doing,
                " (did rank 0 fail? see its output)");
  };
  if (Io const io = send_all(s.get(), hello.data(), hello.size(), deadline); io != Io::done)
    lost(io, "sending its hello");

  std::array<unsigned char, reply_bytes> head{};
  if (Io const io = recv_exact(s.get(), head.data(), head.size(), deadline); io != Io::done)
    lost(io, "waiting for rank 0's answer");
  std::uint32_t const status = get_u32(head.data());
  std::uint64_t const length = get_u64(head.data() + 4);
  if (status == status_refused) {
    std::string why(static_cast<std::size_t>(std::min(length, max_message_bytes)), '\0');
    auto const until = std::max(deadline, Clock::now() + std::chrono::seconds(2));
    if (recv_exact(s.get(), why.data(), why.size(), until) != Io::done) why = "(the reason was lost)";
    KUMIKI_FAIL(who, ": rank 0 at ", where, " refused the rendezvous: ", why);
  }
  if (status != status_ok || length != bytes)
    KUMIKI_FAIL(who, ": the program at ", where, " answered the rendezvous with something unexpected (status ", status,
                ", ", length, " bytes where ", bytes, " were expected)");
  std::vector<std::byte> payload(bytes);
  if (Io const io = recv_exact(s.get(), payload.data(), payload.size(), deadline); io != Io::done)
    lost(io, "receiving the payload");
  return payload;
}

}  // namespace rendezvous_detail

/// The rendezvous: rank 0 hands `payload` to every other rank, and every rank returns it. Rank 0 passes
/// the bytes to hand out; every other rank passes a span of the same size, whose content is unused (its
/// size is checked against rank 0's, so two builds that disagree fail instead of misreading).
///
/// Rank 0 listens on MASTER_PORT (EnvLaunch) on every interface; each other rank connects to MASTER_ADDR there,
/// retrying until rank 0 is up, and introduces itself (rank, WORLD_SIZE, payload size). Once every rank
/// has arrived, rank 0 sends each the payload. A hello that does not fit (another WORLD_SIZE, a RANK
/// taken twice, another payload size, a stranger on the port) makes rank 0 tell every connected rank
/// why, and each of them and rank 0 throw kumiki::InputError saying so.
///
/// Nothing waits for ever: every wait is a poll() against one deadline `timeout_s` seconds away, so an
/// unreachable rank 0 or a rank that never starts ends each process with an error naming the host, the
/// port and the missing ranks. One rank alone (WORLD_SIZE=1) returns at once without a socket.
inline std::vector<std::byte> exchange(EnvLaunch const& env, std::span<std::byte const> payload, double timeout_s) {
  KUMIKI_REQUIRE(timeout_s > 0, "the rendezvous timeout must be positive seconds, got ", timeout_s);
  KUMIKI_CHECK(env.world_size >= 1 && env.rank >= 0 && env.rank < env.world_size, "rank ", env.rank, " of ",
               env.world_size);
  auto const deadline =
      rendezvous_detail::Clock::now() +
      std::chrono::duration_cast<rendezvous_detail::Clock::duration>(std::chrono::duration<double>(timeout_s));
  if (env.rank == 0 && env.world_size > 1) rendezvous_detail::serve(env, payload, timeout_s, deadline);
  if (env.rank == 0) return std::vector<std::byte>(payload.begin(), payload.end());
  return rendezvous_detail::join(env, payload.size(), timeout_s, deadline);
}

/// The same for a payload of a size fixed at compile time (an NCCL unique id: 128 bytes).
template <std::size_t N>
std::array<std::byte, N> exchange(EnvLaunch const& env, std::array<std::byte, N> const& payload, double timeout_s) {
  std::vector<std::byte> const got = exchange(env, std::span<std::byte const>(payload), timeout_s);
  std::array<std::byte, N> out{};
  std::copy(got.begin(), got.end(), out.begin());
  return out;
}

}  // namespace dist
KUMIKI_NAMESPACE_END
