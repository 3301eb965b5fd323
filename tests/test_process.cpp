#define BOOST_TEST_MODULE procsync process
#include <boost/test/unit_test.hpp>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <procsync/detail/process_identity.hpp>
#include <procsync/process.hpp>
#include <procsync/segment.hpp>

#include "child.hpp"
#include "errors.hpp"

using namespace procsync_test;
using namespace std::chrono_literals;
using clk = std::chrono::steady_clock;

namespace {

// Sequencing flags shared by parent and children.
struct shared_block {
  std::atomic<int> go{0};
  std::atomic<int> value{0};
  std::atomic<int> pid{0};
  std::atomic<int> count{0};
};

// In a child: waits (bounded, so that a failed test never leaves a child
// running for long) until `flag` reaches `value`; 0 if it did, 99 if not.
int wait_in_child(const std::atomic<int>& flag, int value, std::chrono::milliseconds limit = 30s) {
  return eventually([&] { return flag.load() >= value; }, limit) ? 0 : 99;
}

// In a child: sleeps up to `limit` (for children the test signals: their
// staying alive is the behaviour under test, nothing waits for them to do so).
int linger(std::chrono::milliseconds limit = 30s) {
  const auto end = clk::now() + limit;
  while (clk::now() < end) std::this_thread::sleep_for(5ms);
  return 42;
}

// Joins with a watchdog: a hung child fails the test instead of hanging it.
bool join_or_kill(procsync::process& p, std::chrono::milliseconds limit = 60s) {
  if (p.join(limit)) return true;
  p.kill();
  p.join();
  return false;
}

// Whether `pid` is neither our child nor a zombie we left: waitpid finds nothing.
bool not_waitable(pid_t pid) {
  int status = 0;
  errno = 0;
  return ::waitpid(pid, &status, WNOHANG) == -1 && errno == ECHILD;
}

// Everything the write end of a pipe received until it was closed everywhere.
std::string drain(int fd) {
  std::string out;
  char buf[512];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) {
      out.append(buf, static_cast<std::size_t>(n));
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      break;
    }
  }
  return out;
}

struct pipe_fds {
  int r = -1, w = -1;
  pipe_fds() {
    int fds[2];
    BOOST_REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    r = fds[0];
    w = fds[1];
  }
  void close_w() {
    if (w >= 0) ::close(w);
    w = -1;
  }
  ~pipe_fds() {
    if (r >= 0) ::close(r);
    close_w();
  }
};

// --- atexit / static destructors of the parent must not run in a child ------
std::atomic<int>* g_exit_witness = nullptr;  // points into shared memory while a test arms it
void exit_witness_handler() {
  if (g_exit_witness != nullptr) g_exit_witness->fetch_add(1);
}
struct static_witness {
  ~static_witness() { exit_witness_handler(); }
} g_static_witness;

int g_ordinary_global = 1;

// Set in a daemon child to a flag in shared memory; its SIGTERM handler raises it.
std::atomic<int>* g_term_witness = nullptr;

// Whether thread `tid` of this process sleeps in waitpid(2) now (glibc's
// waitpid is wait4): a join in progress, seen by looking.
bool in_waitpid(pid_t tid) { return current_syscall(::getpid(), tid) == SYS_wait4; }

// --- a re-executed copy of this binary plays "a main program that starts a
// daemon and a worker, then exits normally" (see daemon_ends_when_parent_exits).
void say(int fd, const std::string& line) {
  const std::string text = line + "\n";
  [[maybe_unused]] const ssize_t n = ::write(fd, text.data(), text.size());
}

const bool g_role_played = [] {
  const char* fd_text = std::getenv("PROCSYNC_TEST_EXITING_PARENT");
  if (fd_text == nullptr) return false;
  static int fd = std::atoi(fd_text);
  static auto ready = procsync::make_anonymous<shared_block>();
  // Leaked on purpose: only the exit handler may end these children.
  auto* daemon = new procsync::process([] {
    struct sigaction on_term {};
    on_term.sa_handler = [](int) {
      say(fd, "daemon got SIGTERM");
      ::_exit(0);
    };
    ::sigaction(SIGTERM, &on_term, nullptr);
    say(fd, "daemon " + std::to_string(::getpid()));
    ready->go = 1;
    return linger();
  });
  daemon->set_daemon(true);
  daemon->start();
  auto* worker = new procsync::process([] {
    // The behaviour under test: a worker still running when its parent exits
    // (nothing in the exiting parent can be looked at to sequence this).
    std::this_thread::sleep_for(700ms);  // outlasts the parent's own exit, unless joined
    say(fd, "worker done");
    return 0;
  });
  worker->start();
  // Wait until the daemon has installed its handler, then exit normally.
  std::exit(eventually([] { return ready->go.load() == 1; }) ? 0 : 95);
}();

}  // namespace

BOOST_AUTO_TEST_CASE(return_value_and_arguments_make_the_exit_code, *boost::unit_test::timeout(120)) {
  procsync::process returns_int{[] { return 7; }};
  procsync::process returns_void{[] {}};
  procsync::process with_args{[](int a, const std::string& s) { return a + static_cast<int>(s.size()); }, 3,
                              std::string("abcd")};
  procsync::process move_only{[](std::unique_ptr<int> p) { return *p; }, std::make_unique<int>(5)};
  procsync::process wraps{[] { return 256 + 3; }};  // exit codes are modulo 256
  for (auto* p : {&returns_int, &returns_void, &with_args, &move_only, &wraps}) p->start();
  for (auto* p : {&returns_int, &returns_void, &with_args, &move_only, &wraps}) BOOST_REQUIRE(join_or_kill(*p));
  BOOST_TEST(returns_int.exitcode().value() == 7);
  BOOST_TEST(returns_void.exitcode().value() == 0);
  BOOST_TEST(with_args.exitcode().value() == 7);
  BOOST_TEST(move_only.exitcode().value() == 5);
  BOOST_TEST(wraps.exitcode().value() == 3);
}

BOOST_AUTO_TEST_CASE(std_exit_sets_the_code_flushes_and_skips_parent_exit_handlers, *boost::unit_test::timeout(120)) {
  auto block = procsync::make_anonymous<shared_block>();
  static const bool registered = [] { return std::atexit(exit_witness_handler) == 0; }();
  BOOST_REQUIRE(registered);
  g_exit_witness = &block->count;
  pipe_fds out;
  procsync::process p{[&] {
    FILE* f = ::fdopen(out.w, "w");  // fully buffered: only a flush writes it
    if (f == nullptr) return 90;
    std::fputs("buffered-before-exit", f);
    std::exit(7);
  }};
  p.start();
  out.close_w();
  BOOST_REQUIRE(join_or_kill(p));
  g_exit_witness = nullptr;
  BOOST_TEST(p.exitcode().value() == 7);
  BOOST_TEST(drain(out.r) == "buffered-before-exit");
  BOOST_TEST(block->count.load() == 0);  // neither the atexit handler nor the static destructor ran
}

BOOST_AUTO_TEST_CASE(uncaught_exception_exits_1_and_reports_on_stderr, *boost::unit_test::timeout(120)) {
  pipe_fds err;
  procsync::process p{[&] {
    ::dup2(err.w, STDERR_FILENO);
    throw std::runtime_error("boom: disk on fire");
  }};
  p.set_name("worker");
  p.start();
  err.close_w();
  BOOST_REQUIRE(join_or_kill(p));
  BOOST_TEST(p.exitcode().value() == 1);
  const std::string text = drain(err.r);
  const std::string expected =
      "process worker (pid " + std::to_string(p.pid()) + "): uncaught exception: boom: disk on fire";
  BOOST_TEST(text.find(expected) != std::string::npos, "stderr was: " << text);
}

BOOST_AUTO_TEST_CASE(killed_by_signal_gives_minus_signal, *boost::unit_test::timeout(120)) {
  procsync::process term{[] { return linger(); }};
  procsync::process killed{[] {
    ::signal(SIGTERM, SIG_IGN);  // SIGKILL cannot be ignored
    return linger();
  }};
  term.start();
  killed.start();
  BOOST_REQUIRE(term.is_alive());
  term.terminate();
  killed.kill();
  BOOST_REQUIRE(join_or_kill(term));
  BOOST_REQUIRE(join_or_kill(killed));
  BOOST_TEST(term.exitcode().value() == -SIGTERM);
  BOOST_TEST(killed.exitcode().value() == -SIGKILL);
  // Signalling a reaped child does nothing (its pid may already be reused).
  term.terminate();
  killed.kill();
  BOOST_TEST(term.exitcode().value() == -SIGTERM);
}

BOOST_AUTO_TEST_CASE(join_with_timeout_is_never_early, *boost::unit_test::timeout(120)) {
  auto block = procsync::make_anonymous<shared_block>();
  procsync::process p{[&] { return wait_in_child(block->go, 1); }};
  p.start();
  auto t0 = clk::now();
  BOOST_TEST(!p.join(150ms));
  BOOST_TEST((clk::now() - t0) >= 150ms);
  t0 = clk::now();
  BOOST_TEST(!p.join_until(std::chrono::system_clock::now() + 100ms));
  BOOST_TEST((clk::now() - t0) >= 100ms);
  BOOST_TEST(!p.join(0ms));
  BOOST_TEST(!p.join(-5ms));
  BOOST_TEST(p.is_alive());
  BOOST_TEST(!p.exitcode().has_value());
  block->go = 1;
  BOOST_REQUIRE(p.join(60s));  // the watchdog: the plain join() below cannot hang
  BOOST_TEST(p.exitcode().value() == 0);
  BOOST_TEST(p.join(0ms));  // an ended process joins at once, again and again
  p.join();
}

BOOST_AUTO_TEST_CASE(is_alive_and_exitcode_follow_the_child, *boost::unit_test::timeout(120)) {
  auto block = procsync::make_anonymous<shared_block>();
  procsync::process p{[&] { return 10 + wait_in_child(block->go, 1); }};
  BOOST_TEST(!p.is_alive());
  BOOST_TEST(!p.exitcode().has_value());
  BOOST_TEST(p.pid() == 0);
  p.start();
  BOOST_TEST(p.pid() > 0);
  BOOST_TEST(p.is_alive());
  BOOST_TEST(!p.exitcode().has_value());
  block->go = 1;
  BOOST_REQUIRE(eventually([&] { return !p.is_alive(); }));
  BOOST_TEST(p.exitcode().value() == 10);
  BOOST_TEST(not_waitable(p.pid()));  // is_alive reaped it: no zombie
}

BOOST_AUTO_TEST_CASE(misuse_is_reported, *boost::unit_test::timeout(120)) {
  procsync::process p{[] { return 0; }};
  BOOST_TEST(error_of([&] { p.join(); }) == procsync::errc::not_started);
  BOOST_TEST(error_of([&] { p.join(10ms); }) == procsync::errc::not_started);
  BOOST_TEST(error_of([&] { p.terminate(); }) == procsync::errc::not_started);
  BOOST_TEST(error_of([&] { p.kill(); }) == procsync::errc::not_started);
  BOOST_TEST(error_of([&] { (void)p.sentinel(); }) == procsync::errc::not_started);
  p.start();
  BOOST_TEST(error_of([&] { p.start(); }) == procsync::errc::already_started);
  BOOST_TEST(error_of([&] { p.set_daemon(true); }) == procsync::errc::already_started);
  BOOST_TEST(!p.daemon());
  try {
    p.start();
  } catch (const procsync::error& e) {
    BOOST_TEST(std::string(e.what()).find("already started") != std::string::npos, e.what());
  }
  // A copy of the handle in another process may not wait for the child.
  const pid_t other = fork_child([&] {
    return error_of([&] { p.join(); }) == procsync::errc::not_parent ? 0 : 1;
  });
  BOOST_TEST(wait_exit_code(other) == 0);
  BOOST_REQUIRE(join_or_kill(p));
  BOOST_TEST(p.exitcode().value() == 0);
}

BOOST_AUTO_TEST_CASE(a_daemon_may_not_start_children, *boost::unit_test::timeout(120)) {
  pipe_fds msg;
  procsync::process d{[&] {
    const auto me = procsync::current_process();
    if (!me.daemon) return 2;
    procsync::process inner{[] { return 0; }};
    try {
      inner.start();
    } catch (const procsync::error& e) {
      say(msg.w, e.what());
      return e.code() == procsync::errc::daemon_children ? 0 : 3;
    }
    return 4;
  }};
  d.set_daemon(true);
  BOOST_TEST(d.daemon());
  d.start();
  msg.close_w();
  BOOST_REQUIRE(join_or_kill(d));
  BOOST_TEST(d.exitcode().value() == 0);
  BOOST_TEST(drain(msg.r).find("daemonic processes are not allowed to have children") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(daemon_dies_when_its_parent_is_killed, *boost::unit_test::timeout(120)) {
  auto block = procsync::make_anonymous<shared_block>();
  const pid_t parent = fork_child([&] {
    procsync::process d{[&] {
      block->pid = ::getpid();
      return linger();
    }};
    d.set_daemon(true);
    d.start();
    linger();
    return 0;
  });
  BOOST_REQUIRE(eventually([&] { return block->pid.load() != 0; }));
  const auto daemon = procsync::detail::identity_of(block->pid.load());
  BOOST_REQUIRE(daemon.pid != 0);  // running, not reaped yet
  BOOST_TEST(procsync::detail::process_alive(daemon));
  ::kill(parent, SIGKILL);
  BOOST_TEST(wait_exit_code(parent) == -SIGKILL);
  BOOST_TEST(eventually([&] { return !procsync::detail::process_alive(daemon); }, 20s));
}

BOOST_AUTO_TEST_CASE(daemon_ends_when_parent_exits_normally, *boost::unit_test::timeout(120)) {
  // A fresh copy of this binary (a real main program) starts a daemon and a
  // worker from static initialization, and calls std::exit(0): its exit
  // handler must SIGTERM + join the daemon and join the worker first.
  pipe_fds out;
  const pid_t parent = fork_child([&] {
    const int fd = ::dup(out.w);  // without O_CLOEXEC: survives exec
    ::setenv("PROCSYNC_TEST_EXITING_PARENT", std::to_string(fd).c_str(), 1);
    ::execl("/proc/self/exe", "test_process", static_cast<char*>(nullptr));
    return 96;
  });
  out.close_w();
  BOOST_TEST(wait_exit_code(parent) == 0);
  // Read only what was written before the parent's exit was reported: the
  // worker's line is there only if the exit handler joined it.
  BOOST_REQUIRE(::fcntl(out.r, F_SETFL, O_NONBLOCK) == 0);
  const std::string text = drain(out.r);
  BOOST_TEST(text.find("daemon got SIGTERM") != std::string::npos, "output: " << text);
  BOOST_TEST(text.find("worker done") != std::string::npos, "output: " << text);
  const auto at = text.find("daemon ");
  BOOST_REQUIRE(at != std::string::npos);
  const pid_t daemon_pid = std::atoi(text.c_str() + at + 7);
  BOOST_TEST(daemon_pid > 0);
  BOOST_TEST(::kill(daemon_pid, 0) == -1);  // reaped by its parent: the pid is free (or reused)
}

BOOST_AUTO_TEST_CASE(destructor_joins_and_leaves_no_zombie, *boost::unit_test::timeout(120)) {
  auto block = procsync::make_anonymous<shared_block>();
  pid_t worker_pid = 0, daemon_pid = 0;
  const pid_t main_tid = ::gettid();
  std::atomic<bool> seen_joining{false};
  std::thread releaser;
  {
    procsync::process daemon{[&block] {
      g_term_witness = &block->count;
      struct sigaction on_term {};
      on_term.sa_handler = [](int) {
        g_term_witness->store(1);  // terminated, not waited for: it says so
        ::_exit(0);
      };
      ::sigaction(SIGTERM, &on_term, nullptr);
      block->pid = ::getpid();
      return linger();  // 30 s: a destructor that waited for it would find count still 0
    }};
    daemon.set_daemon(true);
    // Destroyed first (declared last): it ends only once this thread sleeps in
    // the destructor's waitpid, so that destructor must wait for it.
    procsync::process worker{[&block] {
      if (wait_in_child(block->go, 1) != 0) return 99;
      block->value = 1;
      return 0;
    }};
    daemon.start();
    worker.start();
    worker_pid = worker.pid();
    daemon_pid = daemon.pid();
    BOOST_REQUIRE(eventually([&] { return block->pid.load() != 0; }));  // its handler is in place
    releaser = std::thread([&] {
      seen_joining = eventually([&] { return in_waitpid(main_tid); });
      block->go = 1;
    });
  }
  releaser.join();
  BOOST_TEST(seen_joining.load());       // the destructor waited in waitpid...
  BOOST_TEST(block->value.load() == 1);  // ...until the worker finished
  BOOST_TEST(block->count.load() == 1);  // the daemon was terminated, not waited for
  BOOST_TEST(not_waitable(worker_pid));
  BOOST_TEST(not_waitable(daemon_pid));
}

BOOST_AUTO_TEST_CASE(every_observer_reaps, *boost::unit_test::timeout(120)) {
  procsync::process joined{[] { return 1; }};
  procsync::process polled{[] { return 2; }};
  procsync::process timed{[] { return 3; }};
  for (auto* p : {&joined, &polled, &timed}) p->start();
  joined.join();  // the plain join is what is tested; the case's timeout is its watchdog
  BOOST_REQUIRE(eventually([&] { return polled.exitcode().has_value(); }));
  BOOST_REQUIRE(timed.join(60s));
  for (auto* p : {&joined, &polled, &timed}) {
    BOOST_TEST(not_waitable(p->pid()));
    BOOST_TEST(!p->is_alive());
  }
  BOOST_TEST(joined.exitcode().value() + polled.exitcode().value() + timed.exitcode().value() == 6);
}

BOOST_AUTO_TEST_CASE(memory_is_copied_unless_shared, *boost::unit_test::timeout(120)) {
  auto block = procsync::make_anonymous<shared_block>();
  g_ordinary_global = 1;
  procsync::process p{[&] {
    g_ordinary_global = 2;
    block->value = 2;
    return g_ordinary_global;
  }};
  p.start();
  BOOST_REQUIRE(join_or_kill(p));
  BOOST_TEST(p.exitcode().value() == 2);
  BOOST_TEST(g_ordinary_global == 1);  // the child's write went to its own copy
  BOOST_TEST(block->value.load() == 2);
}

namespace {
struct adder : procsync::process {
  adder(int a, std::string b) : a_(a), b_(std::move(b)) {}
  int run() override { return a_ + static_cast<int>(b_.size()) + (procsync::current_process().name == name() ? 100 : 0); }
  int a_;
  std::string b_;
};
}  // namespace

BOOST_AUTO_TEST_CASE(subclass_overrides_run, *boost::unit_test::timeout(120)) {
  adder p{5, "xyz"};
  p.start();
  BOOST_REQUIRE(join_or_kill(p));
  BOOST_TEST(p.exitcode().value() == 108);
}

BOOST_AUTO_TEST_CASE(sentinel_becomes_readable_when_the_child_ends, *boost::unit_test::timeout(120)) {
  auto block = procsync::make_anonymous<shared_block>();
  procsync::process p{[&] { return wait_in_child(block->go, 1); }};
  p.start();
  pollfd fd{p.sentinel(), POLLIN, 0};
  // Still running (it waits for `go`): the sentinel stays unreadable for the
  // 50 ms it is given, the behaviour under test.
  BOOST_TEST(::poll(&fd, 1, 50) == 0);
  block->go = 1;
  fd.revents = 0;
  BOOST_TEST(::poll(&fd, 1, 60000) == 1);
  BOOST_TEST((fd.revents & POLLIN) != 0);
  BOOST_REQUIRE(join_or_kill(p));
  fd.revents = 0;
  BOOST_TEST(::poll(&fd, 1, 0) == 1);  // and stays readable after the reap
}

BOOST_AUTO_TEST_CASE(active_children_lists_running_children, *boost::unit_test::timeout(120)) {
  auto block = procsync::make_anonymous<shared_block>();
  BOOST_TEST(procsync::active_children().empty());
  procsync::process a{[&] { return wait_in_child(block->go, 1); }};
  procsync::process b{[&] { return wait_in_child(block->go, 1); }};
  procsync::process not_started{[] { return 0; }};
  a.start();
  b.start();
  auto running = procsync::active_children();
  BOOST_TEST(running.size() == 2u);
  BOOST_TEST((std::find(running.begin(), running.end(), &a) != running.end()));
  BOOST_TEST((std::find(running.begin(), running.end(), &b) != running.end()));
  block->go = 1;
  BOOST_TEST(eventually([] { return procsync::active_children().empty(); }));
  BOOST_TEST(not_waitable(a.pid()));  // active_children reaped them
  BOOST_TEST(not_waitable(b.pid()));
  BOOST_TEST(a.exitcode().value() == 0);
}

BOOST_AUTO_TEST_CASE(current_process_names_and_nesting, *boost::unit_test::timeout(120)) {
  const auto self = procsync::current_process();
  BOOST_TEST(self.name == "MainProcess");
  BOOST_TEST(self.pid == ::getpid());
  BOOST_TEST(self.parent_pid == ::getppid());
  BOOST_TEST(!self.daemon);

  procsync::process first{[] { return 0; }};
  procsync::process second{[] { return 0; }};
  BOOST_TEST(first.name().rfind("process-", 0) == 0);
  const int n = std::stoi(first.name().substr(8));
  BOOST_TEST(second.name() == "process-" + std::to_string(n + 1));

  const pid_t parent = ::getpid();
  const std::string expected_grandchild = "process-" + std::to_string(n + 2) + ":1";
  procsync::process p{[&] {
    const auto me = procsync::current_process();
    if (me.name != "process-" + std::to_string(n + 2)) return 1;
    if (me.pid != ::getpid() || me.parent_pid != parent || me.daemon) return 2;
    if (!procsync::active_children().empty()) return 3;  // the parent's children are not ours
    procsync::process grandchild{[&] { return procsync::current_process().name == expected_grandchild ? 0 : 1; }};
    if (grandchild.name() != expected_grandchild) return 4;
    grandchild.start();
    grandchild.join();
    return grandchild.exitcode().value() == 0 ? 0 : 5;
  }};
  p.start();
  BOOST_REQUIRE(join_or_kill(p));
  BOOST_TEST(p.exitcode().value() == 0);

  procsync::process renamed{[] { return procsync::current_process().name == "renamed" ? 0 : 1; }};
  renamed.set_name("renamed");
  renamed.start();
  BOOST_REQUIRE(join_or_kill(renamed));
  BOOST_TEST(renamed.exitcode().value() == 0);
}

BOOST_AUTO_TEST_CASE(start_flushes_stdio_so_nothing_is_written_twice, *boost::unit_test::timeout(120)) {
  pipe_fds out;
  FILE* f = ::fdopen(::dup(out.w), "w");
  BOOST_REQUIRE(f != nullptr);
  std::fputs("parent;", f);  // buffered in the parent when start() forks
  procsync::process p{[&] {
    std::fputs("child;", f);  // buffered in the child; flushed by its exit
    return 0;
  }};
  p.start();
  BOOST_REQUIRE(join_or_kill(p));
  std::fclose(f);
  out.close_w();
  BOOST_TEST(drain(out.r) == "parent;child;");
}

// --- moving process objects ------------------------------------------------
static_assert(std::is_nothrow_move_constructible_v<procsync::process>);
static_assert(std::is_nothrow_move_assignable_v<procsync::process>);

BOOST_AUTO_TEST_CASE(a_vector_of_processes_survives_reallocation_while_children_run, *boost::unit_test::timeout(120)) {
  auto block = procsync::make_anonymous<shared_block>();
  std::vector<procsync::process> workers;  // no reserve: emplace_back reallocates while children run
  constexpr int n = 17;
  for (int i = 0; i < n; ++i) {
    workers.emplace_back([&block](int code) { return wait_in_child(block->go, 1) == 0 ? code : 99; }, i + 1);
    workers.back().start();
  }
  BOOST_TEST(workers.capacity() >= static_cast<std::size_t>(n));
  // The registry follows the moves: active_children() points into the vector.
  const auto running = procsync::active_children();
  BOOST_TEST(running.size() == static_cast<std::size_t>(n));
  for (procsync::process* p : running)
    BOOST_TEST((p >= workers.data() && p < workers.data() + workers.size()));
  const pid_t first_pid = workers.front().pid();
  block->go = 1;
  // erase() move-assigns later elements onto earlier ones, some still running.
  BOOST_REQUIRE(join_or_kill(workers[3]));
  workers.erase(workers.begin() + 3);
  BOOST_TEST(workers.size() == static_cast<std::size_t>(n - 1));
  for (std::size_t i = 0; i < workers.size(); ++i) {
    BOOST_REQUIRE(join_or_kill(workers[i]));
    const int expected = static_cast<int>(i < 3 ? i + 1 : i + 2);
    BOOST_TEST(workers[i].exitcode().value() == expected);
  }
  BOOST_TEST(workers.front().pid() == first_pid);
  BOOST_TEST(procsync::active_children().empty());
  BOOST_TEST(not_waitable(first_pid));
}

BOOST_AUTO_TEST_CASE(moved_from_process_is_not_started_and_move_assignment_joins_the_old_child,
                     *boost::unit_test::timeout(120)) {
  auto block = procsync::make_anonymous<shared_block>();
  procsync::process a{[&block] {
    if (wait_in_child(block->go, 1) != 0) return 99;
    block->value = 5;  // it ran to its end: joined, not killed
    return 5;
  }};
  a.start();
  const pid_t a_pid = a.pid();
  procsync::process b{std::move(a)};
  BOOST_TEST(b.pid() == a_pid);
  BOOST_TEST(b.is_alive());
  BOOST_TEST(a.pid() == 0);
  BOOST_TEST(!a.is_alive());
  BOOST_TEST(!a.exitcode().has_value());
  BOOST_TEST((error_of([&] { a.join(); }) == procsync::errc::not_started));
  // A moved-from object may be reused: it is a process without a target.
  a.start();
  BOOST_REQUIRE(join_or_kill(a));
  BOOST_TEST(a.exitcode().value() == 0);

  // Assigning onto b, whose child still runs, joins that child first (as b's
  // destructor would): no zombie, no orphan.
  procsync::process c{[] { return 6; }};
  c.start();
  const pid_t c_pid = c.pid();
  // b's old child ends only once this thread sleeps in the assignment's
  // waitpid (seen by looking), so the assignment must wait for it.
  const pid_t main_tid = ::gettid();
  std::atomic<bool> seen_joining{false};
  std::thread release([&] {
    seen_joining = eventually([&] { return in_waitpid(main_tid); });
    block->go = 1;
  });
  b = std::move(c);
  release.join();
  BOOST_TEST(seen_joining.load());
  BOOST_TEST(block->value.load() == 5);  // b's old child ran to its end...
  BOOST_TEST(not_waitable(a_pid));       // ...and was reaped by the assignment
  BOOST_TEST(b.pid() == c_pid);
  BOOST_REQUIRE(join_or_kill(b));
  BOOST_TEST(b.exitcode().value() == 6);
  BOOST_TEST(c.pid() == 0);

  // A daemon assigned over is terminated, as its destructor would.
  procsync::process d{[] { return linger(); }};
  d.set_daemon(true);
  d.start();
  const pid_t d_pid = d.pid();
  d = procsync::process{};
  BOOST_TEST(not_waitable(d_pid));
  BOOST_TEST(d.pid() == 0);
}

// --- output reaches a pipe on every path the library controls --------------

// Reads the pipe until every writer has closed it, with a watchdog.
std::string drain_with_watchdog(int fd, std::chrono::milliseconds limit = 30s) {
  std::string out;
  const auto end = clk::now() + limit;
  char buf[512];
  while (clk::now() < end) {
    pollfd readable{fd, POLLIN, 0};
    if (::poll(&readable, 1, 100) <= 0) continue;
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) out.append(buf, static_cast<std::size_t>(n));
    else if (n == 0) break;
  }
  return out;
}

BOOST_AUTO_TEST_CASE(partial_lines_on_stdout_reach_a_pipe_on_return_exception_and_terminate,
                     *boost::unit_test::timeout(120)) {
  auto block = procsync::make_anonymous<shared_block>();
  pipe_fds out;
  const int w = out.w;
  procsync::process returns{[w] {
    ::dup2(w, STDOUT_FILENO);
    std::printf("returned-partial");  // no newline: stays in stdio's buffer
    return 0;
  }};
  procsync::process throws{[w] {
    ::dup2(w, STDOUT_FILENO);
    std::printf("threw-partial");
    throw std::runtime_error("expected by the test");
  }};
  procsync::process terminated{[w, &block] {
    ::dup2(w, STDOUT_FILENO);
    std::printf("terminated-partial");
    block->value = 1;
    return linger();
  }};
  returns.start();
  throws.start();
  terminated.start();
  BOOST_REQUIRE(eventually([&] { return block->value.load() == 1; }));
  terminated.terminate();
  BOOST_REQUIRE(join_or_kill(returns));
  BOOST_REQUIRE(join_or_kill(throws));
  BOOST_REQUIRE(join_or_kill(terminated));
  BOOST_TEST(terminated.exitcode().value() == -SIGTERM);  // still killed by SIGTERM
  BOOST_TEST(throws.exitcode().value() == 1);
  out.close_w();
  const std::string text = drain_with_watchdog(out.r);
  BOOST_TEST(text.find("returned-partial") != std::string::npos, "output: " << text);
  BOOST_TEST(text.find("threw-partial") != std::string::npos, "output: " << text);
  BOOST_TEST(text.find("terminated-partial") != std::string::npos, "output: " << text);
}

BOOST_AUTO_TEST_CASE(a_daemons_partial_output_survives_its_parents_exit, *boost::unit_test::timeout(120)) {
  // The parent (a procsync child itself, so its exit is the library's) starts
  // a daemon that writes without a newline, then returns: its exit handler
  // SIGTERMs the daemon, whose buffered output must still reach the pipe.
  auto block = procsync::make_anonymous<shared_block>();
  pipe_fds out;
  const int w = out.w;
  procsync::process parent{[w, &block] {
    ::dup2(w, STDOUT_FILENO);
    procsync::process daemon{[&block] {
      std::printf("daemon-partial");
      block->value = 1;
      return linger();
    }};
    daemon.set_daemon(true);
    daemon.start();
    block->pid = daemon.pid();
    if (!eventually([&] { return block->value.load() == 1; })) return 98;
    std::printf("parent-partial");
    return 0;  // the daemon object's destructor, then the exit path, end the daemon
  }};
  parent.start();
  BOOST_REQUIRE(join_or_kill(parent));
  BOOST_TEST(parent.exitcode().value() == 0);
  out.close_w();
  const std::string text = drain_with_watchdog(out.r);
  BOOST_TEST(text.find("daemon-partial") != std::string::npos, "output: " << text);
  BOOST_TEST(text.find("parent-partial") != std::string::npos, "output: " << text);
}

BOOST_AUTO_TEST_CASE(a_sigterm_handler_of_the_program_is_left_alone, *boost::unit_test::timeout(120)) {
  // The flush handler is only installed over SIGTERM's default action.
  auto block = procsync::make_anonymous<shared_block>();
  procsync::process p{[&block] {
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    ::sigaction(SIGTERM, &ignore, nullptr);
    procsync::process inner{[&block] {
      block->value = 1;
      return linger(2s);  // 42 unless SIGTERM (ignored, inherited) killed it
    }};
    inner.start();
    if (!eventually([&] { return block->value.load() == 1; })) return 98;
    inner.terminate();
    inner.join();
    return inner.exitcode().value();
  }};
  p.start();
  BOOST_REQUIRE(join_or_kill(p));
  BOOST_TEST(p.exitcode().value() == 42);
}

// terminate() and kill() on a child that has exited but is not reaped yet do
// nothing (the pidfd says ESRCH); join() then reports its own exit code.
BOOST_AUTO_TEST_CASE(signalling_an_exited_unreaped_child_does_nothing, *boost::unit_test::timeout(120)) {
  procsync::process p{[] { return 7; }};
  p.start();
  BOOST_REQUIRE(eventually([&] {
    procsync::detail::proc_stat st;
    return procsync::detail::read_proc_stat(p.pid(), st) && st.state == 'Z';
  }));
  BOOST_CHECK_NO_THROW(p.terminate());
  BOOST_CHECK_NO_THROW(p.kill());
  BOOST_REQUIRE(join_or_kill(p));
  BOOST_TEST(p.exitcode().value() == 7);
}

// A child reaped behind procsync's back (a waitpid elsewhere, which the header
// forbids) is gone for good: terminate() and kill() do nothing (the pidfd
// says ESRCH), and join() reports the lost status as ECHILD, saying why.
BOOST_AUTO_TEST_CASE(a_child_reaped_elsewhere_is_reported_not_signalled, *boost::unit_test::timeout(120)) {
  procsync::process p{[] { return 7; }};
  p.start();
  int status = 0;
  BOOST_REQUIRE(::waitpid(p.pid(), &status, 0) == p.pid());  // the forbidden reap
  BOOST_CHECK_NO_THROW(p.terminate());
  BOOST_CHECK_NO_THROW(p.kill());
  std::string what;
  try {
    p.join();
    BOOST_FAIL("join() returned for a child whose status is lost");
  } catch (const std::system_error& e) {
    BOOST_TEST(e.code().value() == ECHILD);
    what = e.what();
  }
  BOOST_TEST(what.find("reaped elsewhere") != std::string::npos, what);
}
