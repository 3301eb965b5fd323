// procsync/inspect.hpp — look at the locks in a named segment from outside.
//
// "Who holds this, and who is waiting for it?" A segment_inspector opens a
// named segment read-only and takes snapshots of every object in it (kind,
// name, holder, waiters, and per kind what matters: a semaphore's value and
// undo holders, an event's flag, a barrier's parties, a shared_mutex's
// readers, a queue's fill level, whether it is closed, who sleeps on either
// side and which slots a push or hand-off under way holds), and of a
// deadlock_registry in it (classes, recorded orders and who
// first took each, the wait-for graph now, its cycles, and the newest
// deadlock and order-violation reports). procsync-shm's `locks` and
// `deadlock` commands are a thin layer over it; to_dot() draws a registry.
//
//   procsync::segment_inspector in("orders");          // read-only
//   for (const auto& o : in.snapshot().objects)
//     if (o.holder) std::printf("%s held by %d\n", o.name.c_str(), o.holder->pid);
//
// Guarantees:
//  - Never writes: the segment is opened with O_RDONLY and mapped PROT_READ,
//    so the inspector physically cannot change it (no lock word, no purge of
//    a dead waiter's entry, no repair). It never takes a lock, never calls a
//    primitive's lock(), never waits on a futex.
//  - Never blocks on the segment: a segment being created is reported as
//    initializing; an object still being constructed as initializing.
//  - Snapshots are racy by nature: each field is one load, and fields of one
//    object may come from slightly different moments.
//  - Enumeration walks the segment's object index (Boost.Interprocess's, in
//    the segment) without the segment's guard lock. If a process is inside
//    the allocator (constructing or destroying an object) at that moment, the
//    walk is retried a few times; if it stays busy the snapshot says so
//    (allocator_busy) and lists no objects rather than read a tree that is
//    being rebalanced. Addresses found in the index are bounds-checked.
//  - Liveness and names come from /proc: a holder TID's process is the
//    "Tgid:" of /proc/<tid>/status, its name /proc/<pid>/comm.
//
// Kinds understood: procsync::mutex, recursive_mutex, checked_mutex,
// shared_mutex, counting_semaphore (undo_slots 1..64, 128, 256, 512, 1024 for
// undo holders), event, barrier, condition_variable, deadlock_registry,
// queue<T, N>, message_queue<M, N>, shared_value / shared_array (state "-").
// Other kinds (the user's data) are listed with their kind and size only.
//
// Queues are read without their T: the recorded kind spells N and the
// element's size and alignment (element_kind), and detail::queue_layout /
// detail::message_queue_layout turn those into offsets (the queues'
// constructors static_assert them). Everything read from a queue is checked
// before it is shown: the recorded size must be the one the kind implies (else
// the slots are not read), counts outside [0, capacity] are clamped or
// dropped with a note, and owners are resolved through /proc like any TID. A
// message_queue journals each change to its index: it is shown as of its last
// committed change.
#pragma once

#include "detail/config.hpp"  // first: one clear error below C++20
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "detail/inspect_dot.hpp"
#include "detail/inspect_entry.hpp"
#include "detail/inspect_objects.hpp"
#include "detail/inspect_registry.hpp"
#include "detail/inspect_types.hpp"
#include "detail/process_identity.hpp"
#include "detail/segment_header.hpp"
#include "detail/waiting_floor.hpp"
#include "error.hpp"
#include "segment.hpp"
// Not used by this header: kept because code that includes only inspect.hpp
// has always had these primitives with it.
#include "barrier.hpp"
#include "condition_variable.hpp"
#include "deadlock.hpp"
#include "event.hpp"
#include "message_queue.hpp"
#include "mutex.hpp"
#include "queue.hpp"
#include "recursive_mutex.hpp"
#include "semaphore.hpp"
#include "shared_mutex.hpp"

namespace procsync {

// The snapshots (thread_info, object_snapshot, segment_snapshot,
// deadlock_snapshot, ...) and describe_thread() are documented where they are
// declared, in detail/inspect_types.hpp; they are procsync:: names.

/// Opens a named segment read-only and takes snapshots of it. Movable, not
/// copyable; the mapping lives as long as the inspector.
class segment_inspector {
 public:
  /// Opens segment `name` (O_RDONLY). A segment still being created is
  /// accepted (its snapshot says ready == false). Throws errc::invalid_name,
  /// errc::segment_not_found, errc::permission_denied (the mode does not let
  /// the caller read it), or errc::corrupt_segment (not a regular file, or
  /// not a procsync segment).
  explicit segment_inspector(std::string_view name) : name_(name) {
    named_segment::validate_name(name_);
    const std::string path = detail::shm_object_path(name_);
    fd_ = ::shm_open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW, 0);
    if (fd_ < 0) {
      const int e = errno;
      if (e == ENOENT)
        detail::throw_error(errc::segment_not_found,
                            "procsync::segment_inspector: no segment " + detail::quoted(name_));
      if (e == EACCES || e == EPERM)
        detail::throw_error(errc::permission_denied,
                            "procsync::segment_inspector: not allowed to read segment " + detail::quoted(name_));
      detail::throw_errno(e, "procsync::segment_inspector: shm_open of " + detail::quoted(name_));
    }
    struct stat st {};
    if (::fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode)) {
      ::close(fd_);
      fd_ = -1;
      detail::throw_error(errc::corrupt_segment, "procsync::segment_inspector: " + detail::quoted(name_) +
                                                     " is not a regular file");
    }
    try {
      remap();
      if (mapped_ >= detail::segment_header_bytes) {
        const std::uint64_t magic = header().magic.load(std::memory_order_acquire);
        if (magic != 0 && magic != detail::segment_magic)
          detail::throw_error(errc::corrupt_segment, "procsync::segment_inspector: " + detail::quoted(name_) +
                                                         " is not a procsync segment");
      }
    } catch (...) {
      release();
      throw;
    }
  }

  segment_inspector(segment_inspector&& o) noexcept
      : name_(std::move(o.name_)), fd_(std::exchange(o.fd_, -1)), base_(std::exchange(o.base_, nullptr)),
        mapped_(std::exchange(o.mapped_, 0)) {}
  segment_inspector& operator=(segment_inspector&& o) noexcept {
    if (this != &o) {
      release();
      name_ = std::move(o.name_);
      fd_ = std::exchange(o.fd_, -1);
      base_ = std::exchange(o.base_, nullptr);
      mapped_ = std::exchange(o.mapped_, 0);
    }
    return *this;
  }
  segment_inspector(const segment_inspector&) = delete;
  segment_inspector& operator=(const segment_inspector&) = delete;
  /// Unmaps and closes; the segment is untouched.
  ~segment_inspector() { release(); }

  /// The segment's name.
  const std::string& name() const noexcept { return name_; }

  /// Every object of the segment now, in name order (see the header comment
  /// for what is read and the guarantees). Throws only for a failure of
  /// fstat/mmap (errno) or std::bad_alloc.
  segment_snapshot snapshot() const {
    segment_snapshot s;
    s.name = name_;
    remap();
    struct stat st {};
    if (::fstat(fd_, &st) == 0) s.bytes = static_cast<std::uint64_t>(st.st_size);
    if (mapped_ < detail::segment_header_bytes) return s;  // being created: not even sized yet
    const detail::segment_header& h = header();
    s.creator_pid = h.creator_pid.load(std::memory_order_acquire);
    if (s.creator_pid != 0)
      s.creator_alive = detail::process_alive(detail::process_identity{s.creator_pid, 0, h.creator_start_time});
    if (h.magic.load(std::memory_order_acquire) != detail::segment_magic) return s;
    if (h.format_version != detail::segment_format_version || h.header_bytes != detail::segment_header_bytes ||
        h.total_size > mapped_ || h.total_size < named_segment::minimum_size())
      detail::throw_error(errc::corrupt_segment, "procsync::segment_inspector: " + detail::quoted(name_) +
                                                     ": unknown segment format or size");
    s.ready = true;
    s.corrupt = h.corrupt.load(std::memory_order_relaxed) != 0;
    if (const std::uint32_t tid = h.guard.holder_tid(); tid != 0) s.guard_holder = describe_thread(tid);
    std::vector<entry> found;
    bool stable = false;
    detail::backoff poll;  // a writer of the index has no futex word to tell us it is done
    for (int attempt = 0; attempt < 20 && !stable; ++attempt) {
      if (attempt != 0) poll.pause();
      stable = detail::inspect::list_entries(header(), bytes(), found);
    }
    if (!stable) {
      s.allocator_busy = true;
      return s;
    }
    std::sort(found.begin(), found.end(), [](const entry& a, const entry& b) { return a.name < b.name; });
    for (const entry& e : found) s.objects.push_back(detail::inspect::read_object(e));
    detail::inspect::name_checked_classes(s.objects, found);
    return s;
  }

  /// The snapshot of object `object`, std::nullopt if there is none.
  std::optional<object_snapshot> object(std::string_view object) const {
    for (auto& o : snapshot().objects)
      if (o.name == object) return std::move(o);
    return std::nullopt;
  }

  /// The deadlock_registry named `object` (by default the first one in the
  /// segment, by name). Throws errc::object_not_found if there is none,
  /// errc::layout_mismatch for a registry of another layout version, and
  /// errc::corrupt_segment if the segment is not ready or its allocator busy.
  deadlock_snapshot deadlock(std::string_view object = {}) const {
    const segment_snapshot s = snapshot();
    if (!s.ready || s.allocator_busy)
      detail::throw_error(errc::corrupt_segment, "procsync::segment_inspector: segment " + detail::quoted(name_) +
                                                     (s.ready ? " is busy (a process is inside its allocator)"
                                                              : " is still being initialized"));
    std::vector<entry> found;
    (void)detail::inspect::list_entries(header(), bytes(), found);
    for (const entry& e : found) {
      if (!object.empty() && e.name != object) continue;
      if (!e.header.same_kind(deadlock_registry::kind_name)) {
        if (!object.empty())
          detail::throw_error(errc::wrong_object_kind, "procsync::segment_inspector: object " + detail::quoted(e.name) +
                                                           " is a " + e.header.kind_for_message() +
                                                           ", not a deadlock_registry");
        continue;
      }
      if (e.header.layout_version != deadlock_registry::layout_version ||
          e.header.value_size != sizeof(deadlock_registry))
        detail::throw_error(errc::layout_mismatch, "procsync::segment_inspector: deadlock_registry " +
                                                       detail::quoted(e.name) + " has layout version " +
                                                       std::to_string(e.header.layout_version) + ", expected " +
                                                       std::to_string(deadlock_registry::layout_version));
      return detail::inspect::read_registry(*std::launder(reinterpret_cast<const deadlock_registry*>(e.value)), name_,
                                            e.name);
    }
    detail::throw_error(errc::object_not_found,
                        "procsync::segment_inspector: no deadlock_registry" +
                            (object.empty() ? std::string() : " named " + detail::quoted(object)) + " in segment " +
                            detail::quoted(name_));
  }

 private:
  using entry = detail::inspect::entry;

  void release() noexcept {
    if (base_ != nullptr) ::munmap(base_, mapped_);
    if (fd_ >= 0) ::close(fd_);
    base_ = nullptr;
    mapped_ = 0;
    fd_ = -1;
  }

  /// Maps the file again if its size changed (a segment being created grows once).
  void remap() const {
    struct stat st {};
    if (::fstat(fd_, &st) != 0) detail::throw_errno(errno, "procsync::segment_inspector: fstat");
    const auto size = static_cast<std::size_t>(st.st_size);
    if (size == mapped_) return;
    if (base_ != nullptr) ::munmap(base_, mapped_);
    base_ = nullptr;
    mapped_ = 0;
    if (size == 0) return;
    void* p = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd_, 0);
    if (p == MAP_FAILED) detail::throw_errno(errno, "procsync::segment_inspector: mmap");
    base_ = p;
    mapped_ = size;
  }

  const detail::segment_header& header() const noexcept {
    return *std::launder(reinterpret_cast<const detail::segment_header*>(base_));
  }
  const char* bytes() const noexcept { return static_cast<const char*>(base_); }

  std::string name_;
  int fd_ = -1;
  mutable void* base_ = nullptr;
  mutable std::size_t mapped_ = 0;
};

/// The registry as a Graphviz digraph: the lock classes and the recorded
/// orders (each edge labelled with the process that first took it), the
/// refused order of the newest order-violation report (red, dashed), the
/// wait-for graph now (threads; cycles in red), and the cycle of the newest
/// deadlock report (red). Render with `dot -Tsvg`.
inline std::string to_dot(const deadlock_snapshot& d) { return detail::inspect::dot_of(d); }

}  // namespace procsync
