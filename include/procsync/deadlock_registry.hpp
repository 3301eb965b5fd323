// procsync/deadlock_registry.hpp — the shared registry behind deadlock
// detection: lock classes (names, ranks, nestability), the lock-order graph and
// the wait-for table, in one fixed-size, pointer-free object of about 3 MiB
// placed in shared memory. What the detector does with it is described in
// deadlock.hpp; the tables' crash consistency in detail/deadlock_graph.hpp.
#pragma once

#include "detail/config.hpp"  // first: one clear error below C++20

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <type_traits>

#include "detail/deadlock_graph.hpp"
#include "error.hpp"
#include "lock_status.hpp"

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

struct detail_deadlock_access {
  static detail::deadlock::graph& graph_of(deadlock_registry& r) noexcept { return r.g_; }
  /// Read-only view for inspectors (procsync/inspect.hpp): loads only.
  static const detail::deadlock::graph& graph_of(const deadlock_registry& r) noexcept { return r.g_; }
  static void warn_once(deadlock_registry& r, std::uint32_t bit, const char* what) noexcept { r.warn_once(bit, what); }
  using writer_guard = deadlock_registry::writer_guard;
};

}  // namespace procsync
