// procsync/detail/child_output.hpp — what a child started by procsync::process
// does so that its buffered output is neither lost nor written twice: it
// flushes stdio and the standard iostreams before it _exits, and SIGTERM (which
// the library itself sends), if still at its default action, first writes what
// stdout and stderr buffer. Best effort; what no library can flush (SIGKILL,
// crashes, ...) is listed in docs/process.md#output.
#pragma once

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <iostream>

namespace procsync::detail {

/// Writes what `f` holds in its output buffer with write(2) only, so it may
/// run in a signal handler: the bytes between glibc's public FILE fields
/// _IO_write_base and _IO_write_ptr are those not yet written.
inline void write_buffered_output(FILE* f) noexcept {
#ifdef __GLIBC__
  const char* p = f->_IO_write_base;
  const char* const end = f->_IO_write_ptr;
  while (p != nullptr && p < end) {
    const ssize_t n = ::write(f->_fileno, p, static_cast<std::size_t>(end - p));
    if (n > 0)
      p += n;
    else if (n < 0 && errno == EINTR)
      continue;
    else
      break;
  }
#else
  (void)f;
#endif
}

/// The child's SIGTERM handler: installed with
/// SA_RESETHAND | SA_NODEFER, so the action is already the default again and
/// raise() ends the process with SIGTERM at once.
extern "C" inline void flush_then_die_of_sigterm(int sig) {
  write_buffered_output(stdout);
  write_buffered_output(stderr);
  ::raise(sig);
}

inline void install_child_sigterm_flush() noexcept {
#ifdef __GLIBC__
  struct sigaction current {};
  if (::sigaction(SIGTERM, nullptr, &current) != 0 || current.sa_handler != SIG_DFL ||
      (current.sa_flags & SA_SIGINFO) != 0)
    return;  // the program chose what SIGTERM does: leave it alone
  struct sigaction flush {};
  flush.sa_handler = &flush_then_die_of_sigterm;
  sigemptyset(&flush.sa_mask);
  flush.sa_flags = SA_RESETHAND | SA_NODEFER;
  ::sigaction(SIGTERM, &flush, nullptr);
#endif
}

/// Flushes everything a child could have buffered: stdio and the standard iostreams.
inline void flush_standard_streams() noexcept {
  try {
    std::cout.flush();
    std::cerr.flush();
    std::clog.flush();
  } catch (...) {
  }
  std::fflush(nullptr);
}

}  // namespace procsync::detail
