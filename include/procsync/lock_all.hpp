// procsync/lock_all.hpp — lock_all(m...): takes several locks without
// deadlock whatever order other threads and processes use (lock one, try the
// rest, back off and rotate). Works with any Lockable, procsync's or std's.
#pragma once

#include "detail/config.hpp"  // first: one clear error below C++20
#include <sched.h>

#include <cstddef>

namespace procsync {

/// Locks every argument (Lockable: lock/try_lock/unlock) without deadlock,
/// whatever order other threads and processes use: blocks on one, tries the
/// others, and on a miss releases all and starts with the one that was busy.
/// Try-locks record no lock order. If a lock() throws, nothing is held.
template <class... Lockables>
void lock_all(Lockables&... locks) {
  constexpr std::size_t n = sizeof...(Lockables);
  static_assert(n >= 1, "lock_all needs at least one lock");
  if constexpr (n == 1) {
    (locks.lock(), ...);
  } else {
    const auto lock_i = [&](std::size_t i) {
      std::size_t k = 0;
      ((k++ == i ? (locks.lock(), 0) : 0), ...);
    };
    const auto try_i = [&](std::size_t i) {
      bool got = false;
      std::size_t k = 0;
      ((k++ == i ? (got = static_cast<bool>(locks.try_lock()), 0) : 0), ...);
      return got;
    };
    const auto unlock_i = [&](std::size_t i) {
      std::size_t k = 0;
      ((k++ == i ? (locks.unlock(), 0) : 0), ...);
    };
    std::size_t first = 0;
    for (;;) {
      lock_i(first);
      std::size_t taken = 1;  // locks first, first+1, ... (mod n) are held
      std::size_t busy = n;
      try {
        for (; taken < n; ++taken) {
          const std::size_t i = (first + taken) % n;
          if (!try_i(i)) {
            busy = i;
            break;
          }
        }
      } catch (...) {
        for (std::size_t j = 0; j < taken; ++j) unlock_i((first + j) % n);
        throw;
      }
      if (busy == n) return;
      for (std::size_t j = 0; j < taken; ++j) unlock_i((first + j) % n);
      first = busy;  // block on the one that was busy next time
      ::sched_yield();
    }
  }
}


}  // namespace procsync
