// procsync/detail/child_side.hpp — a child of procsync::process from fork to
// _exit: what it does before its target runs, how an escaping exception
// becomes exit code 1, and how it ends (its own children first, then its
// output, then _exit). finish_children() is also what the main program runs
// at exit. Why it ends this way: docs/process.md.
#pragma once

#include <signal.h>
#include <stdlib.h>  // on_exit (glibc)
#include <sys/prctl.h>
#include <sys/types.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <exception>
#include <mutex>
#include <string>
#include <vector>

#include "child_output.hpp"
#include "process_registry.hpp"

namespace procsync::detail {

/// The child's first steps after fork, while it has one thread: a daemon asks
/// to be SIGKILLed when its parent dies; the parent's children are forgotten
/// (not ours to wait for or to list); self() becomes `name`, started by
/// `parent`; `exit_hook` is registered for std::exit; SIGTERM flushes output.
[[gnu::cold]] inline void begin_child(const std::string& identity, const std::string& name, bool daemon, pid_t parent,
                                      void (*exit_hook)(int, void*)) noexcept {
  if (daemon) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    // The parent may have died before prctl: then we were reparented already.
    if (::getppid() != parent) ::raise(SIGKILL);
  }
  registry().children.clear();
  auto& me = self();
  try {
    me.identity_prefix = identity + ":";
    me.name = name;
  } catch (...) {
    ::_exit(1);  // out of memory right after fork: nothing sensible to report
  }
  me.daemon = daemon;
  me.parent_pid = parent;
  me.next_number.store(1, std::memory_order_relaxed);  // one thread now: no ordering needed
  // std::exit(n) in the target: this runs before every handler inherited
  // from the parent (handlers run in reverse order of registration).
  ::on_exit(exit_hook, nullptr);
  install_child_sigterm_flush();
}

/// Runs the child's target and returns its exit code; an exception escaping
/// it is reported on stderr ("process NAME (pid N): uncaught exception: WHAT")
/// and gives exit code 1.
template <class Target>
int run_child_target(const std::string& name, Target&& target) noexcept {
  try {
    return target();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "process %s (pid %d): uncaught exception: %s\n", name.c_str(), static_cast<int>(::getpid()),
                 e.what());
  } catch (...) {
    std::fprintf(stderr, "process %s (pid %d): uncaught exception: unknown exception (not a std::exception)\n",
                 name.c_str(), static_cast<int>(::getpid()));
  }
  return 1;
}

/// Python's exit function: terminate the caller's daemon children, then join
/// every child it started. Process is procsync::process (a template only
/// because that class is not complete here); only its public API is used.
template <class Process>
void finish_children() noexcept {
  std::vector<Process*> mine;
  try {
    auto& reg = registry();
    std::lock_guard guard(reg.lock);
    const pid_t me = ::getpid();
    for (const auto& entry : reg.children)
      if (entry.started_by == me) mine.push_back(entry.object);
  } catch (...) {
    return;
  }
  for (Process* p : mine) {
    try {
      if (p->daemon()) p->terminate();  // does nothing once reaped
    } catch (...) {
    }
  }
  for (Process* p : mine) {
    try {
      p->join();  // returns at once once reaped
    } catch (...) {
    }
  }
}

/// How a child ends, whether its target returned or it called std::exit (an
/// on_exit hook): its children first, then its buffered output, then _exit,
/// so the parent's atexit handlers and static destructors never run twice.
template <class Process>
[[noreturn]] void end_child(int code, void*) {
  finish_children<Process>();
  flush_standard_streams();
  ::_exit(code);
}

}  // namespace procsync::detail
