// procsync/detail/robust_guard.hpp — holds a primitive's own robust lock for
// one scope, repairing first what a holder that died left behind.
//
// Semaphores (undo mode), barriers, named segments and shared values keep
// their bookkeeping under a robust lock. Each takes it the same way: lock;
// if the previous holder died, repair (roll back, break, free a half-built
// block, or nothing) and mark the lock consistent; unlock at scope exit.
// This is that pattern, once.
#pragma once

#include <utility>

#include "../lock_status.hpp"

namespace procsync::detail {

/// Does nothing: for locks whose data a death cannot leave half-written.
struct nothing_to_repair {
  void operator()() const noexcept {}
};

/// Holds `Lock` (anything with lock_robust(), consistent() and unlock(), such
/// as procsync::mutex) from construction to destruction or release().
template <class Lock>
class robust_guard {
 public:
  /// Takes `lock`. If its previous holder died, runs `repair()` holding it and
  /// then marks it consistent. If repair() throws, the lock is released
  /// unrepaired (so it is poisoned, unless its policy says nothing_to_repair)
  /// and the exception propagates.
  template <class Repair = nothing_to_repair>
  explicit robust_guard(Lock& lock, Repair&& repair = Repair{}) : lock_(&lock) {
    if (lock.lock_robust() != lock_status::owner_died) return;
    try {
      std::forward<Repair>(repair)();
    } catch (...) {
      lock.unlock();
      throw;
    }
    lock.consistent();
    repaired_ = true;
  }

  ~robust_guard() noexcept(false) {
    if (lock_ != nullptr) lock_->unlock();
  }

  robust_guard(const robust_guard&) = delete;
  robust_guard& operator=(const robust_guard&) = delete;

  /// Releases the lock before the scope ends (no effect if already released).
  void release() {
    if (Lock* lock = std::exchange(lock_, nullptr)) lock->unlock();
  }

  /// Whether a dead holder's state was repaired when the lock was taken.
  [[nodiscard]] bool repaired() const noexcept { return repaired_; }

 private:
  Lock* lock_;
  bool repaired_ = false;
};

}  // namespace procsync::detail
