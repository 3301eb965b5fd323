// procsync/process.hpp — child processes with Python multiprocessing.Process
// semantics: start, join (with a timeout), exit codes, daemons, no zombies.
//
//   int work(int n) { ...; return 0; }
//
//   procsync::process p{work, 42};       // the callable and its arguments are copied in
//   p.start();                            // fork(); the child runs work(42) and _exits
//   if (!p.join(std::chrono::seconds(5))) p.terminate();
//   p.join();
//   std::optional<int> code = p.exitcode();   // 0..255, or -N when killed by signal N
//
// or, as with Python's `class Downloader(Process)`:
//
//   struct downloader : procsync::process {
//     explicit downloader(std::string url) : url_(std::move(url)) {}
//     int run() override { ...; return 0; }   // runs in the child
//     std::string url_;
//   };
//
// Rules a caller must know (how it works and why: docs/process.md):
//  - The child is a fork: a copy of the caller's memory (shared mappings stay
//    shared) with only the thread that called start(); it should not touch
//    locks that the parent's other threads might have held.
//  - A process object is used from one thread at a time.
//  - When the program exits normally, running daemon children are SIGTERMed,
//    then every running child is joined, as in Python: exit may wait.
//  - Nothing else may reap our children (SIGCHLD set to SIG_IGN, a
//    waitpid(-1) elsewhere): their status is lost and join()/exitcode()
//    throw an errno error (ECHILD) saying so.
//  - Output a child still buffers is lost if it is SIGKILLed or crashes.
#pragma once

#include "detail/config.hpp"  // first: one clear error below C++20
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "detail/child_handle.hpp"
#include "detail/child_output.hpp"
#include "detail/child_side.hpp"
#include "detail/clock.hpp"
#include "detail/process_registry.hpp"
#include "detail/process_target.hpp"
#include "error.hpp"

namespace procsync {

class process;

/// What current_process() reports about the calling process.
struct process_info {
  pid_t pid = 0;         ///< getpid()
  std::string name;      ///< "MainProcess", or the name of the process object that started us
  bool daemon = false;   ///< whether we were started as a daemon (and so may not start children)
  pid_t parent_pid = 0;  ///< the process that started us (main process: getppid())
};

/// The calling process as procsync sees it: in the main program name
/// "MainProcess"; inside a child started by procsync::process, that process's
/// name and daemon flag as they were at start().
inline process_info current_process() {
  const auto& me = detail::self();
  return {::getpid(), me.name, me.daemon, me.parent_pid != 0 ? me.parent_pid : ::getppid()};
}

/// The children this process started that are still running, as pointers to
/// their (live) process objects. Finished children are reaped on the way, as
/// Python's active_children() does. Children started by other processes
/// (a parent's children, seen through a copy of its memory) are never listed.
std::vector<process*> active_children();

/// A child process running a callable or an overridden run(), with Python's
/// multiprocessing.Process semantics. The object is the handle: movable (also
/// while its child runs, see the move constructor), not copyable.
class process {
 public:
  /// A process with no target: run() does nothing and returns 0 unless a
  /// subclass overrides it. Default name "process-N" (N counts the process
  /// objects created by the calling process; "process-N:M" in a child).
  process() : identity_(detail::self().identity_prefix + next_number()), name_("process-" + identity_) {}

  /// A process that runs `std::invoke(f, args...)` in the child. `f` and every
  /// argument are copied or moved into the object now (decayed, as std::thread
  /// does); pass std::ref to share a reference — it stays valid in the child,
  /// which has a copy of the caller's memory. The child's exit code is the
  /// return value if it converts to int (void or other types: 0). Returning
  /// bool is rejected at compile time: `return true` would mean exit code 1.
  template <class F, class... Args>
    requires(!std::is_base_of_v<process, std::remove_cvref_t<F>> &&
             std::is_invocable_v<std::decay_t<F>, std::decay_t<Args>...>)
  explicit process(F&& f, Args&&... args) : process() {
    using result = std::invoke_result_t<std::decay_t<F>, std::decay_t<Args>...>;
    static_assert(!std::is_same_v<std::remove_cvref_t<result>, bool>,
                  "procsync::process: the target returns bool; return an int exit code (0 = success) instead");
    target_ = std::make_unique<detail::process_target_of<std::decay_t<F>, std::decay_t<Args>...>>(
        std::forward<F>(f), std::forward<Args>(args)...);
  }

  process(const process&) = delete;
  process& operator=(const process&) = delete;

  /// Takes over `other`'s target, name, daemon flag and, if it was started,
  /// its child (pid, pidfd, exit status, and its place among the children
  /// that active_children() and the exit handler see), so
  /// std::vector<procsync::process> works while children run. `other` is
  /// left like a new process without a target or name (not started; its
  /// destructor does nothing). Pointers from active_children() to `other`
  /// are not updated: call it again. Move a subclass only as its own type:
  /// moving it into a procsync::process keeps the child but drops the
  /// subclass's run() and members (slicing).
  process(process&& other) noexcept { take(other); }

  /// First ends this object's own child as the destructor would (a running
  /// daemon is SIGTERMed; a started, unreaped child is joined, which may
  /// block while it runs), then takes over `other` as the move constructor
  /// does. Self-assignment does nothing.
  process& operator=(process&& other) noexcept {
    if (this != &other) {
      release_child();
      take(other);
    }
    return *this;
  }

  /// If the child still runs: a daemon child is terminated (SIGTERM) and
  /// joined; a non-daemon child is joined — this may block as long as the
  /// child runs, exactly as Python's main process waits for its children.
  /// Nothing is left as a zombie. Errors are swallowed (a destructor cannot
  /// report them). In any process other than the one that started the child
  /// (a fork's copy of this object) only the pidfd is closed.
  virtual ~process() { release_child(); }

  /// Forks a child that runs run() (by default, the target) and then _exits:
  /// with run()'s return value; with n if it calls std::exit(n); with 1 after
  /// printing "process NAME (pid N): uncaught exception: WHAT" to stderr if an
  /// exception escapes. Before exiting, the child terminates its own daemon
  /// children, joins the others, and flushes stdio and the standard iostreams.
  /// Throws errc::already_started if called twice, errc::daemon_children in a
  /// daemon process, an errno error if fork or pidfd_open fails (then no child
  /// is left behind). Never returns in the child.
  void start() {
    if (child_.pid() != 0)
      detail::throw_error(errc::already_started, "procsync::process::start: '" + name_ + "' was already started (pid " +
                                                     std::to_string(child_.pid()) + "); a process object runs once");
    if (detail::self().daemon)
      detail::throw_error(errc::daemon_children,
                          "procsync::process::start: cannot start '" + name_ + "' from '" + detail::self().name +
                              "', a daemon process; daemonic processes are not allowed to have children");
    const pid_t parent = ::getpid();
    detail::flush_standard_streams();  // else buffered output would be written twice
    auto& children = detail::registry();
    std::unique_lock guard(children.lock);
    children.children.reserve(children.children.size() + 1);  // push_back below must not throw
    const pid_t child = ::fork();
    if (child < 0) {
      const int err = errno;
      guard.unlock();
      detail::throw_errno(err, "procsync::process::start: fork failed for '" + name_ + "'");
    }
    if (child == 0) {
      // Unlocking a mutex the parent's thread locked is what pthread_atfork
      // child handlers do; the child has one thread and its own copy.
      guard.unlock();
      child_main(parent);
    }
    child_ = detail::child_handle::adopt(child, parent, name_);
    children.children.push_back({this, parent});
    if (!children.exit_handler_installed) {
      children.exit_handler_installed = true;
      std::atexit(&detail::finish_children<process>);
    }
  }

  /// Waits until the child ends and reaps it. Afterwards exitcode() has a value.
  /// Throws errc::not_started before start(), errc::not_parent in a process
  /// other than the one that started the child.
  void join() {
    check_waitable("join");
    child_.reap(true, name_);
  }

  /// Waits at most `timeout` (on the monotonic clock) for the child to end;
  /// returns whether it ended (then it is reaped). Never returns false early.
  /// Sleeps in ppoll on the pidfd: no busy polling. Same errors as join().
  template <class Rep, class Period>
  bool join(const std::chrono::duration<Rep, Period>& timeout) {
    return join_until(detail::deadline_after(timeout));
  }

  /// join(timeout) with a deadline on any clock (converted once to steady_clock).
  template <class Clock, class Duration>
  bool join_until(const std::chrono::time_point<Clock, Duration>& deadline) {
    check_waitable("join");
    return child_.wait_until(detail::to_steady(deadline), name_);
  }

  /// Whether the child has started and not yet ended. Reaps it if it ended.
  /// False before start(). Throws errc::not_parent if the child's status is
  /// not known yet and the caller is not the process that started it.
  bool is_alive() {
    if (child_.pid() == 0 || child_.ended()) return false;
    check_waitable("is_alive");
    return !child_.reap(false, name_);
  }

  /// The child's exit status: nullopt before start() and while it runs; then
  /// the exit code (0..255: the value passed to _exit, modulo 256), or -N if
  /// signal N killed it. Reaps the child if it ended. Errors as is_alive().
  std::optional<int> exitcode() {
    if (child_.pid() == 0) return std::nullopt;
    if (!child_.ended()) {
      check_waitable("exitcode");
      if (!child_.reap(false, name_)) return std::nullopt;
    }
    return child_.exitcode();
  }

  /// The child's pid; 0 before start(). Kept after the child ends (as in
  /// Python), but only signal it through terminate()/kill(): once reaped, the
  /// number may belong to another process.
  pid_t pid() const noexcept { return child_.pid(); }

  /// The name, for messages and current_process().name in the child.
  const std::string& name() const noexcept { return name_; }

  /// Renames the process; after start() this changes only the parent's view.
  void set_name(std::string name) { name_ = std::move(name); }

  /// Whether the child is (to be) a daemon.
  bool daemon() const noexcept { return daemon_; }

  /// Makes the child a daemon (before start(); afterwards errc::already_started).
  /// A daemon child:
  ///  - may not start children of its own (errc::daemon_children), as in Python;
  ///  - is terminated (SIGTERM) and joined when its parent exits normally
  ///    (return from main or std::exit: an atexit handler) or destroys its
  ///    process object — a daemon that ignores SIGTERM makes that join hang,
  ///    as in Python;
  ///  - is SIGKILLed by the kernel when its parent dies any other way
  ///    (PR_SET_PDEATHSIG; a parent that died before the child set it is
  ///    detected through getppid()). Caveat: the kernel sends that signal when
  ///    the *thread* that called start() ends, not the whole process — start
  ///    daemons from a thread that lives as long as they should.
  void set_daemon(bool daemon) {
    if (child_.pid() != 0)
      detail::throw_error(errc::already_started, "procsync::process::set_daemon: '" + name_ +
                                                     "' was already started (pid " + std::to_string(child_.pid()) +
                                                     "); set the daemon flag before start()");
    daemon_ = daemon;
  }

  /// Sends SIGTERM (which, unless handled, ends the child with exitcode -15).
  /// Does not wait: call join() next. Nothing happens if the child has been
  /// reaped already. Throws errc::not_started before start(). Signals through
  /// the pidfd, so a recycled pid is never signalled.
  void terminate() { send_signal(SIGTERM, "terminate"); }

  /// Sends SIGKILL (exitcode -9 after join()); otherwise as terminate().
  void kill() { send_signal(SIGKILL, "kill"); }

  /// A pidfd for the child: poll()/select()/epoll report it readable once the
  /// child has ended. Owned by this object (closed by its destructor; close-on-exec).
  /// Throws errc::not_started before start().
  int sentinel() const {
    if (child_.pid() == 0)
      detail::throw_error(errc::not_started,
                          "procsync::process::sentinel: '" + name_ + "' has no sentinel before start()");
    return child_.pidfd();
  }

 protected:
  /// What the child runs; its return value is the exit code. By default,
  /// invokes the target given to the constructor (no target: returns 0).
  /// Subclasses override it, as Python's Process.run.
  virtual int run() { return target_ ? target_->invoke() : 0; }

 private:
  static std::string next_number() {
    // relaxed: names need distinct numbers, not an order between threads.
    return std::to_string(detail::self().next_number.fetch_add(1, std::memory_order_relaxed));
  }

  [[noreturn, gnu::cold]] void child_main(pid_t parent) noexcept {
    detail::begin_child(identity_, name_, daemon_, parent, &detail::end_child<process>);
    child_ = detail::child_handle::of_self(parent);  // so that join()/is_alive() on ourselves say not_parent
    detail::end_child<process>(detail::run_child_target(name_, [this] { return run(); }), nullptr);
  }

  [[noreturn, gnu::cold]] void throw_not_started(const char* operation) const {
    detail::throw_error(errc::not_started, std::string("procsync::process::") + operation + ": '" + name_ +
                                               "' was never started; call start() first");
  }

  void check_waitable(const char* operation) const {
    if (child_.pid() == 0) throw_not_started(operation);
    if (child_.started_by() != ::getpid())
      detail::throw_error(errc::not_parent, std::string("procsync::process::") + operation + ": '" + name_ + "' (pid " +
                                                std::to_string(child_.pid()) + ") was started by pid " +
                                                std::to_string(child_.started_by()) + ", not by the caller (pid " +
                                                std::to_string(::getpid()) + ")");
  }

  // Named so as not to hide ::signal from a subclass's run().
  void send_signal(int sig, const char* operation) {
    if (child_.pid() == 0) throw_not_started(operation);
    child_.send_signal(sig, operation, name_);
  }

  // What the destructor does: end and reap our child, forget it, close the pidfd.
  void release_child() noexcept {
    if (child_.ours()) {
      try {
        if (!child_.ended()) {
          if (daemon_) send_signal(SIGTERM, "~process");
          child_.reap(true, name_);
        }
      } catch (...) {
      }
      detail::registry().forget(this);
    }
    child_.close();
  }

  // Moves everything from `other`, which ends up not started. Under the
  // registry lock, so that active_children() and the exit handler (which
  // dereference registered objects under it) see either object whole.
  void take(process& other) noexcept {
    auto& reg = detail::registry();
    std::lock_guard guard(reg.lock);
    identity_ = std::move(other.identity_);
    name_ = std::move(other.name_);
    target_ = std::move(other.target_);
    child_ = std::move(other.child_);
    daemon_ = std::exchange(other.daemon_, false);
    for (auto& entry : reg.children)
      if (entry.object == &other) entry.object = this;
  }

  std::string identity_;  // "3", or "3:1" in a child of process-3: numbers default names
  std::string name_;
  std::unique_ptr<detail::process_target> target_;
  detail::child_handle child_;  // pid 0: not started
  bool daemon_ = false;
};

inline std::vector<process*> active_children() {
  auto& reg = detail::registry();
  std::lock_guard guard(reg.lock);
  const pid_t me = ::getpid();
  std::vector<process*> alive;
  for (const auto& entry : reg.children)
    if (entry.started_by == me && entry.object->is_alive()) alive.push_back(entry.object);
  return alive;
}

}  // namespace procsync
