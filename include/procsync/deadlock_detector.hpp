// procsync/deadlock_detector.hpp — deadlock detection on and off in a
// process: install_deadlock_detector(registry) makes this process's checked
// locks validate their order against the registry, and every contended wait
// on a procsync mutex here take part in wait-for deadlock detection
// (deadlock.hpp describes both).
#pragma once

#include "detail/config.hpp"  // first: one clear error below C++20
#include <pthread.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <string_view>

#include "deadlock_registry.hpp"
#include "detail/deadlock_lock_order.hpp"
#include "detail/deadlock_wait_for.hpp"
#include "detail/waiting_floor.hpp"

namespace procsync {

/// Installs `registry` as this process's detector: checked locks validate
/// their order against it, and contended waits on every procsync mutex in this
/// process take part in wait-for deadlock detection. `process_label` (<= 15
/// characters) names this process in reports; default: its /proc comm name.
/// A fork child inherits the installation (and the label: set a new one with
/// set_deadlock_label). Call it before threads start locking.
inline void install_deadlock_detector(deadlock_registry& registry, std::string_view process_label = {});

/// Removes the detector; locks already held stay held but are no longer tracked.
inline void uninstall_deadlock_detector() noexcept;

/// The registry installed in this process, or nullptr.
inline deadlock_registry* installed_deadlock_detector() noexcept;

/// Sets the name this process has in reports (truncated to 15 characters).
inline void set_deadlock_label(std::string_view label) noexcept;

inline void set_deadlock_label(std::string_view label) noexcept {
  detail::deadlock::copy_label(detail::deadlock::process().label, detail::deadlock::label_size, label);
}

inline void install_deadlock_detector(deadlock_registry& registry, std::string_view process_label) {
  namespace dd = detail::deadlock;
  // Registered once per process, without a guarded static (a fork while
  // another thread is inside a guarded initialisation would hang the child).
  static constinit std::atomic<bool> fork_hook_registered{false};
  if (!fork_hook_registered.exchange(true, std::memory_order_relaxed))
    (void)::pthread_atfork(nullptr, nullptr, dd::forget_held_after_fork);
  if (!process_label.empty()) {
    set_deadlock_label(process_label);
  } else {
    char comm[64] = {};
    if (std::FILE* f = std::fopen("/proc/self/comm", "r")) {
      if (std::fgets(comm, sizeof comm, f) == nullptr) comm[0] = '\0';
      std::fclose(f);
    }
    comm[std::strcspn(comm, "\n")] = '\0';
    set_deadlock_label(comm);
  }
  dd::process_state& p = dd::process();
  // Relaxed: a new seed only has to differ; it invalidates chains cached for another registry.
  p.seed.store(dd::chain_mix(p.seed.load(std::memory_order_relaxed), 0x5eed), std::memory_order_relaxed);
  // Release: a thread that sees the registry (through the hook's acquire) sees it constructed.
  p.registry.store(&registry, std::memory_order_release);
  detail::installed_contended_hook.store(&dd::hook(), std::memory_order_release);
}

inline void uninstall_deadlock_detector() noexcept {
  detail::installed_contended_hook.store(nullptr, std::memory_order_release);
  detail::deadlock::process().registry.store(nullptr, std::memory_order_release);
  detail::deadlock::this_thread().depth = 0;
}

inline deadlock_registry* installed_deadlock_detector() noexcept {
  return detail::deadlock::process().registry.load(std::memory_order_acquire);
}

}  // namespace procsync
