// procsync/detail/deadlock_lock_order.hpp — lock-order validation, the first
// of the deadlock detector's two halves (deadlock.hpp describes both): the
// process's installed registry, each thread's held checked locks and its
// cache of validated lock chains, and the slow path that checks nesting and
// ranks and records orders in the registry's graph, refusing one that would
// close a cycle. It sits above the registry it serves, as deadlock_graph.hpp
// sits below it.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "../deadlock_registry.hpp"
#include "../error.hpp"
#include "thread_identity.hpp"

namespace procsync::detail::deadlock {

// ---- process-local state ------------------------------------------------------

struct process_state {
  std::atomic<deadlock_registry*> registry{nullptr};
  std::atomic<std::uint64_t> seed{0x243f6a8885a308d3ull};  // changes per install: stale chain caches miss
  char label[label_size] = {};
};

inline process_state& process() noexcept {
  static process_state state;
  return state;
}

inline constexpr std::uint32_t max_held = 64;
inline constexpr std::uint32_t cache_slots = 2048;

struct held_lock {
  const void* lock;
  std::uint32_t cls;
  std::uint64_t chain;  // hash of the classes held up to and including this one
};

struct thread_state {
  std::uint32_t depth = 0;
  held_lock held[max_held];
  std::uint64_t cache[cache_slots];  // validated chains; direct-mapped
};

inline thread_state& this_thread() noexcept {
  static thread_local thread_state state{};
  return state;
}

inline void forget_held_after_fork() noexcept { this_thread().depth = 0; }

inline std::string label_of(const char* label, std::int32_t pid, std::uint32_t tid) {
  std::string s = "process " + std::to_string(pid);
  if (tid != 0 && static_cast<std::int32_t>(tid) != pid) s += " thread " + std::to_string(tid);
  if (label[0] != '\0') s += std::string(" (") + std::string(label, ::strnlen(label, label_size)) + ")";
  return s;
}

inline std::string my_label() {
  return label_of(process().label, static_cast<std::int32_t>(::getpid()), current_tid());
}

// ---- lock-order validation ---------------------------------------------------

// Wall-clock time of a report, for people reading it (never for a wait).
inline std::int64_t unix_now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

/// Reacts to a violation according to the registry's policy, after keeping it
/// in the registry's report history (with `steps`, the cycle, if any).
/// Returns normally only for order_policy::report.
inline void order_violation(deadlock_registry& r, const std::string& report,
                            const std::vector<report_step>& steps = {}) {
  detail_deadlock_access::graph_of(r).add_report(
      report_order_violation, static_cast<std::int32_t>(::getpid()), current_tid(), process().label, steps.data(),
      static_cast<std::uint32_t>(steps.size()), static_cast<std::uint32_t>(steps.size()), report, unix_now_ns());
  switch (r.policy()) {
    case order_policy::report:
      std::fprintf(stderr, "%s\n", report.c_str());
      return;
    case order_policy::abort_process:
      std::fprintf(stderr, "%s\n", report.c_str());
      std::abort();
    case order_policy::throw_error:
      break;
  }
  throw_error(errc::lock_order_violation, report);
}

inline std::string class_str(const graph& g, std::uint32_t c) {
  std::string s = std::string("'") + g.classes[c].name + "'";
  if (g.classes[c].rank != 0) s += " (rank " + std::to_string(g.classes[c].rank) + ")";
  return s;
}

/// The slow path: the chain is not in this thread's cache. Checks nesting and
/// ranks, then records every missing order held -> cls unless one closes a cycle.
/// Returns whether the chain may be cached.
inline bool validate_slow(deadlock_registry& r, thread_state& t, std::uint32_t cls) {
  graph& g = detail_deadlock_access::graph_of(r);
  const class_entry& want = g.classes[cls];
  std::vector<std::uint32_t> missing;
  for (std::uint32_t i = 0; i < t.depth; ++i) {
    const std::uint32_t h = t.held[i].cls;
    if (h == cls) {
      if (want.nestable) continue;
      order_violation(r, "procsync: lock order violation: " + my_label() + " acquires a second lock of class " +
                             class_str(g, cls) +
                             " while holding one; define the class nestable if nesting inside it is ordered");
      return true;
    }
    const class_entry& held = g.classes[h];
    if (held.rank != 0 && want.rank != 0 && want.rank >= held.rank) {
      order_violation(r, "procsync: lock order violation: " + my_label() + " acquires " + class_str(g, cls) +
                             " while holding " + class_str(g, h) + ": ranks must strictly descend (rank " +
                             std::to_string(want.rank) + " is not below rank " + std::to_string(held.rank) + ")");
      return true;
    }
    if (!g.has_edge(h, cls) && std::find(missing.begin(), missing.end(), h) == missing.end()) missing.push_back(h);
  }
  if (missing.empty()) return true;  // every order already validated by someone: no shared write

  detail_deadlock_access::writer_guard guard(g);
  // Depth-first search from `cls`: reaching a class in `missing` means adding
  // that order would close a cycle. parent[c] = edge index + 1 that reached c.
  std::vector<std::uint32_t> parent(class_slots, 0);
  std::vector<char> seen(class_slots, 0);
  std::vector<std::uint32_t> stack{cls};
  seen[cls] = 1;
  std::uint32_t hit = no_class;
  while (!stack.empty() && hit == no_class) {
    const std::uint32_t c = stack.back();
    stack.pop_back();
    // Acquire: a linked edge's fields were written before its link.
    for (std::uint32_t e = g.classes[c].first_out.load(std::memory_order_acquire); e != 0;
         e = g.edges[e - 1].next.load(std::memory_order_acquire)) {
      const std::uint32_t to = g.edges[e - 1].to;
      if (to >= class_slots || seen[to]) continue;
      seen[to] = 1;
      parent[to] = e;
      if (std::find(missing.begin(), missing.end(), to) != missing.end()) {
        hit = to;
        break;
      }
      stack.push_back(to);
    }
  }
  if (hit != no_class) {
    // The cycle: hit -> cls (this acquisition), then cls -> ... -> hit (recorded).
    std::vector<std::uint32_t> path;  // edge indices + 1, from cls to hit
    for (std::uint32_t c = hit; c != cls; c = g.edges[parent[c] - 1].from) path.push_back(parent[c]);
    std::reverse(path.begin(), path.end());
    std::string report = "procsync: lock order violation: " + my_label() + " acquires " + class_str(g, cls) +
                         " while holding " + class_str(g, hit) + ", closing a cycle of " +
                         std::to_string(path.size() + 1) + " lock classes:\n  " + class_str(g, hit) + " -> " +
                         class_str(g, cls) + ": this acquisition, by " + my_label();
    std::vector<report_step> steps;  // hit -> cls (refused), then the recorded cls -> ... -> hit
    const auto step = [&](std::int32_t pid, std::uint32_t tid, const char* label, std::uint32_t cls_from) {
      report_step st{};
      st.pid = pid;
      st.tid = tid;
      copy_label(st.label, sizeof st.label, std::string_view(label, ::strnlen(label, label_size)));
      copy_label(st.lock, sizeof st.lock, g.classes[cls_from].name);
      steps.push_back(st);
    };
    step(static_cast<std::int32_t>(::getpid()), current_tid(), process().label, hit);
    for (std::uint32_t e : path) {
      const edge_entry& edge = g.edges[e - 1];
      report += "\n  " + class_str(g, edge.from) + " -> " + class_str(g, edge.to) + ": first taken by " +
                label_of(edge.label, edge.pid, edge.tid);
      step(edge.pid, edge.tid, edge.label, edge.from);
    }
    order_violation(r, report, steps);
    return true;  // report policy: once per chain
  }
  const std::int32_t pid = static_cast<std::int32_t>(::getpid());
  for (std::uint32_t h : missing) {
    if (!g.add_edge(h, cls, pid, current_tid(), process().label)) {
      detail_deadlock_access::warn_once(r, 2,
                                        "procsync: deadlock registry: 65536 lock orders recorded; new orders are "
                                        "no longer checked (actual deadlocks still are)");
      return true;
    }
  }
  return true;
}

/// Before a blocking acquisition of class `cls`: refuses it if it would close
/// a cycle. Returns the chain hash to push once the lock is held (0: untracked).
inline std::uint64_t before_lock(std::uint32_t cls, bool validate) {
  deadlock_registry* r = process().registry.load(std::memory_order_relaxed);
  if (r == nullptr || cls >= class_slots) return 0;
  thread_state& t = this_thread();
  if (t.depth >= max_held)
    throw_error(errc::invalid_argument, "procsync: more than " + std::to_string(max_held) +
                                            " checked locks held at once by " + my_label());
  const std::uint64_t base = t.depth ? t.held[t.depth - 1].chain : process().seed.load(std::memory_order_relaxed);
  const std::uint64_t chain = chain_mix(base, cls);
  if (!validate || t.depth == 0) return chain;
  std::uint64_t& cached = t.cache[chain & (cache_slots - 1)];
  if (cached == chain) [[likely]]
    return chain;
  if (validate_slow(*r, t, cls)) cached = chain;
  return chain;
}

inline void push_held(const void* lock, std::uint32_t cls, std::uint64_t chain) noexcept {
  if (chain == 0) return;
  thread_state& t = this_thread();
  if (t.depth < max_held) t.held[t.depth++] = held_lock{lock, cls, chain};
}

/// Forgets `lock` (any position: unlock order is free); re-hashes the chains above it.
inline void pop_held(const void* lock) noexcept {
  thread_state& t = this_thread();
  for (std::uint32_t i = t.depth; i-- > 0;) {
    if (t.held[i].lock != lock) continue;
    for (std::uint32_t j = i; j + 1 < t.depth; ++j) {
      t.held[j] = t.held[j + 1];
      const std::uint64_t base = j ? t.held[j - 1].chain : process().seed.load(std::memory_order_relaxed);
      t.held[j].chain = chain_mix(base, t.held[j].cls);
    }
    --t.depth;
    return;
  }
}

}  // namespace procsync::detail::deadlock
