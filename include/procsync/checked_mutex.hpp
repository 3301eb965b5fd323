// procsync/checked_mutex.hpp — a robust mutex that belongs to a lock class
// of a deadlock_registry, so lock-order validation can check it (deadlock.hpp
// gives the rules). Where no detector is installed it is a plain robust mutex.
#pragma once

#include "detail/config.hpp"  // first: one clear error below C++20

#include <atomic>
#include <cstdint>

#include "deadlock_detector.hpp"
#include "deadlock_registry.hpp"
#include "detail/clock.hpp"
#include "detail/deadlock_lock_order.hpp"
#include "detail/robust_lock.hpp"
#include "detail/timed_lock_api.hpp"
#include "lock_status.hpp"

namespace procsync {

/// A robust mutex (procsync::mutex's contract and 40 bytes) that belongs to a
/// lock class and takes part in lock-order validation in processes that
/// installed a detector. Place it in shared memory like procsync::mutex.
class checked_mutex : public detail::timed_lock_api<checked_mutex> {
 public:
  static constexpr const char* kind_name = "procsync::checked_mutex";
  static constexpr std::uint32_t layout_version = 1;

  /// An unlocked mutex of class `cls` (from deadlock_registry::define_class).
  explicit checked_mutex(lock_class cls) noexcept { core_.set_lock_class(cls.id + 1); }
  checked_mutex(const checked_mutex&) = delete;
  checked_mutex& operator=(const checked_mutex&) = delete;

  /// Blocks until held. Throws errc::lock_order_violation (before blocking)
  /// if taking this class now could deadlock against a recorded order, or a
  /// rank/nesting rule is broken; errc::deadlock_detected if this thread is
  /// chosen as the victim of an actual deadlock; else mutex::lock()'s errors.
  void lock() { (void)lock_robust(); }
  [[nodiscard]] lock_status lock_robust() {
    const std::uint64_t chain = detail::deadlock::before_lock(cls(), true);
    const lock_status s = core_.acquire(kind, nullptr);
    detail::deadlock::push_held(this, cls(), chain);
    return s;
  }

  /// Never blocks, never refused for order, records no order.
  [[nodiscard]] bool try_lock() { return holds(try_lock_robust()); }
  [[nodiscard]] lock_status try_lock_robust() {
    const std::uint64_t chain = detail::deadlock::before_lock(cls(), false);
    const lock_status s = core_.try_acquire(kind);
    if (holds(s)) detail::deadlock::push_held(this, cls(), chain);
    return s;
  }

  // try_lock_for / try_lock_until / try_lock_robust_for / try_lock_robust_until
  // come from detail::timed_lock_api: like try_lock (no order check or record),
  // waiting up to the timeout; never false early.

  /// Releases; any unlock order is fine. Same errors as mutex::unlock().
  void unlock() {
    core_.release(kind);
    detail::deadlock::pop_held(this);
  }

  void consistent() { core_.make_consistent(kind); }
  /// As mutex::clear_poison().
  bool clear_poison() noexcept { return core_.clear_poison(); }
  [[nodiscard]] bool inconsistent() const noexcept { return core_.inconsistent(); }
  [[nodiscard]] bool not_recoverable() const noexcept { return core_.not_recoverable(); }
  [[nodiscard]] bool owned_by_caller() const { return core_.held_by_caller(); }
  [[nodiscard]] std::uint32_t holder_tid() const noexcept { return core_.holder_tid(); }
  /// As mutex::heir_tid(): the waiter it is reserved for, 0 if none (a racy snapshot).
  [[nodiscard]] std::uint32_t heir_tid() const noexcept { return core_.heir_tid(); }
  /// The raw robust lock word (holder TID | owner-died bit | waiters bit, see
  /// detail/robust_list.hpp): one racy load, for inspectors (procsync/inspect.hpp).
  [[nodiscard]] std::uint32_t lock_word() const noexcept { return core_.word().load(std::memory_order_relaxed); }
  [[nodiscard]] lock_class get_class() const noexcept { return lock_class{cls()}; }

 private:
  friend class detail::timed_lock_api<checked_mutex>;
  lock_status acquire_until(detail::steady::time_point deadline) {
    const timespec ts = detail::to_timespec(deadline);
    const std::uint64_t chain = detail::deadlock::before_lock(cls(), false);
    const lock_status s = core_.acquire(kind, &ts);
    if (holds(s)) detail::deadlock::push_held(this, cls(), chain);
    return s;
  }

  static constexpr const char* kind = "mutex";
  std::uint32_t cls() const noexcept { return core_.lock_class() - 1; }
  detail::robust_lock core_;
};

static_assert(sizeof(checked_mutex) == 40, "a checked mutex costs no space over procsync::mutex");

}  // namespace procsync
