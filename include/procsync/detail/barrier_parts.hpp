// procsync/detail/barrier_parts.hpp — the parts of basic_barrier that are not
// about phases: who is watched while waiting, and why a barrier broke.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "../error.hpp"
#include "process_identity.hpp"

namespace procsync::detail {

/// The first N parties to wait in a phase, by identity, so that a death
/// while waiting breaks the barrier (barrier.hpp says how it is noticed).
/// Guarded by the barrier's lock. Same bytes as the barrier's former fields:
/// a count, a reserved word, N identities.
template <std::size_t N>
struct watched_waiters {
  std::uint32_t count = 0;
  std::uint32_t reserved [[maybe_unused]] = 0;
  process_identity parties[N] = {};

  /// Records the caller; returns its slot, or -1 when all N are taken (not watched).
  std::int32_t watch_caller() noexcept {
    if (count >= N) return -1;
    parties[count] = current_process_identity();
    return static_cast<std::int32_t>(count++);
  }

  /// Whether every watched party still lives: one /proc read each.
  bool all_alive() const noexcept {
    for (std::uint32_t i = 0; i < count; ++i)
      if (!process_alive(parties[i])) return false;
    return true;
  }

  /// The slot `slot` checks: the one before it, the last for the first.
  /// Requires count >= 2.
  std::uint32_t neighbour_of(std::int32_t slot) const noexcept {
    return slot == 0 ? count - 1 : static_cast<std::uint32_t>(slot) - 1;
  }
};

/// Why a barrier last broke, kept in a 32-bit word of its shared layout.
enum class barrier_break : std::uint32_t {
  none = 0,
  aborted = 1,
  timeout = 2,
  party_died = 3,
  reset = 4,
  completion_threw = 5,
};

/// errc::barrier_broken, saying `when` and why.
[[noreturn, gnu::cold, gnu::noinline]] inline void throw_barrier_broken(const char* when, barrier_break reason) {
  const char* why = "";
  switch (reason) {
    case barrier_break::aborted: why = "it was aborted"; break;
    case barrier_break::timeout: why = "a wait timed out"; break;
    case barrier_break::party_died: why = "a party died"; break;
    case barrier_break::reset: why = "it was reset while parties waited"; break;
    case barrier_break::completion_threw: why = "the completion function threw"; break;
    default: why = "unknown reason"; break;
  }
  throw_error(errc::barrier_broken, std::string("procsync::barrier: ") + when + ": the barrier is broken (" + why +
                                        "); expected an unbroken barrier, call reset() to reuse it");
}

}  // namespace procsync::detail
