// procsync/deadlock.hpp — deadlock detection across processes.
//
// Three tools, all working across processes through one deadlock_registry in
// shared memory (make_anonymous before fork, or a named segment):
//
// 1. Lock-order validation (potential deadlocks). A checked_mutex belongs to a
//    lock class (a name defined in the registry). Acquiring class B while the
//    thread holds class A records the order A -> B in the registry's graph,
//    whichever process does it. A blocking acquisition that would close a
//    cycle in that graph (any length) is refused *before* it blocks, with
//    errc::lock_order_violation and a message naming every class on the cycle
//    and the process (pid, label) that first took each order — even when that
//    process has long exited. Validated lock chains are cached per thread by
//    hash, so the steady state is one hash and one local lookup: no shared
//    writes, no system call.
// 2. Actual deadlocks (wait-for graph). With a detector installed in a process
//    (install_deadlock_detector), every contended wait there on *any* procsync
//    mutex (plain mutex and recursive_mutex included) sleeps in slices; after
//    half the registry's deadlock timeout it publishes "thread T waits for a
//    lock held by thread H" and follows holder -> waiter links across
//    processes, again every 1/8 timeout. If it is on a cycle (seen on two
//    consecutive looks, so a deadlock is broken within the timeout plus
//    scheduling delay), exactly one member
//    — the thread with the highest TID — gets errc::deadlock_detected from its
//    lock call, with a PostgreSQL-style report; the others keep waiting and
//    proceed once the victim backs off. Entries of dead processes are purged.
// 3. Ranked locks. A class may carry a rank (> 0). Ranks must *descend*: while
//    holding a ranked lock of rank r, only ranked locks of rank < r may be
//    acquired (take the rank-100 lock first, then rank 50, then rank 10).
//    Violations are errc::lock_order_violation naming both ranks.
// Plus lock_all(m...): takes several locks without deadlock whatever order
// other processes use (lock one, try the rest, back off and rotate).
//
// Rules of lock-order validation (what is and is not an edge):
//  - lock() / lock_robust() validate and record. try_lock() and the timed
//    try_lock_for/until() never hang forever, so they are neither refused nor
//    recorded; a lock they take is still "held" for later acquisitions.
//  - Acquiring a class that the thread already holds is an error unless the
//    class was defined nestable (class_options::nestable): then same-class
//    nesting is allowed and records nothing (order inside a class is yours).
//  - Unlocking in any order is fine.
//  - Only processes/threads that installed a detector check anything;
//    checked_mutex works as a plain robust mutex elsewhere.
//
// Limits: see docs/deadlock.md. In short: 4096 classes, 65,536 order edges,
// 256 simultaneously blocked threads in the wait-for table, 64 checked locks
// held at once per thread; on overflow the registry warns once on stderr and
// keeps working (orders not recorded cannot be checked). The wait-for graph
// sees only threads in processes with a detector installed. Gate locks (a
// common outer lock that makes an inversion harmless) are reported like any
// other inversion, as Linux lockdep does.
#pragma once

#include "detail/config.hpp"  // first: one clear error below C++20
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sched.h>
#include <time.h>
#include <string>
#include <string_view>
#include <vector>

#include "detail/deadlock_graph.hpp"
#include "detail/process_identity.hpp"
#include "detail/robust_lock.hpp"
#include "error.hpp"
#include "mutex.hpp"

namespace procsync {

/// What a lock-order violation does.
enum class order_policy : std::uint32_t {
  throw_error,    ///< the acquisition throws errc::lock_order_violation (default)
  report,         ///< print the report on stderr once per lock chain, then acquire
  abort_process,  ///< print the report on stderr and std::abort()
};

/// A lock class: a small id valid in every process sharing the registry.
struct lock_class {
  std::uint32_t id = detail::deadlock::no_class;  ///< no_class: unchecked
  friend bool operator==(const lock_class&, const lock_class&) = default;
};

/// Options fixed when a class is first defined.
struct class_options {
  bool nestable = false;   ///< locks of this class may nest (held while taking another of it)
  std::int32_t rank = 0;   ///< 0: unranked; > 0: ranks must strictly descend while nested
};

/// The shared registry: lock classes, the order graph, the wait-for table.
/// About 3 MiB; fixed size, pointer-free, trivially destructible. Create it
/// once in shared memory (make_anonymous<deadlock_registry>() before fork, or
/// seg.construct<deadlock_registry>(...) in a named segment of >= 4 MiB), then
/// call install_deadlock_detector() in every process that should check.
class deadlock_registry {
 public:
  static constexpr const char* kind_name = "procsync::deadlock_registry";
  /// 2: the bounded report history (detail::deadlock::report_entry) was added.
  static constexpr std::uint32_t layout_version = 2;
  static constexpr std::uint32_t max_classes = detail::deadlock::max_classes;
  static constexpr std::uint32_t max_edges = detail::deadlock::max_edges;
  static constexpr std::uint32_t max_waiters = detail::deadlock::wait_slots;
  /// How many of the newest deadlock and order-violation reports are kept.
  static constexpr std::uint32_t report_history = detail::deadlock::report_slots;

  /// `deadlock_timeout` (>= 1 ms): an actual deadlock is broken within it (a
  /// waiter first looks after half of it, then every eighth; on a loaded
  /// machine add scheduling delay); `policy`: what an order violation does.
  explicit deadlock_registry(std::chrono::milliseconds deadlock_timeout = std::chrono::milliseconds(100),
                             order_policy policy = order_policy::throw_error) {
    if (deadlock_timeout < std::chrono::milliseconds(1))
      detail::throw_error(errc::invalid_argument, "procsync::deadlock_registry: deadlock timeout must be >= 1 ms, got " +
                                                      std::to_string(deadlock_timeout.count()) + " ms");
    g_.timeout_ns = std::chrono::nanoseconds(deadlock_timeout).count();
    g_.policy = static_cast<std::uint32_t>(policy);
  }
  deadlock_registry(const deadlock_registry&) = delete;
  deadlock_registry& operator=(const deadlock_registry&) = delete;

  /// The class named `name`, defining it on first use (from any process).
  /// Requires: 1..39 printable characters; the same options as its first
  /// definition (else errc::invalid_argument). When 4096 classes exist, warns
  /// once and returns an unchecked class (lock_class{}).
  lock_class define_class(std::string_view name, class_options options = {}) {
    namespace dd = detail::deadlock;
    if (name.empty() || name.size() >= dd::class_name_size ||
        std::any_of(name.begin(), name.end(), [](char c) { return c < 0x20 || c == 0x7f; }))
      detail::throw_error(errc::invalid_argument, "procsync::deadlock_registry: a lock class name must be 1.." +
                                                      std::to_string(dd::class_name_size - 1) +
                                                      " printable characters, got '" + std::string(name) + "'");
    if (options.rank < 0)
      detail::throw_error(errc::invalid_argument, "procsync::deadlock_registry: rank of class '" + std::string(name) +
                                                      "' must be >= 0, got " + std::to_string(options.rank));
    const std::uint32_t hash = dd::name_hash(name);
    std::uint32_t id = g_.find_class(name, hash);
    if (id == dd::no_class) {
      writer_guard guard(g_);
      id = g_.find_class(name, hash);
      if (id == dd::no_class) {
        if (g_.class_count.load(std::memory_order_relaxed) >= dd::max_classes) {
          warn_once(1, "procsync: deadlock registry: 4096 lock classes defined; further classes are unchecked");
          return lock_class{};
        }
        for (std::uint32_t i = 0;; ++i) {
          const std::uint32_t slot = (hash + i) & (dd::class_slots - 1);
          dd::class_entry& c = g_.classes[slot];
          if (c.published.load(std::memory_order_relaxed) != 0) continue;
          // The slot is unreachable until `published`: a writer dying here leaves nothing visible.
          c.hash = hash;
          c.rank = options.rank;
          c.nestable = options.nestable ? 1 : 0;
          c.first_out.store(0, std::memory_order_relaxed);
          dd::copy_label(c.name, sizeof c.name, name);
          // Release: pairs with find_class's acquire.
          c.published.store(1, std::memory_order_release);
          g_.class_count.store(g_.class_count.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
          id = slot;
          break;
        }
      }
    }
    const dd::class_entry& c = g_.classes[id];
    if (c.rank != options.rank || (c.nestable != 0) != options.nestable)
      detail::throw_error(errc::invalid_argument,
                          "procsync::deadlock_registry: class '" + std::string(name) + "' was defined with rank " +
                              std::to_string(c.rank) + (c.nestable ? ", nestable" : ", not nestable") +
                              "; redefined with rank " + std::to_string(options.rank) +
                              (options.nestable ? ", nestable" : ", not nestable"));
    return lock_class{id};
  }

  /// The name of `c` ("" for an unchecked class).
  std::string_view class_name(lock_class c) const noexcept {
    return c.id < detail::deadlock::class_slots ? std::string_view(g_.classes[c.id].name) : std::string_view();
  }
  std::int32_t class_rank(lock_class c) const noexcept {
    return c.id < detail::deadlock::class_slots ? g_.classes[c.id].rank : 0;
  }

  /// Whether some process acquired `to` while holding `from` (a recorded order).
  bool has_order(lock_class from, lock_class to) const noexcept {
    return from.id < detail::deadlock::class_slots && to.id < detail::deadlock::class_slots &&
           g_.has_edge(from.id, to.id);
  }

  std::uint32_t class_count() const noexcept { return g_.class_count.load(std::memory_order_relaxed); }
  /// Order edges recorded (slots used; a writer killed mid-insert may waste one).
  std::uint32_t order_count() const noexcept {
    return std::min(g_.edge_count.load(std::memory_order_relaxed), max_edges);
  }
  /// Deadlock and order-violation reports made so far (the newest
  /// report_history of them are kept; see procsync/inspect.hpp to read them).
  std::uint64_t report_count() const noexcept { return g_.report_count.load(std::memory_order_relaxed); }
  std::chrono::nanoseconds deadlock_timeout() const noexcept { return std::chrono::nanoseconds(g_.timeout_ns); }
  order_policy policy() const noexcept { return static_cast<order_policy>(g_.policy); }

  /// Threads blocked now in a wait the detector tracks (past the first look);
  /// entries of processes that died while waiting are purged on the way.
  std::uint32_t blocked_threads() noexcept {
    std::uint32_t n = 0;
    for (std::uint32_t i = 0; i < detail::deadlock::wait_slots; ++i)
      if (g_.waits[i].waiter.load(std::memory_order_relaxed) != 0 && !g_.purge_if_dead(i)) ++n;
    return n;
  }

  /// Walks every class's order list and checks it is well formed (each edge
  /// in its source's list, no list longer than the edges in use, the edge set
  /// agreeing). For tests and diagnostics; "" when sound, else what is wrong.
  std::string check_integrity() {
    namespace dd = detail::deadlock;
    writer_guard guard(g_);
    const std::uint32_t used = std::min(g_.edge_count.load(std::memory_order_relaxed), dd::max_edges);
    for (std::uint32_t c = 0; c < dd::class_slots; ++c) {
      std::uint32_t steps = 0;
      for (std::uint32_t e = g_.classes[c].first_out.load(std::memory_order_acquire); e != 0;
           e = g_.edges[e - 1].next.load(std::memory_order_acquire)) {
        if (e > used) return "class " + std::to_string(c) + " links edge " + std::to_string(e - 1) + " beyond the " +
                             std::to_string(used) + " in use";
        if (g_.edges[e - 1].from != c) return "edge " + std::to_string(e - 1) + " is in the list of another class";
        if (!g_.has_edge(c, g_.edges[e - 1].to)) {
          // An insert killed between link and set: repair by adding the key.
          const std::uint32_t key = dd::graph::edge_key(c, g_.edges[e - 1].to);
          for (std::uint32_t i = 0; i < dd::edge_set_slots; ++i) {
            auto& slot = g_.edge_set[(key * 2654435761u + i) & (dd::edge_set_slots - 1)];
            if (slot.load(std::memory_order_relaxed) == 0) {
              slot.store(key, std::memory_order_release);
              break;
            }
          }
        }
        if (++steps > used) return "the list of class " + std::to_string(c) + " loops";
      }
    }
    return {};
  }

 private:
  friend struct detail_deadlock_access;

  // Takes the graph's writer lock; after a writer's death nothing needs repair
  // (see deadlock_graph.hpp), so the lock is simply marked consistent.
  struct writer_guard {
    detail::deadlock::graph& g;
    explicit writer_guard(detail::deadlock::graph& graph) : g(graph) {
      if (g.writer.lock_robust() == lock_status::owner_died) g.writer.consistent();
    }
    ~writer_guard() { g.writer.unlock(); }
    writer_guard(const writer_guard&) = delete;
    writer_guard& operator=(const writer_guard&) = delete;
  };

  void warn_once(std::uint32_t bit, const char* what) noexcept {
    // Relaxed: a flag, nothing is published with it.
    if ((g_.warned.fetch_or(bit, std::memory_order_relaxed) & bit) == 0) std::fprintf(stderr, "%s\n", what);
  }

  detail::deadlock::graph g_;
};

static_assert(std::is_standard_layout_v<deadlock_registry>);
static_assert(std::is_trivially_destructible_v<deadlock_registry>);

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

struct detail_deadlock_access {
  static detail::deadlock::graph& graph_of(deadlock_registry& r) noexcept { return r.g_; }
  /// Read-only view for inspectors (procsync/inspect.hpp): loads only.
  static const detail::deadlock::graph& graph_of(const deadlock_registry& r) noexcept { return r.g_; }
  static void warn_once(deadlock_registry& r, std::uint32_t bit, const char* what) noexcept { r.warn_once(bit, what); }
  using writer_guard = deadlock_registry::writer_guard;
};

namespace detail::deadlock {

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

}  // namespace detail::deadlock

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

/// A robust mutex (procsync::mutex's contract and 40 bytes) that belongs to a
/// lock class and takes part in lock-order validation in processes that
/// installed a detector. Place it in shared memory like procsync::mutex.
class checked_mutex {
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

  /// Timed: like try_lock (no order check or record), waiting up to `timeout`.
  template <class Rep, class Period>
  [[nodiscard]] bool try_lock_for(const std::chrono::duration<Rep, Period>& timeout) {
    return try_lock_until(detail::deadline_after(timeout));
  }
  template <class Clock, class Duration>
  [[nodiscard]] bool try_lock_until(const std::chrono::time_point<Clock, Duration>& deadline) {
    const timespec ts = detail::to_timespec(detail::to_steady(deadline));
    const std::uint64_t chain = detail::deadlock::before_lock(cls(), false);
    const lock_status s = core_.acquire(kind, &ts);
    if (holds(s)) detail::deadlock::push_held(this, cls(), chain);
    return holds(s);
  }

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
  /// The raw robust lock word (holder TID | owner-died bit | waiters bit, see
  /// detail/robust_list.hpp): one racy load, for inspectors (procsync/inspect.hpp).
  [[nodiscard]] std::uint32_t lock_word() const noexcept { return core_.word().load(std::memory_order_relaxed); }
  [[nodiscard]] lock_class get_class() const noexcept { return lock_class{cls()}; }

 private:
  static constexpr const char* kind = "mutex";
  std::uint32_t cls() const noexcept { return core_.lock_class() - 1; }
  detail::robust_lock core_;
};

static_assert(sizeof(checked_mutex) == 40, "a checked mutex costs no space over procsync::mutex");
static_assert(sizeof(mutex) == 40);

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
