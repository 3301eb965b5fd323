// procsync/lock_status.hpp — what a robust acquisition found, and what an
// owner's death means for the data a lock guards.
#pragma once

#include "detail/config.hpp"

#include <cstdint>

namespace procsync {

/// What a robust acquisition found.
enum class lock_status {
  acquired,     ///< the caller holds the lock; the protected data is consistent
  owner_died,   ///< the caller holds the lock, but the previous holder died holding
                ///< it: repair the data, then call consistent() (or unlock to poison)
  unavailable,  ///< not acquired: try_lock found it held, or the deadline passed
};

/// True when `s` means the caller now holds the lock.
constexpr bool holds(lock_status s) noexcept { return s != lock_status::unavailable; }

/// What a holder's death means for the data a lock guards: chosen once, when
/// the lock is constructed (it is part of the lock's state in shared memory).
enum class owner_death : std::uint32_t {
  /// pthread's robust contract (the default): the next owner is told
  /// (lock_robust() returns owner_died, inconsistent() is true) and must repair
  /// the data and call consistent(); unlocking without doing so makes the lock
  /// not recoverable for everyone, so a death is never silently forgotten.
  must_repair = 0,
  /// For data a crash cannot leave half-written (atomically published values,
  /// crash-consistent logs, or no data at all): the next owner still learns of
  /// the death from lock_robust() (owner_died, once), but the lock is consistent
  /// at once and never poisoned, so std::lock_guard code keeps working.
  nothing_to_repair = 1,
};

}  // namespace procsync
