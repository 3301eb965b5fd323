// procsync/detail/deadlock_wait_for.hpp — actual-deadlock detection, the
// detector's second half (deadlock.hpp describes it): the waiting floor's
// contended-wait hook publishes "thread T waits for a lock held by thread H"
// in the registry's wait-for table and follows holder -> waiter links across
// processes; on a cycle seen twice, the member with the highest TID is the
// victim.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "../deadlock_registry.hpp"
#include "../error.hpp"
#include "deadlock_lock_order.hpp"
#include "process_identity.hpp"
#include "robust_lock.hpp"
#include "thread_identity.hpp"
#include "waiting_floor.hpp"

namespace procsync::detail::deadlock {

// ---- wait-for graph (the robust_lock slow-path hook) -------------------------------

inline std::int64_t slice_ns(std::uint32_t slices) noexcept {
  deadlock_registry* r = process().registry.load(std::memory_order_relaxed);
  const std::int64_t timeout = r ? r->deadlock_timeout().count() : 100'000'000;
  // First look after half the timeout, then every eighth: a cycle must be seen
  // on two consecutive looks, so it is broken about 5/8 of the timeout after it
  // forms, well within the timeout (plus scheduling delay on a loaded machine).
  if (slices == 0) return std::max<std::int64_t>(timeout / 2, 500'000);
  return std::max<std::int64_t>(timeout / 8, 500'000);
}

struct wait_view {
  std::uint32_t slot, seq, waiter, holder;
  std::int32_t pid;
  char label[label_size];
  char lock[class_name_size];
  char kind[24];
};

/// A consistent copy of entry `slot`, false if free or being rewritten.
inline bool read_wait(const graph& g, std::uint32_t slot, wait_view& v) noexcept {
  const wait_entry& e = g.waits[slot];
  // Acquire: the fields below were written before the even `seq` we read.
  const std::uint32_t s1 = e.seq.load(std::memory_order_acquire);
  if (s1 & 1) return false;
  v.slot = slot;
  v.seq = s1;
  v.waiter = e.waiter.load(std::memory_order_relaxed);
  v.holder = e.holder.load(std::memory_order_relaxed);
  v.pid = e.pid;
  std::memcpy(v.label, e.label, sizeof v.label);
  std::memcpy(v.lock, e.lock, sizeof v.lock);
  std::memcpy(v.kind, e.kind, sizeof v.kind);
  v.label[label_size - 1] = v.lock[class_name_size - 1] = v.kind[23] = '\0';
  // Acquire fence: the copies above are ordered before the re-check of `seq`.
  std::atomic_thread_fence(std::memory_order_acquire);
  return v.waiter != 0 && e.seq.load(std::memory_order_relaxed) == s1;
}

inline void begin_write(wait_entry& e) noexcept {
  e.seq.store(e.seq.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  // Release fence: the odd seq is visible before any field changes.
  std::atomic_thread_fence(std::memory_order_release);
}
inline void end_write(wait_entry& e) noexcept {
  // Release: the fields are complete before the even seq.
  e.seq.store(e.seq.load(std::memory_order_relaxed) + 1, std::memory_order_release);
}

inline void on_done(std::int32_t slot) noexcept {
  deadlock_registry* r = process().registry.load(std::memory_order_relaxed);
  if (r == nullptr || slot < 0) return;
  wait_entry& e = detail_deadlock_access::graph_of(*r).waits[slot];
  begin_write(e);
  e.holder.store(0, std::memory_order_relaxed);
  e.last_cycle = 0;
  e.waiter.store(0, std::memory_order_relaxed);
  end_write(e);
}

inline std::string lock_str(const wait_view& v) {
  return std::string(v.kind) + (v.lock[0] ? std::string(" '") + v.lock + "'" : std::string(" (unnamed)"));
}

inline void on_slice(robust_lock& lock, const char* kind, std::uint32_t seen, std::int32_t& slot) {
  deadlock_registry* r = process().registry.load(std::memory_order_relaxed);
  if (r == nullptr) return;
  graph& g = detail_deadlock_access::graph_of(*r);
  const std::uint32_t holder = seen == word_not_recoverable ? 0 : (seen & word_tid_mask);
  const std::uint32_t me = current_tid();
  if (slot < 0) {
    for (std::uint32_t i = 0; i < wait_slots && slot < 0; ++i) {
      std::uint32_t free = 0;
      // Acquire: we take over a slot its last user released.
      if (g.waits[i].waiter.load(std::memory_order_relaxed) == 0 &&
          g.waits[i].waiter.compare_exchange_strong(free, me, std::memory_order_acquire))
        slot = static_cast<std::int32_t>(i);
    }
    if (slot < 0) {
      detail_deadlock_access::warn_once(*r, 4, "procsync: deadlock registry: 256 threads blocked at once; further "
                                               "waiters are not checked for deadlocks");
      return;
    }
    wait_entry& e = g.waits[slot];
    begin_write(e);
    e.pid = static_cast<std::int32_t>(::getpid());
    e.start_time = current_process_identity().start_time;
    std::memcpy(e.label, process().label, label_size);
    const std::uint32_t cls = lock.lock_class() - 1;  // class + 1 for a checked_mutex; 0 elsewhere
    copy_label(e.lock, sizeof e.lock, cls < class_slots ? std::string_view(g.classes[cls].name) : std::string_view());
    copy_label(e.kind, sizeof e.kind, kind);
    e.holder.store(holder, std::memory_order_relaxed);
    e.last_cycle = 0;
    end_write(e);
  } else if (g.waits[slot].holder.load(std::memory_order_relaxed) != holder) {
    wait_entry& e = g.waits[slot];
    begin_write(e);
    e.holder.store(holder, std::memory_order_relaxed);
    end_write(e);
  }
  wait_entry& mine = g.waits[slot];
  if (holder == 0) return;

  // Follow holder -> the holder's own wait entry -> its holder ... back to us?
  std::vector<wait_view> cycle;
  wait_view self{};
  if (!read_wait(g, static_cast<std::uint32_t>(slot), self)) return;
  cycle.push_back(self);
  std::uint32_t next = holder;
  while (next != me) {
    if (cycle.size() > wait_slots) return;
    for (const wait_view& v : cycle)
      if (v.waiter == next) return;  // a cycle we are not on: its members will act
    bool found = false;
    for (std::uint32_t i = 0; i < wait_slots && !found; ++i) {
      wait_view v{};
      if (g.waits[i].waiter.load(std::memory_order_relaxed) != next || !read_wait(g, i, v) || v.waiter != next)
        continue;
      switch (detail::state_of(process_identity{v.pid, 0, g.waits[i].start_time})) {
        case detail::process_state::dead: g.purge_if_dead(i); return;
        // A stopped process is not blocked on a lock: its entry may be stale
        // (what it waited for may have been released since). No verdict.
        case detail::process_state::stopped: return;
        case detail::process_state::alive: break;
      }
      cycle.push_back(v);
      found = true;
    }
    if (!found) return;  // the holder is running (or not detectable): no deadlock
    next = cycle.back().holder;
    if (next == 0) return;
  }
  // The edge that closes the cycle says someone waits for a lock *we* hold. We
  // can check that much: a thread that holds no robust lock at all is looking
  // at a stale entry (its writer was woken and has not run since), not a cycle.
  if (const thread_identity& self_id = current_thread(); self_id.head->list == &self_id.head->list) return;
  // On a cycle. Act only when two consecutive looks saw the same cycle, with
  // every member running (not stopped) and the closing edge checked above: an
  // entry whose writer is slow to wake can still look current on both looks,
  // so a victim is chosen only among threads that are really blocked.
  std::uint64_t signature = 0x9e3779b97f4a7c15ull;
  for (const wait_view& v : cycle) signature = chain_mix(signature ^ v.seq, v.waiter ^ (v.slot << 20));
  const bool confirmed = mine.last_cycle == signature;
  mine.last_cycle = signature;
  if (!confirmed) return;
  std::uint32_t victim = 0;
  for (const wait_view& v : cycle) victim = std::max(victim, v.waiter);
  if (victim != me) return;
  std::string report = "procsync: deadlock detected: ";
  for (std::size_t i = 0; i < cycle.size(); ++i) {
    const wait_view& v = cycle[i];
    const wait_view& h = cycle[(i + 1) % cycle.size()];
    if (i) report += "; ";
    report += label_of(v.label, v.pid, v.waiter) + " waits for " + lock_str(v) + " held by " +
              label_of(h.label, h.pid, h.waiter);
  }
  report += ". Victim: " + label_of(self.label, self.pid, self.waiter) + ", whose lock attempt fails";
  std::vector<report_step> steps;
  for (const wait_view& v : cycle) {
    report_step st{};
    st.pid = v.pid;
    st.tid = v.waiter;
    std::memcpy(st.label, v.label, sizeof st.label);
    copy_label(st.lock, sizeof st.lock, lock_str(v));
    steps.push_back(st);
  }
  g.add_report(report_deadlock, self.pid, self.waiter, std::string_view(self.label, ::strnlen(self.label, label_size)),
               steps.data(), static_cast<std::uint32_t>(steps.size()), static_cast<std::uint32_t>(cycle.size()), report,
               unix_now_ns());
  throw_error(errc::deadlock_detected, report);
}

inline const contended_wait_hook& hook() noexcept {
  static constexpr contended_wait_hook h{&slice_ns, &on_slice, &on_done};
  return h;
}

}  // namespace procsync::detail::deadlock
