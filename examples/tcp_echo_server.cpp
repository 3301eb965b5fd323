// tcp_echo_server.cpp — the classic homework: a multi-process TCP server.
//
// A pre-forked pool: the main process opens one listening socket on
// 127.0.0.1 (loopback only, an ephemeral port it prints), then starts three
// worker processes that all accept() on that same socket; the kernel hands
// each new connection to one of them. Each worker echoes back whatever its
// client sends until the client closes.
//
// Shared state, in shared memory created before the workers start:
//  - a procsync::shared_value<long> counting connections (fetch_add: atomic);
//  - a procsync::counting_semaphore<2> bounding the clients served at once: a
//    worker takes a permit before it accepts and returns it when its client is
//    done, so a third simultaneous client waits in the listen queue;
//  - shared_value<int>s for how many are being served now, and the most ever.
//
// Shutdown: SIGTERM or SIGINT (Ctrl-C) to the main process — or 60 s without
// one (30 s with PROCSYNC_EXAMPLE_FAST), so it always stops by itself. The
// main process then terminate()s each worker (SIGTERM); a worker finishes
// its current client, returns 0, and is joined: no zombies are left.
// Every blocking call waits at most 100 ms, so a stop request is seen quickly.
//
// Try it: run it, then in another terminal use its own client, which needs no
// other tool (it too talks to 127.0.0.1 only):
//   tcp_echo_server --client PORT 'first line' 'second line'
// It sends each line, reads the echo back and exits 0 if every echo matches.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

#include <procsync/process.hpp>
#include <procsync/segment.hpp>
#include <procsync/semaphore.hpp>
#include <procsync/shared_value.hpp>

namespace {

constexpr int pool_size = 3;
constexpr int max_clients = 2;

struct server_state {
  procsync::counting_semaphore<max_clients> seats{max_clients};
  procsync::shared_value<long> connections;  // total accepted
  procsync::shared_value<int> serving;       // being served right now
  procsync::shared_value<int> most_serving;  // the maximum of `serving`
};

// Set by a worker's SIGTERM handler; a plain flag is async-signal-safe.
volatile std::sig_atomic_t stop_requested = 0;
extern "C" void on_stop(int) { stop_requested = 1; }

// Waits up to 100 ms for `fd` to become readable.
bool readable(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 100) > 0;
}

// Echoes one client until it closes (or a stop is requested); returns bytes echoed.
long echo(int client) {
  long total = 0;
  char buffer[4096];
  while (!stop_requested) {
    if (!readable(client)) continue;
    const ssize_t n = ::read(client, buffer, sizeof buffer);
    if (n <= 0) break;  // closed by the client (0) or an error
    for (ssize_t sent = 0; sent < n;) {
      const ssize_t w = ::send(client, buffer + sent, static_cast<std::size_t>(n - sent), MSG_NOSIGNAL);
      if (w <= 0) return total;
      sent += w;
    }
    total += n;
  }
  return total;
}

int worker(int id, int listener, server_state* state) {
  struct sigaction sa {};
  sa.sa_handler = on_stop;  // no SA_RESTART: a blocked call returns EINTR
  ::sigaction(SIGTERM, &sa, nullptr);
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  ::sigprocmask(SIG_UNBLOCK, &stop_signals, nullptr);  // main blocked it before starting us

  std::printf("worker %d (pid %d) ready\n", id, ::getpid());
  while (!stop_requested) {
    // A permit first: at most max_clients workers serve at once.
    if (!state->seats.try_acquire_for(std::chrono::milliseconds(100))) continue;
    int client = -1;
    while (!stop_requested && client < 0)
      if (readable(listener)) client = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);  // another worker may win: EAGAIN
    if (client >= 0) {
      const long number = state->connections.fetch_add(1) + 1;
      const int now = state->serving.fetch_add(1) + 1;
      state->most_serving.update([now](int most) { return now > most ? now : most; });
      std::printf("worker %d: client #%ld connected (%d being served)\n", id, number, now);
      const long bytes = echo(client);
      ::close(client);
      state->serving.fetch_sub(1);
      std::printf("worker %d: client #%ld done, echoed %ld bytes\n", id, number, bytes);
    }
    state->seats.release();
  }
  std::printf("worker %d: stopping\n", id);
  return 0;
}

// --client PORT [LINE...]: a minimal echo client on 127.0.0.1 (loopback only).
int client_main(int argc, char** argv) {
  char* end = nullptr;
  const long port = argc >= 3 ? std::strtol(argv[2], &end, 10) : 0;
  if (argc < 3 || *end != '\0' || port <= 0 || port > 65535) {
    std::fprintf(stderr, "usage: tcp_echo_server --client PORT [LINE...]\n");
    return 2;
  }
  std::vector<std::string> lines;
  for (int i = 3; i < argc; ++i) lines.emplace_back(argv[i]);
  if (lines.empty()) lines.emplace_back("hello from the example client");

  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);  // 127.0.0.1 only
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    std::fprintf(stderr, "client: cannot connect to 127.0.0.1:%ld: %s\n", port, std::strerror(errno));
    return 1;
  }
  std::printf("client: connected to 127.0.0.1:%ld\n", port);
  int status = 0;
  for (const std::string& line : lines) {
    const std::string sent = line + "\n";
    if (::send(fd, sent.data(), sent.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(sent.size())) {
      std::fprintf(stderr, "client: send failed: %s\n", std::strerror(errno));
      status = 1;
      break;
    }
    // Read until the whole line is back; give up after 10 s without data
    // (the server serves two clients at once: a third waits for a seat).
    std::string echoed;
    while (echoed.size() < sent.size()) {
      pollfd p{fd, POLLIN, 0};
      char buffer[4096];
      const ssize_t n = ::poll(&p, 1, 10000) > 0 ? ::read(fd, buffer, sizeof buffer) : -1;
      if (n <= 0) break;
      echoed.append(buffer, static_cast<std::size_t>(n));
    }
    const bool same = echoed == sent;
    std::printf("client: sent '%s', echoed '%.*s': %s\n", line.c_str(),
                static_cast<int>(echoed.empty() ? 0 : echoed.size() - (echoed.back() == '\n')), echoed.c_str(),
                same ? "ok" : "MISMATCH");
    if (!same) status = 1;
  }
  ::close(fd);
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::strcmp(argv[1], "--client") == 0) return client_main(argc, argv);
  if (argc != 1) {
    std::fprintf(stderr, "usage: tcp_echo_server               run the server (prints its port)\n"
                         "       tcp_echo_server --client PORT [LINE...]   echo LINEs through it\n");
    return 2;
  }
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  const bool fast = std::getenv("PROCSYNC_EXAMPLE_FAST") != nullptr;
  const int lifetime_s = fast ? 30 : 60;

  // Block the stop signals before starting workers: main receives them with
  // sigtimedwait below, and each worker unblocks them after installing its
  // handler (so a signal can never arrive before the handler is in place).
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  ::sigprocmask(SIG_BLOCK, &stop_signals, nullptr);

  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);  // 127.0.0.1 only
  address.sin_port = 0;                              // any free port
  socklen_t length = sizeof address;
  if (listener < 0 || ::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      ::listen(listener, 16) != 0 || ::getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    std::perror("tcp_echo_server: socket");
    return 1;
  }

  auto state = procsync::make_anonymous<server_state>();
  std::vector<std::unique_ptr<procsync::process>> pool;
  for (int id = 1; id <= pool_size; ++id) {
    pool.push_back(std::make_unique<procsync::process>(worker, id, listener, state.get()));
    pool.back()->set_daemon(true);  // if main dies, its workers die with it
    pool.back()->start();
  }
  std::printf("listening on 127.0.0.1:%d with %d workers, at most %d clients at once (pid %d)\n",
              ntohs(address.sin_port), pool_size, max_clients, ::getpid());
  std::printf("try: %s --client %d 'hello'   (stop the server with Ctrl-C)\n", argv[0], ntohs(address.sin_port));

  const timespec lifetime{lifetime_s, 0};
  const int sig = ::sigtimedwait(&stop_signals, nullptr, &lifetime);
  std::printf("main: %s; shutting down\n", sig == SIGTERM ? "SIGTERM" : sig == SIGINT ? "SIGINT" : "time is up");

  for (auto& w : pool) w->terminate();  // ask every worker to stop ...
  std::printf("main: workers exited with");
  for (auto& w : pool) {
    w->join();  // ... and reap each one: no zombies
    std::printf(" %d", w->exitcode().value());
  }
  std::printf("\nmain: served %ld connections, at most %d at once; %zu workers still running\n",
              state->connections.load(), state->most_serving.load(), procsync::active_children().size());
  ::close(listener);
  return 0;
}
