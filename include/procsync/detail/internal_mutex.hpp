// procsync/detail/internal_mutex.hpp — the lock a procsync structure keeps for
// itself (a named segment's guard), on the floor, without the public
// procsync::mutex above it.
//
// The same 40 bytes, word and contract as procsync::mutex with
// owner_death::must_repair (it is the same robust_lock), and the same error
// messages ("procsync::mutex: ..."), so a segment written by an older release
// is read unchanged. Use it with robust_guard.
#pragma once

#include <cstdint>

#include "../lock_status.hpp"
#include "robust_lock.hpp"

namespace procsync::detail {

class internal_mutex {
 public:
  constexpr internal_mutex() noexcept = default;
  internal_mutex(const internal_mutex&) = delete;
  internal_mutex& operator=(const internal_mutex&) = delete;

  void lock() { (void)core_.acquire(name, nullptr); }
  [[nodiscard]] lock_status lock_robust() { return core_.acquire(name, nullptr); }
  [[nodiscard]] lock_status try_lock_robust() { return core_.try_acquire(name); }
  void unlock() { core_.release(name); }
  void consistent() { core_.make_consistent(name); }
  [[nodiscard]] bool inconsistent() const noexcept { return core_.inconsistent(); }
  [[nodiscard]] std::uint32_t holder_tid() const noexcept { return core_.holder_tid(); }

 private:
  static constexpr const char* name = "mutex";
  robust_lock core_;
};

static_assert(sizeof(internal_mutex) == 40, "the bytes of a procsync::mutex");

}  // namespace procsync::detail
