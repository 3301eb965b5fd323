// procsync/detail/deadlock_graph.hpp — the shared-memory tables behind
// procsync::deadlock_registry: lock classes, the lock-order graph, and the
// wait-for table. Fixed size, pointer-free (links are indices), trivially
// destructible, so it works at any mapping address in every process.
//
// Crash consistency (a process may be SIGKILLed at any instruction):
//  - Writers (class and edge inserts) are serialized by a robust
//    internal_mutex (procsync::mutex's bytes and contract). Every insert
//    writes a slot nobody can reach yet and publishes it with one release store, so a writer that dies leaves either
//    nothing visible or a complete entry; owner_died needs no repair.
//  - An edge slot is reserved (edge_count bumped) *before* it is written, so a
//    slot that was linked can never be handed out again; a death after the
//    reservation only wastes one slot.
//  - The edge hash set is filled after the edge is linked; a death in between
//    leaves an edge that a later writer adds again (a harmless duplicate).
//  - Wait-for entries carry the waiter's (pid, start time): entries of dead
//    processes are purged by whoever meets them.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "internal_mutex.hpp"
#include "process_identity.hpp"

namespace procsync::detail::deadlock {

inline constexpr std::uint32_t max_classes = 4096;     // classes that can be defined
inline constexpr std::uint32_t class_slots = 8192;     // open-addressing table (load <= 1/2)
inline constexpr std::uint32_t max_edges = 65536;      // order-graph edges
inline constexpr std::uint32_t edge_set_slots = 131072;
inline constexpr std::uint32_t wait_slots = 256;       // threads blocked at once
inline constexpr std::size_t class_name_size = 40;     // including the NUL
inline constexpr std::size_t label_size = 16;          // process label, like /proc/PID/comm
inline constexpr std::uint32_t no_class = 0xffffffffu;
inline constexpr std::uint32_t report_slots = 16;      // bounded history of reports (a ring)
inline constexpr std::uint32_t report_max_steps = 8;   // cycle members kept per report
inline constexpr std::size_t report_text_size = 1024;  // report text kept (cut beyond, NUL included)

static_assert(class_slots <= (1u << 13), "edge keys pack two class ids in 13 bits each");

/// FNV-1a: tiny, and good enough to spread class names over the table.
inline std::uint32_t name_hash(std::string_view name) noexcept {
  std::uint32_t h = 2166136261u;
  for (unsigned char c : name) h = (h ^ c) * 16777619u;
  return h;
}

/// splitmix64's finalizer: mixes a lock chain with one more class.
inline std::uint64_t chain_mix(std::uint64_t chain, std::uint32_t cls) noexcept {
  std::uint64_t z = chain ^ ((static_cast<std::uint64_t>(cls) + 1) * 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return (z ^ (z >> 31)) | 1;  // never 0: 0 marks an empty cache slot
}

inline void copy_label(char* to, std::size_t size, std::string_view from) noexcept {
  const std::size_t n = from.size() < size - 1 ? from.size() : size - 1;
  if (n != 0) std::memcpy(to, from.data(), n);  // data() may be null when empty
  std::memset(to + n, 0, size - n);
}

struct class_entry {
  std::atomic<std::uint32_t> published{0};  // 1 once every other field is final
  std::uint32_t hash = 0;
  std::int32_t rank = 0;                    // 0: unranked
  std::uint32_t nestable = 0;
  std::atomic<std::uint32_t> first_out{0};  // index + 1 of the newest out-edge, 0: none
  std::uint32_t reserved = 0;
  char name[class_name_size] = {};
};
static_assert(sizeof(class_entry) == 64);

struct edge_entry {
  std::uint16_t from = 0, to = 0;
  std::atomic<std::uint32_t> next{0};  // index + 1 of the next out-edge of `from`
  std::int32_t pid = 0;                // the process that first took this order
  std::uint32_t tid = 0;
  char label[label_size] = {};
};
static_assert(sizeof(edge_entry) == 32);

/// "Thread `waiter` of process `pid` waits for a lock held by thread `holder`."
/// Written only by the waiter, under a sequence lock (odd `seq`: being
/// rewritten); readers retry or skip.
struct wait_entry {
  std::atomic<std::uint32_t> seq{0};
  std::atomic<std::uint32_t> waiter{0};  // TID, 0: free slot
  std::atomic<std::uint32_t> holder{0};  // TID seen in the lock word at the last slice
  std::int32_t pid = 0;
  std::uint64_t start_time = 0;          // with pid: survives pid reuse
  std::uint64_t last_cycle = 0;          // the waiter's own note: cycle seen at its last check
  char label[label_size] = {};
  char lock[class_name_size] = {};       // class name, or "" for an unnamed lock
  char kind[24] = {};                    // "mutex", "recursive_mutex", ...
};

/// One member of the cycle a report describes. A deadlock: thread `tid` of
/// process `pid` waits for `lock`, held by the next step's thread. An order
/// violation: class `lock` is taken before the next step's class, an order
/// first taken by (pid, tid, label) — for the refused order, the violator.
struct report_step {
  std::int32_t pid = 0;
  std::uint32_t tid = 0;
  char label[label_size] = {};
  char lock[class_name_size] = {};
};
static_assert(sizeof(report_step) == 64);

inline constexpr std::uint32_t report_deadlock = 1;
inline constexpr std::uint32_t report_order_violation = 2;

/// A report kept in the registry's history, under a sequence lock like
/// wait_entry (odd `seq`: being written; a writer that dies mid-write leaves
/// it odd and readers skip it until the slot is reused).
struct report_entry {
  std::atomic<std::uint32_t> seq{0};
  std::uint32_t type = 0;             // report_deadlock, report_order_violation; 0: never written
  std::uint64_t number = 0;           // 1 for the registry's first report, 2 for the next, ...
  std::int64_t unix_ns = 0;           // wall-clock time when it was made (for readers)
  std::int32_t pid = 0;               // the reporter (the victim, the violator)
  std::uint32_t tid = 0;
  char label[label_size] = {};
  std::uint32_t step_count = 0;       // <= report_max_steps
  std::uint32_t cycle_length = 0;     // members of the whole cycle (may exceed step_count)
  report_step steps[report_max_steps];
  char text[report_text_size] = {};
};

/// The whole shared state. Construct once (zeroed tables), place in shared memory.
struct graph {
  std::uint32_t magic = 0x70646c6bu;  // "pdlk"
  std::uint32_t policy = 0;
  std::int64_t timeout_ns = 100'000'000;
  std::atomic<std::uint32_t> class_count{0};
  std::atomic<std::uint32_t> edge_count{0};
  std::atomic<std::uint32_t> warned{0};  // bit 0: classes full, 1: edges full, 2: wait table full
  std::uint32_t reserved = 0;
  internal_mutex writer;                 // serializes class and edge inserts
  class_entry classes[class_slots];
  edge_entry edges[max_edges];
  std::atomic<std::uint32_t> edge_set[edge_set_slots];  // (from << 13 | to) + 1
  wait_entry waits[wait_slots];
  std::atomic<std::uint64_t> report_count{0};  // reports ever made; the newest report_slots are kept
  report_entry reports[report_slots];

  graph() noexcept {
    // Value-initialized, so a reused (not freshly zeroed) buffer is clean too.
    for (auto& e : edge_set) e.store(0, std::memory_order_relaxed);
  }

  /// The published class named `name`, or no_class. Lock-free.
  std::uint32_t find_class(std::string_view name, std::uint32_t hash) const noexcept {
    for (std::uint32_t i = 0; i < class_slots; ++i) {
      const std::uint32_t slot = (hash + i) & (class_slots - 1);
      const class_entry& c = classes[slot];
      // Acquire: the name and options were written before `published`.
      if (c.published.load(std::memory_order_acquire) == 0) return no_class;
      if (c.hash == hash && name == std::string_view(c.name)) return slot;
    }
    return no_class;
  }

  static std::uint32_t edge_key(std::uint32_t from, std::uint32_t to) noexcept { return (from << 13 | to) + 1; }

  /// Whether the order from -> to was recorded. Lock-free.
  bool has_edge(std::uint32_t from, std::uint32_t to) const noexcept {
    const std::uint32_t key = edge_key(from, to);
    for (std::uint32_t i = 0; i < edge_set_slots; ++i) {
      // Relaxed: only existence is read; the order graph itself is walked under `writer`.
      const std::uint32_t seen = edge_set[(key * 2654435761u + i) & (edge_set_slots - 1)].load(std::memory_order_relaxed);
      if (seen == key) return true;
      if (seen == 0) return false;
    }
    return false;
  }

  /// Frees wait entry `slot` if the process that wrote it has died (a waiter
  /// SIGKILLed mid-wait never cleans up itself). Returns whether it was freed.
  bool purge_if_dead(std::uint32_t slot) noexcept {
    wait_entry& e = waits[slot];
    const std::uint32_t tid = e.waiter.load(std::memory_order_relaxed);
    std::uint32_t s = e.seq.load(std::memory_order_acquire);
    if (tid == 0) return false;
    if (s & 1) {
      // A write in progress: pid/start_time may be half-written, so judge the
      // writer by its thread id. Only a writer killed mid-write leaves seq odd
      // with its thread gone; a live one finishes and we look again later.
      if (process_alive(identity_of(static_cast<std::int32_t>(tid)))) return false;
    } else if (process_alive(process_identity{e.pid, 0, e.start_time})) {
      return false;
    }
    // Claim the rewrite with a CAS to a new odd seq, so two purgers (or a live
    // reuser) do not interleave.
    const std::uint32_t claimed = s + ((s & 1) ? 2 : 1);
    if (!e.seq.compare_exchange_strong(s, claimed, std::memory_order_acquire)) return false;
    if (e.waiter.load(std::memory_order_relaxed) == tid) {
      e.holder.store(0, std::memory_order_relaxed);
      e.waiter.store(0, std::memory_order_relaxed);
    }
    // Release: the cleared entry is complete before the even seq.
    e.seq.store(claimed + 1, std::memory_order_release);
    return true;
  }

  /// Appends a report to the history ring (overwriting the oldest). Never
  /// blocks: if another writer is rewriting the same slot right now (the ring
  /// wrapped around during one write), this report is counted but not kept.
  void add_report(std::uint32_t type, std::int32_t pid, std::uint32_t tid, std::string_view label,
                  const report_step* steps, std::uint32_t step_count, std::uint32_t cycle_length,
                  std::string_view text, std::int64_t unix_ns) noexcept {
    // Relaxed: the number only picks a slot; the entry is published by its seq.
    const std::uint64_t number = report_count.fetch_add(1, std::memory_order_relaxed) + 1;
    report_entry& e = reports[(number - 1) % report_slots];
    std::uint32_t s = e.seq.load(std::memory_order_relaxed);
    // Acquire: we take over the slot after its previous writer's release.
    if ((s & 1) != 0 || !e.seq.compare_exchange_strong(s, s + 1, std::memory_order_acquire)) return;
    // Release fence: the odd seq is visible before any field changes.
    std::atomic_thread_fence(std::memory_order_release);
    e.type = type;
    e.number = number;
    e.unix_ns = unix_ns;
    e.pid = pid;
    e.tid = tid;
    copy_label(e.label, sizeof e.label, label);
    const std::uint32_t n = step_count < report_max_steps ? step_count : report_max_steps;
    for (std::uint32_t i = 0; i < report_max_steps; ++i) e.steps[i] = i < n ? steps[i] : report_step{};
    e.step_count = n;
    e.cycle_length = cycle_length;
    copy_label(e.text, sizeof e.text, text);
    // Release: the fields are complete before the even seq.
    e.seq.store(s + 2, std::memory_order_release);
  }

  /// A consistent copy of history slot `slot`; false if never written or being rewritten.
  bool read_report(std::uint32_t slot, report_entry& out) const noexcept {
    const report_entry& e = reports[slot];
    // Acquire: the fields were written before the even seq we read.
    const std::uint32_t s1 = e.seq.load(std::memory_order_acquire);
    if ((s1 & 1) != 0 || s1 == 0) return false;
    out.type = e.type;
    out.number = e.number;
    out.unix_ns = e.unix_ns;
    out.pid = e.pid;
    out.tid = e.tid;
    std::memcpy(out.label, e.label, sizeof out.label);
    out.step_count = e.step_count < report_max_steps ? e.step_count : report_max_steps;
    out.cycle_length = e.cycle_length;
    for (std::uint32_t i = 0; i < report_max_steps; ++i) out.steps[i] = e.steps[i];
    std::memcpy(out.text, e.text, sizeof out.text);
    // Acquire fence: the copies above are ordered before the re-check of seq.
    std::atomic_thread_fence(std::memory_order_acquire);
    if (e.seq.load(std::memory_order_relaxed) != s1) return false;
    out.label[label_size - 1] = out.text[report_text_size - 1] = '\0';
    for (auto& st : out.steps) st.label[label_size - 1] = st.lock[class_name_size - 1] = '\0';
    return true;
  }

  /// Records from -> to. Requires: `writer` held. False when the table is full.
  bool add_edge(std::uint32_t from, std::uint32_t to, std::int32_t pid, std::uint32_t tid,
                std::string_view label) noexcept {
    const std::uint32_t index = edge_count.load(std::memory_order_relaxed);
    if (index >= max_edges) return false;
    // Reserve first: a slot that might have been linked is never reused.
    edge_count.store(index + 1, std::memory_order_relaxed);
    edge_entry& e = edges[index];
    e.from = static_cast<std::uint16_t>(from);
    e.to = static_cast<std::uint16_t>(to);
    e.pid = pid;
    e.tid = tid;
    copy_label(e.label, sizeof e.label, label);
    e.next.store(classes[from].first_out.load(std::memory_order_relaxed), std::memory_order_relaxed);
    // Release: the entry is complete before it becomes reachable.
    classes[from].first_out.store(index + 1, std::memory_order_release);
    const std::uint32_t key = edge_key(from, to);
    for (std::uint32_t i = 0; i < edge_set_slots; ++i) {
      auto& slot = edge_set[(key * 2654435761u + i) & (edge_set_slots - 1)];
      const std::uint32_t seen = slot.load(std::memory_order_relaxed);
      if (seen == key) break;
      if (seen == 0) {
        // Release: pairs with nothing essential (existence only); kept for clarity of publication.
        slot.store(key, std::memory_order_release);
        break;
      }
    }
    return true;
  }
};

}  // namespace procsync::detail::deadlock
