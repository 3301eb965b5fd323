// procsync/detail/inspect_types.hpp — the snapshots the inspector
// (procsync/inspect.hpp) returns, and describe_thread(), which resolves the
// TIDs they carry through /proc. They are public procsync:: names, documented
// here; users get them from inspect.hpp, which includes this header.
// Here, not in inspect.hpp: the per-kind readers in detail/ fill them without including a public header.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "inspect_read.hpp"
#include "robust_list.hpp"

namespace procsync {

/// A thread seen in a lock word or a wait entry, resolved through /proc.
struct thread_info {
  std::uint32_t tid = 0;  ///< kernel thread id (as stored in the segment)
  std::int32_t pid = 0;   ///< its process (the Tgid), 0 when the thread no longer exists
  std::string name;       ///< the process's name (/proc/<pid>/comm), "" when gone
  bool alive = false;     ///< whether the thread exists now

  friend bool operator==(const thread_info&, const thread_info&) = default;
};

/// A process holding permits of a semaphore in undo mode.
struct permit_holder {
  std::int32_t pid = 0;        ///< the holder process
  std::string name;            ///< its name (/proc/<pid>/comm), "" when gone
  bool alive = false;          ///< same pid and start time still running
  std::uint32_t permits = 0;   ///< permits it took and has not given back
};

/// A queue slot that a thread holds now: a push (queue) or send
/// (message_queue) copying its item in, or a pop_into() hand-off being
/// finished. The others pass it or wait for it; see queue.hpp.
struct slot_holder {
  std::uint32_t slot = 0;  ///< the slot's index, in [0, capacity)
  std::string phase;       ///< "writing" (queue: a push copies in), "handing_off" (queue: pop_into()),
                           ///< "reserved" (message_queue: a send copies in)
  thread_info thread;      ///< the owner (tid 0: not recorded; pid 0 and alive false: it is gone,
                           ///< or its TID now names a thread started at another time)
  bool skipped = false;    ///< queue: the others pass this slot (its owner was found stopped, or died in pop_into())

  friend bool operator==(const slot_holder&, const slot_holder&) = default;
};

/// The state of one object, as one word for the tool and for JSON.
enum class object_state {
  none,          ///< "-": not a lock (data, condition_variable, registry)
  free,          ///< a lock nobody holds
  held,          ///< a lock held (see holder)
  shared,        ///< a shared_mutex held by readers only (see readers)
  inconsistent,  ///< its holder died; the next owner has not called consistent() (holder: that owner, if any)
  poisoned,      ///< not recoverable: released without consistent() after an owner death
  available,     ///< a semaphore with permits left
  exhausted,     ///< a semaphore at 0
  set,           ///< an event whose flag is up
  clear,         ///< an event whose flag is down
  broken,        ///< a broken barrier
  waiting,       ///< a barrier with parties waiting in the current cycle
  idle,          ///< a barrier with nobody waiting
  initializing,  ///< the object is still being constructed
  unknown,       ///< a procsync kind whose layout version or size this inspector does not know
  empty,         ///< an open queue with no item queued
  nonempty,      ///< an open queue with items queued and room for more
  full,          ///< an open queue at its capacity (pushes and sends wait)
  closed,        ///< a closed queue (pushes and sends fail; what is queued can still be taken)
};

/// The word for `s` used by procsync-shm and its JSON ("free", "held", ...; "-" for none).
inline const char* to_string(object_state s) noexcept {
  switch (s) {
    case object_state::none: return "-";
    case object_state::free: return "free";
    case object_state::held: return "held";
    case object_state::shared: return "shared";
    case object_state::inconsistent: return "inconsistent";
    case object_state::poisoned: return "poisoned";
    case object_state::available: return "available";
    case object_state::exhausted: return "exhausted";
    case object_state::set: return "set";
    case object_state::clear: return "clear";
    case object_state::broken: return "broken";
    case object_state::waiting: return "waiting";
    case object_state::idle: return "idle";
    case object_state::initializing: return "initializing";
    case object_state::unknown: return "unknown";
    case object_state::empty: return "empty";
    case object_state::nonempty: return "nonempty";
    case object_state::full: return "full";
    case object_state::closed: return "closed";
  }
  return "unknown";
}

/// One object of a segment at one moment. Fields that do not apply to the
/// object's kind are left empty (std::nullopt, empty vectors).
struct object_snapshot {
  std::string name;              ///< the object's name in the segment
  std::string kind;              ///< its recorded kind ("procsync::mutex", "procsync::counting_semaphore<3>", ...)
  std::string short_kind;        ///< "mutex", "recursive_mutex", "checked_mutex", "shared_mutex", "semaphore",
                                 ///< "event", "barrier", "condition_variable", "deadlock_registry", "queue",
                                 ///< "message_queue", "shared_value", "shared_array", or "data" (any other kind)
  std::uint32_t layout_version = 0;  ///< recorded layout version
  std::uint64_t bytes = 0;           ///< sizeof the object
  object_state state = object_state::none;  ///< see object_state
  /// locks: the holding thread (shared_mutex: the writer; message_queue: of its
  /// index lock, held for a few hundred ns per call unless stopped there)
  std::optional<thread_info> holder;
  std::vector<thread_info> readers;   ///< shared_mutex: threads holding a share
  /// mutex kinds: the starved waiter the lock is reserved for (eventual
  /// fairness, see mutex.hpp; shared_mutex: a writer), if any. A reservation
  /// whose thread is gone or stopped costs the next waiter at most 50 ms of
  /// its wait, then that waiter drops it.
  std::optional<thread_info> reserved_for;
  /// Threads waiting: an exact count for semaphore, event, barrier,
  /// condition_variable and the queues (threads asleep or about to sleep; for a
  /// queue consumers_waiting + producers_waiting); for the mutex kinds the lock
  /// word only says "someone may sleep" (waiters_exact == false, waiters 0 or
  /// 1). std::nullopt where it does not apply or could not be read.
  std::optional<std::uint32_t> waiters;
  bool waiters_exact = false;          ///< see waiters
  std::string lock_class;              ///< checked_mutex: its class name (when a registry in the segment names it)
  std::optional<std::int64_t> value;   ///< semaphore: permits available
  std::optional<std::int64_t> max;     ///< semaphore: max()
  bool undo = false;                   ///< semaphore: constructed in undo mode
  std::uint32_t undo_slots = 0;        ///< semaphore: undo capacity (processes holding permits at once)
  std::vector<permit_holder> permit_holders;  ///< semaphore in undo mode: who holds how many
  std::optional<bool> flag;            ///< event: the flag
  std::string mode;                    ///< event: "manual" or "automatic"
  std::optional<std::uint32_t> parties;  ///< barrier: parties per cycle
  std::optional<std::uint32_t> arrived;  ///< barrier: parties waiting in this cycle
  std::optional<std::uint32_t> classes;  ///< deadlock_registry: lock classes defined
  std::optional<std::uint32_t> orders;   ///< deadlock_registry: lock orders recorded
  std::optional<std::uint32_t> blocked;  ///< deadlock_registry: threads in its wait-for table
  std::optional<std::uint64_t> reports;  ///< deadlock_registry: reports made so far
  /// queue: items queued now, the fill level, as queue::size() counts it (pushes
  /// under way included), in [0, capacity]; message_queue: messages queued as
  /// of its last committed change. std::nullopt when the words read make no
  /// sense (see note).
  std::optional<std::uint64_t> items;
  std::optional<std::uint64_t> capacity;           ///< queues: N (std::nullopt if the recorded kind is cut short)
  std::optional<std::uint64_t> max_message_bytes;  ///< message_queue: the longest message
  std::optional<bool> closed;                      ///< queues: close() was called
  std::optional<std::uint32_t> consumers_waiting;  ///< queues: threads asleep in pop/receive (the queue is empty)
  std::optional<std::uint32_t> producers_waiting;  ///< queues: threads asleep in push/send (the queue is full)
  std::vector<slot_holder> held_slots;             ///< queues: slots held now, by index (at most max_held_slots listed)
  std::string note;                      ///< why something could not be read, else ""

  /// held_slots lists at most this many (a note counts the others).
  static constexpr std::size_t max_held_slots = 64;
};

/// A whole segment at one moment.
struct segment_snapshot {
  std::string name;                 ///< the segment's name
  std::uint64_t bytes = 0;          ///< size of the file
  bool ready = false;               ///< its creator finished initializing it
  std::int32_t creator_pid = 0;     ///< 0 if not recorded yet
  bool creator_alive = false;       ///< the creator (pid and start time) still runs
  bool corrupt = false;             ///< a process died inside its allocator (named_segment refuses it)
  bool allocator_busy = false;      ///< a process was inside its allocator on every try: objects not listed
  std::optional<thread_info> guard_holder;  ///< who holds the segment's allocator guard now, if anyone
  std::vector<object_snapshot> objects;     ///< in name order
};

/// One lock class of a deadlock_registry.
struct lock_class_snapshot {
  std::uint32_t id = 0;    ///< its slot (lock_class::id)
  std::string name;        ///< its name
  std::int32_t rank = 0;   ///< 0: unranked
  bool nestable = false;   ///< defined nestable
};

/// A recorded order "from is taken before to", and who first took it.
struct lock_order_snapshot {
  std::uint32_t from = 0, to = 0;  ///< class ids
  std::string from_name, to_name;  ///< class names
  std::int32_t pid = 0;            ///< the process that first took this order
  std::uint32_t tid = 0;           ///< its thread
  std::string label;               ///< that process's label (install_deadlock_detector)
  bool alive = false;              ///< whether that process still runs (by pid: start time is not recorded)
};

/// An entry of the wait-for table: `waiter` waits for a lock held by `holder`.
struct wait_snapshot {
  thread_info waiter;     ///< the waiting thread
  std::string label;      ///< its process's label
  std::string lock;       ///< the lock's class name, "" for an unnamed lock
  std::string kind;       ///< "mutex", "recursive_mutex", ...
  thread_info holder;     ///< the holder seen in the lock word (tid 0: none seen)
  bool stale = false;     ///< the waiter's process is gone (a process purges it on its next look)
  bool in_cycle = false;  ///< part of a cycle of the wait-for graph now
};

/// One member of a report's cycle (see detail::deadlock::report_step).
struct report_step_snapshot {
  std::int32_t pid = 0;   ///< process
  std::uint32_t tid = 0;  ///< thread
  std::string label;      ///< its label
  std::string lock;       ///< deadlock: the lock it waits for; order violation: the class taken first
};

/// A deadlock or order-violation report kept in the registry's history.
struct report_snapshot {
  std::uint64_t number = 0;  ///< 1 for the registry's first report, 2 for the next, ...
  std::string type;          ///< "deadlock" or "order_violation"
  std::int64_t unix_ns = 0;  ///< when (wall clock, ns since the epoch)
  std::int32_t pid = 0;      ///< the reporter: the victim, or the violator
  std::uint32_t tid = 0;     ///< its thread
  std::string label;         ///< its label
  std::uint32_t cycle_length = 0;          ///< members of the cycle (0: not a cycle, e.g. a rank violation)
  std::vector<report_step_snapshot> steps;  ///< the first members of the cycle, in order
  std::string text;                        ///< the report as thrown or printed
};

/// A deadlock_registry at one moment.
struct deadlock_snapshot {
  std::string segment;                   ///< segment name
  std::string object;                    ///< the registry's object name
  std::chrono::nanoseconds timeout{0};   ///< its deadlock timeout
  std::string policy;                    ///< "throw_error", "report" or "abort_process"
  std::vector<lock_class_snapshot> classes;  ///< by id
  std::vector<lock_order_snapshot> orders;   ///< by from, then to
  std::vector<wait_snapshot> waits;          ///< the wait-for table now
  std::vector<std::vector<std::uint32_t>> cycles;  ///< cycles of the wait-for graph now (waiter TIDs)
  std::vector<report_snapshot> reports;      ///< the kept reports, oldest first
  std::uint64_t reports_total = 0;           ///< reports made so far (only the newest report_capacity are kept)
  std::uint32_t report_capacity = 0;         ///< deadlock_registry::report_history
};

/// What /proc says about thread `tid` now: its process (Tgid), that
/// process's name, and whether it exists. tid 0 gives an empty thread_info.
inline thread_info describe_thread(std::uint32_t tid) {
  thread_info t;
  t.tid = tid;
  if (tid == 0 || tid > detail::word_tid_mask) return t;
  const std::string status = detail::inspect::read_small_file("/proc/" + std::to_string(tid) + "/status");
  const std::size_t at = status.find("\nTgid:");
  if (at == std::string::npos) return t;
  t.pid = static_cast<std::int32_t>(std::strtol(status.c_str() + at + 6, nullptr, 10));
  // A zombie thread group has a status but no running thread.
  const std::size_t st = status.find("\nState:");
  t.alive = t.pid > 0 && !(st != std::string::npos && status.compare(st + 7, 3, "\tZ ") == 0);
  t.name = detail::inspect::comm_of(t.pid);
  return t;
}

namespace detail::inspect {

// The readers below live in detail::inspect, where a plain object_state
// would be the object header's (detail::object_state), not the snapshot's.
using procsync::object_state;

}  // namespace detail::inspect

}  // namespace procsync
