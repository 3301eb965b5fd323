// procsync/recursive_mutex.hpp — a robust, re-entrant mutex shared between
// processes.
//
// Like procsync::mutex (same robustness contract, same placement rules, 40
// bytes), but the holder may lock it again; it is released when unlock() has
// been called as many times as it was locked. Only the holder may unlock it:
// any other thread gets errc::not_owner ("released by a thread that does not
// own it", Python RLock's rule). The depth is limited to 2^32 - 1
// (errc::invalid_argument beyond).
//
// After an owner's death the next holder starts at depth 1, whatever depth the
// dead owner had reached.
#pragma once

#include "detail/config.hpp"  // first: one clear error below C++20
#include <chrono>
#include <cstdint>
#include <limits>

#include "detail/clock.hpp"
#include "detail/robust_lock.hpp"
#include "detail/timed_lock_api.hpp"
#include "lock_status.hpp"

namespace procsync {

class recursive_mutex : public detail::timed_lock_api<recursive_mutex> {
 public:
  static constexpr const char* kind_name = "procsync::recursive_mutex";
  static constexpr std::uint32_t layout_version = 2;  // 2: the word after the lock counts levels beyond the first

  /// An unlocked recursive mutex (owner_death::must_repair).
  constexpr recursive_mutex() noexcept = default;
  /// An unlocked recursive mutex with the given meaning of an owner's death.
  constexpr explicit recursive_mutex(owner_death policy) noexcept : core_(policy) {}
  recursive_mutex(const recursive_mutex&) = delete;
  recursive_mutex& operator=(const recursive_mutex&) = delete;

  /// Blocks until the caller holds the mutex; re-entrant for the holder.
  void lock() { (void)lock_robust(); }

  /// Like lock(); reports lock_status::owner_died on first acquisition after an
  /// owner's death.
  [[nodiscard]] lock_status lock_robust() {
    detail::thread_identity& self = detail::current_thread();
    if (core_.take_if_clean(self)) [[likely]]
      return lock_status::acquired;  // a free lock has no levels beyond the first
    return lock_taken_or_contended(self);
  }

  [[nodiscard]] bool try_lock() { return holds(try_lock_robust()); }
  [[nodiscard]] lock_status try_lock_robust() {
    if (reenter(detail::current_thread())) return lock_status::acquired;
    return first_hold(core_.try_acquire(message_name));
  }

  // try_lock_for, try_lock_until, try_lock_robust_for, try_lock_robust_until:
  // from detail::timed_lock_api (re-entrant for the holder, as try_lock()).

  /// Releases one level. Requires: the caller holds it (else errc::not_owner).
  void unlock() {
    const detail::thread_identity& self = detail::current_thread();
    // One load of the word, one test (ours and consistent, as release's own
    // fast path tests it, so the compiler drops that one), then the level.
    const std::uint32_t seen = core_.word().load(std::memory_order_relaxed);
    if ((seen & ~detail::word_waiters) != self.tid) [[unlikely]]
      return unlock_unusual(self, seen);
    release_one_level(self, seen);
  }

  /// See mutex::consistent().
  void consistent() { core_.make_consistent(message_name); }
  [[nodiscard]] bool inconsistent() const noexcept { return core_.inconsistent(); }
  [[nodiscard]] bool not_recoverable() const noexcept { return core_.not_recoverable(); }
  /// As mutex::clear_poison().
  bool clear_poison() noexcept { return core_.clear_poison(); }
  [[nodiscard]] bool owned_by_caller() const { return core_.held_by_caller(); }
  [[nodiscard]] std::uint32_t holder_tid() const noexcept { return core_.holder_tid(); }
  /// As mutex::heir_tid(): the waiter it is reserved for, 0 if none (a racy snapshot).
  [[nodiscard]] std::uint32_t heir_tid() const noexcept { return core_.heir_tid(); }
  /// The raw robust lock word (holder TID | owner-died bit | waiters bit, see
  /// detail/robust_list.hpp): one racy load, for inspectors (procsync/inspect.hpp).
  [[nodiscard]] std::uint32_t lock_word() const noexcept { return core_.word().load(std::memory_order_relaxed); }

  /// How many times the caller holds it (0 if it does not).
  [[nodiscard]] std::uint32_t depth_of_caller() const {
    return core_.held_by_caller() ? const_cast<recursive_mutex*>(this)->extra_levels() + 1 : 0;
  }

 private:
  friend class detail::timed_lock_api<recursive_mutex>;
  lock_status acquire_until(detail::steady::time_point deadline) {
    if (reenter(detail::current_thread())) return lock_status::acquired;
    const timespec ts = detail::to_timespec(deadline);
    return first_hold(core_.acquire(message_name, &ts));
  }

  // How errors name it ("procsync::" + message_name + ": ..."); kind_name is the layout identity.
  static constexpr const char* message_name = "recursive_mutex";

  // The levels beyond the first live in the core's spare room, touched only by
  // the holder. Counting from 0 keeps the common lock/unlock free of writes to
  // it: every release leaves 0 behind, and only a dead owner can leave more.
  std::uint32_t& extra_levels() noexcept { return core_.recursion_extra_levels(); }

  // lock_robust() past the fast path: ours already (one level more), or wait.
  [[gnu::noinline]] lock_status lock_taken_or_contended(detail::thread_identity& self) {
    if (reenter(self)) return lock_status::acquired;
    return first_hold(core_.acquire(self, message_name, nullptr));
  }

  bool reenter(const detail::thread_identity& self) {
    if (!core_.held_by(self)) return false;
    if (extra_levels() == std::numeric_limits<std::uint32_t>::max() - 1)
      detail::throw_error(errc::invalid_argument, "procsync::recursive_mutex: recursion depth limit reached");
    ++extra_levels();
    return true;
  }

  // `seen`: the word, just loaded, held by the caller.
  void release_one_level(const detail::thread_identity& self, std::uint32_t seen) {
    if (extra_levels() == 0)
      core_.release_seen(self, seen, message_name);
    else
      --extra_levels();
  }
  // unlock() when the word is not simply ours: not held by the caller
  // (throws) or held while inconsistent (the last level poisons it).
  [[gnu::cold, gnu::noinline]] void unlock_unusual(const detail::thread_identity& self, std::uint32_t seen) {
    // A TID never equals word_tid_mask, so a poisoned word is held by no one.
    if ((seen & detail::word_tid_mask) != self.tid) throw_not_owner(self);
    release_one_level(self, seen);
  }

  [[noreturn, gnu::cold, gnu::noinline]] static void throw_not_owner(const detail::thread_identity& self) {
    detail::throw_error(errc::not_owner,
                        "procsync::recursive_mutex: cannot release un-acquired lock (released by thread " +
                            std::to_string(self.tid) + ", which does not own it)");
  }

  lock_status first_hold(lock_status status) {
    if (status == lock_status::owner_died) extra_levels() = 0;  // the dead owner's levels
    return status;
  }

  detail::robust_lock core_;
};

static_assert(sizeof(recursive_mutex) == 40);

}  // namespace procsync
