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
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <new>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "barrier.hpp"
#include "condition_variable.hpp"
#include "deadlock.hpp"
#include "detail/inspect_dot.hpp"
#include "detail/inspect_read.hpp"
#include "detail/inspect_types.hpp"
#include "detail/object_header.hpp"
#include "detail/process_identity.hpp"
#include "detail/queue_common.hpp"
#include "detail/segment_header.hpp"
#include "detail/waiting_floor.hpp"
#include "error.hpp"
#include "event.hpp"
#include "message_queue.hpp"
#include "mutex.hpp"
#include "queue.hpp"
#include "recursive_mutex.hpp"
#include "segment.hpp"
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
        detail::throw_error(errc::segment_not_found, "procsync::segment_inspector: no segment " + detail::quoted(name_));
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
      stable = list_entries(found);
    }
    if (!stable) {
      s.allocator_busy = true;
      return s;
    }
    std::sort(found.begin(), found.end(), [](const entry& a, const entry& b) { return a.name < b.name; });
    for (const entry& e : found) s.objects.push_back(read_object(e));
    name_checked_classes(s.objects, found);
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
    (void)list_entries(found);
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
      return read_registry(*std::launder(reinterpret_cast<const deadlock_registry*>(e.value)), e.name);
    }
    detail::throw_error(errc::object_not_found,
                        "procsync::segment_inspector: no deadlock_registry" +
                            (object.empty() ? std::string() : " named " + detail::quoted(object)) + " in segment " +
                            detail::quoted(name_));
  }

 private:
  struct entry {
    std::string name;
    detail::object_header header{};
    const char* value = nullptr;  // the object, in the read-only mapping; null if not readable
  };

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

  /// Walks the object index once. False if the allocator was (or became) busy meanwhile.
  bool list_entries(std::vector<entry>& out) const {
    out.clear();
    const detail::segment_header& h = header();
    const auto busy = [&] { return h.manager_busy.load(std::memory_order_acquire) != 0; };
    if (busy()) return false;
    const std::size_t buffer_size = static_cast<std::size_t>(h.total_size) - detail::segment_header_bytes;
    const char* buffer = bytes() + detail::segment_header_bytes;
    // Boost only reads through a const manager opened on existing memory;
    // the mapping is PROT_READ, so any write would fault rather than land.
    detail::segment_manager_buffer manager(boost::interprocess::open_only, const_cast<char*>(buffer), buffer_size);
    const auto& index = *manager.get_segment_manager();
    const std::size_t limit = buffer_size / 64;
    std::size_t steps = 0;
    for (auto it = index.named_begin(); it != index.named_end(); ++it) {
      if (++steps > limit) return false;  // a loop: the tree changed under us
      const char* value = static_cast<const char*>(it->value());
      const char* name = it->name();
      const std::size_t name_length = it->name_length();
      if (value < buffer || value + sizeof(detail::object_header) > buffer + buffer_size || name < buffer ||
          name + name_length > buffer + buffer_size || name_length == 0)
        return false;
      entry e;
      e.name.assign(name, name_length);
      std::memcpy(&e.header, value, sizeof e.header);
      if (e.header.magic == detail::object_magic && e.header.value_offset >= sizeof(detail::object_header) &&
          value + e.header.value_offset + e.header.value_size <= buffer + buffer_size)
        e.value = value + e.header.value_offset;
      out.push_back(std::move(e));
    }
    return !busy();
  }

  static void lock_state(std::uint32_t word, object_snapshot& o) {
    if (word == detail::word_not_recoverable) {
      o.state = object_state::poisoned;
    } else {
      const std::uint32_t tid = word & detail::word_tid_mask;
      if (tid != 0) o.holder = describe_thread(tid);
      o.state = (word & detail::word_owner_died) != 0 ? object_state::inconsistent
                : tid != 0                           ? object_state::held
                                                     : object_state::free;
    }
    o.waiters = (word != detail::word_not_recoverable && (word & detail::word_waiters) != 0) ? 1u : 0u;
    o.waiters_exact = false;
  }

  template <class T>
  static const T* as(const entry& e, object_snapshot& o) {
    if (e.header.layout_version != detail::layout_version_of<T>() || e.header.value_size != sizeof(T) ||
        e.header.value_align != alignof(T) || reinterpret_cast<std::uintptr_t>(e.value) % alignof(T) != 0) {
      o.state = object_state::unknown;
      o.note = "layout version " + std::to_string(e.header.layout_version) + " (" +
               std::to_string(e.header.value_size) + " bytes) not known to this inspector (version " +
               std::to_string(detail::layout_version_of<T>()) + ", " + std::to_string(sizeof(T)) + " bytes)";
      return nullptr;
    }
    return std::launder(reinterpret_cast<const T*>(e.value));
  }

  template <std::size_t Slots>
  static void read_semaphore(const entry& e, object_snapshot& o) {
    // The layout of counting_semaphore<Max, Slots> does not depend on Max.
    using sem = counting_semaphore<detail::semaphore_value_max, Slots>;
    const sem* s = as<sem>(e, o);
    if (s == nullptr) return;
    o.value = s->value();
    o.state = *o.value > 0 ? object_state::available : object_state::exhausted;
    o.waiters = s->sleepers();
    o.waiters_exact = true;
    o.undo = s->undo_enabled();
    o.undo_slots = static_cast<std::uint32_t>(Slots);
    if constexpr (Slots > 0) {
      for (std::size_t i = 0; i < Slots && o.undo; ++i) {
        const auto [who, held] = s->undo_holder(i);
        if (held == 0 || who.pid == 0) continue;
        o.permit_holders.push_back(
            permit_holder{who.pid, detail::inspect::comm_of(who.pid), detail::process_alive(who), held});
      }
    }
  }

  template <std::size_t... I>
  static bool read_undo_semaphore(std::size_t slots, const entry& e, object_snapshot& o, std::index_sequence<I...>) {
    return ((slots == I + 1 ? (read_semaphore<I + 1>(e, o), true) : false) || ...);
  }

  /// Who owns a queue slot: its owner token's TID through /proc, unless that
  /// TID now names a thread started at another time (then: gone).
  static thread_info describe_owner(detail::owner_token token) {
    thread_info t;
    t.tid = token >> detail::owner_tag_bits;
    if (t.tid == 0 || detail::owner_state(token) == detail::process_state::dead) return t;
    return describe_thread(t.tid);
  }

  static void add_note(object_snapshot& o, const std::string& text) {
    if (!o.note.empty()) o.note += "; ";
    o.note += text;
  }

  /// A sleeper count, if it can be one (a corrupt word is dropped with a note).
  static std::optional<std::uint32_t> sleeper_count(const char* wait_word, const char* side, object_snapshot& o) {
    const auto n = detail::inspect::load_word<std::uint32_t>(wait_word + offsetof(detail::wait_word, sleepers));
    // No more threads than TIDs can exist (PID_MAX_LIMIT, 2^22).
    if (n <= (1u << 22)) return n;
    add_note(o, std::string(side) + " sleeper count unreadable (" + std::to_string(n) + ")");
    return std::nullopt;
  }

  /// What every queue shows: the state word from fill level and closed flag, the waiters total.
  static void finish_queue(object_snapshot& o) {
    if (o.closed.value_or(false))
      o.state = object_state::closed;
    else if (!o.items)
      o.state = object_state::unknown;
    else if (*o.items == 0)
      o.state = object_state::empty;
    else if (o.capacity && *o.items >= *o.capacity)
      o.state = object_state::full;
    else
      o.state = object_state::nonempty;
    if (o.consumers_waiting && o.producers_waiting) {
      o.waiters = *o.consumers_waiting + *o.producers_waiting;
      o.waiters_exact = true;
    }
  }

  /// queue<T, N>, known by its kind "procsync::queue<ELEMENT,N>" only.
  static void read_queue(const entry& e, object_snapshot& o) {
    using L = detail::queue_layout;
    namespace di = detail::inspect;
    o.short_kind = "queue";
    const auto value = reinterpret_cast<std::uintptr_t>(e.value);
    if (e.header.layout_version != L::layout_version || e.header.value_size < L::slots_offset(1, 1) ||
        e.header.value_align < 64 || value % 64 != 0) {
      o.state = object_state::unknown;
      o.note = "layout version " + std::to_string(e.header.layout_version) + " (" +
               std::to_string(e.header.value_size) + " bytes, aligned " + std::to_string(e.header.value_align) +
               ") not known to this inspector (version " + std::to_string(L::layout_version) + ")";
      return;
    }
    // The control words sit at the same offsets for every T and N.
    const std::string_view args = di::template_arguments(e.header.kind_prefix(), "procsync::queue");
    const std::size_t comma = args.rfind(',');
    std::optional<std::uint64_t> capacity;
    std::optional<di::element_shape> shape;
    if (comma != std::string_view::npos && e.header.kind_length <= detail::object_kind_capacity) {
      capacity = di::whole_number(args.substr(comma + 1), std::uint64_t{1} << 30);
      if (capacity == 0u) capacity.reset();
      shape = di::shape_of_element(args.substr(0, comma));
    }
    o.capacity = capacity;
    // The slots are read only where the recorded size is exactly the one the kind implies.
    bool slots_known = false;
    if (!capacity) {
      add_note(o, "capacity not readable from the kind (cut short in the header?): slots not read");
    } else if (!shape) {
      add_note(o, "element size not readable from the kind: slots not read");
    } else if (*capacity > e.header.value_size / L::slot_stride(shape->size, shape->align) ||
               L::object_size(shape->size, shape->align, *capacity) != e.header.value_size ||
               L::object_align(shape->size, shape->align) != e.header.value_align) {
      add_note(o, "recorded size " + std::to_string(e.header.value_size) + " is not a " + e.header.kind_for_message() +
                      "'s: slots not read");
    } else {
      slots_known = true;
    }
    const char* q = e.value;
    // deq first: both only grow, so in a sound queue the later enq is not below it.
    const auto deq = di::load_word<std::uint64_t>(q + L::deq_offset, std::memory_order_acquire);
    const auto enq = di::load_word<std::uint64_t>(q + L::enq_offset, std::memory_order_acquire);
    if (enq < deq) {
      add_note(o, "position counters out of order (enq " + std::to_string(enq) + " < deq " + std::to_string(deq) +
                      "): fill level unknown");
    } else if (capacity) {
      o.items = L::fill(enq, deq, static_cast<std::size_t>(*capacity));
    } else if (enq - deq <= e.header.value_size / 16) {  // a slot takes 16 bytes at least
      o.items = enq - deq;
    } else {
      add_note(o, "fill level unknown: enq - deq = " + std::to_string(enq - deq) + " is more than fits");
    }
    o.closed = di::load_word<std::uint32_t>(q + L::closed_offset, std::memory_order_acquire) != 0;
    o.consumers_waiting = sleeper_count(q + L::items_offset, "consumer", o);
    o.producers_waiting = sleeper_count(q + L::space_offset, "producer", o);
    if (slots_known) {
      const std::size_t stride = L::slot_stride(shape->size, shape->align);
      const char* slots = q + L::slots_offset(shape->size, shape->align);
      std::size_t held = 0;
      for (std::size_t i = 0; i < *capacity; ++i) {
        const auto w = di::load_word<std::uint64_t>(slots + i * stride, std::memory_order_acquire);
        const std::uint64_t phase = L::phase_of(w);
        if (phase != L::writing_phase && phase != L::into_phase) continue;  // EMPTY and FULL have no owner
        if (++held > object_snapshot::max_held_slots) continue;
        o.held_slots.push_back(slot_holder{static_cast<std::uint32_t>(i),
                                           phase == L::writing_phase ? "writing" : "handing_off",
                                           describe_owner(L::owner_of(w)), (w & L::skip_bit) != 0});
      }
      if (held > object_snapshot::max_held_slots)
        add_note(o, std::to_string(held - object_snapshot::max_held_slots) + " more held slots not listed");
    }
    finish_queue(o);
  }

  /// message_queue<M, N>, known by its kind "procsync::message_queue<M,N>" only.
  static void read_message_queue(const entry& e, object_snapshot& o) {
    using L = detail::message_queue_layout;
    namespace di = detail::inspect;
    o.short_kind = "message_queue";
    const std::string_view args = di::template_arguments(e.header.kind_prefix(), "procsync::message_queue");
    const std::size_t comma = args.find(',');
    std::optional<std::uint64_t> max_bytes, capacity;
    if (comma != std::string_view::npos) {
      max_bytes = di::whole_number(args.substr(0, comma), 0xffffffffu);
      capacity = di::whole_number(args.substr(comma + 1), std::uint64_t{1} << 24);
    }
    if (!max_bytes || !capacity || *capacity == 0 || e.header.layout_version != L::layout_version ||
        e.header.value_size != L::object_size(*max_bytes, *capacity) || e.header.value_align != L::object_align ||
        reinterpret_cast<std::uintptr_t>(e.value) % L::object_align != 0) {
      o.state = object_state::unknown;
      o.note = "layout version " + std::to_string(e.header.layout_version) + " (" +
               std::to_string(e.header.value_size) + " bytes) not known to this inspector for this kind (version " +
               std::to_string(L::layout_version) + ")";
      return;
    }
    const auto n = static_cast<std::size_t>(*capacity);
    o.capacity = capacity;
    o.max_message_bytes = max_bytes;
    const char* q = e.value;
    // The index lock: who holds it now (a few hundred ns per call, unless stopped there).
    const std::uint32_t word = std::launder(reinterpret_cast<const mutex*>(q + L::lock_offset))->lock_word();
    if (word != detail::word_not_recoverable && (word & detail::word_tid_mask) != 0)
      o.holder = describe_thread(word & detail::word_tid_mask);
    const bool holder_died = word != detail::word_not_recoverable && (word & detail::word_owner_died) != 0;
    // Every change to the index is journaled (each word's old value saved
    // before it is written; the commit empties the journal). The index is
    // shown as of the last commit: a dead holder's half-made change is rolled
    // back by the next holder, a live one's is not made until it commits.
    std::vector<std::pair<std::uint32_t, std::uint32_t>> before;  // offset, value at the last commit
    const auto journaled = di::load_word<std::uint32_t>(q + L::journal_count_offset);
    if (journaled > L::journal_capacity(n)) {
      add_note(o, "journal unreadable (" + std::to_string(journaled) + " entries): counts as they stand");
    } else {
      for (std::uint32_t i = 0; i < journaled; ++i) {
        const char* j = q + L::journal_offset + i * L::journal_entry_bytes;
        const auto offset = di::load_word<std::uint32_t>(j);
        const auto width = di::load_word<std::uint32_t>(j + 4);
        const auto old = di::load_word<std::uint64_t>(j + 8);
        // The first entry for a word holds its committed value; the inspector reads only 32-bit ones.
        if (width != 4 || std::any_of(before.begin(), before.end(), [&](const auto& b) { return b.first == offset; }))
          continue;
        before.emplace_back(offset, static_cast<std::uint32_t>(old));
      }
      if (journaled != 0)
        add_note(o, holder_died ? "the index lock's holder died mid-change: shown as of the last commit, which its "
                                  "next holder restores"
                                : "a change is under way: shown as of the last commit");
    }
    if (holder_died && journaled == 0) add_note(o, "the index lock's holder died (between changes: nothing to undo)");
    const auto committed = [&](std::size_t offset) {
      for (const auto& [at, value] : before)
        if (at == offset) return value;
      return di::load_word<std::uint32_t>(q + offset);
    };
    // One word each: each is whole, two may be from different moments.
    const std::uint32_t queued = committed(L::queued_offset);
    if (queued <= n)
      o.items = queued;
    else
      add_note(o, "message count unreadable (" + std::to_string(queued) + ")");
    o.closed = di::load_word<std::uint32_t>(q + L::closed_offset(n), std::memory_order_acquire) != 0;
    o.consumers_waiting = sleeper_count(q + L::items_offset(n), "receiver", o);
    o.producers_waiting = sleeper_count(q + L::space_offset(n), "sender", o);
    std::size_t held = 0, unreadable = 0;
    for (std::size_t s = 0; s < n; ++s) {
      const std::size_t meta = L::meta_offset(n) + s * L::meta_bytes;
      const std::uint32_t state = committed(meta + L::meta_state_offset);
      if (state > L::queued_state) ++unreadable;
      if (state != L::reserved_state) continue;
      if (++held > object_snapshot::max_held_slots) continue;
      o.held_slots.push_back(slot_holder{static_cast<std::uint32_t>(s), "reserved",
                                         describe_owner(committed(meta + L::meta_owner_offset)), false});
    }
    if (held > object_snapshot::max_held_slots)
      add_note(o, std::to_string(held - object_snapshot::max_held_slots) + " more held slots not listed");
    if (unreadable != 0) add_note(o, std::to_string(unreadable) + " slot states unreadable");
    finish_queue(o);
  }

  static object_snapshot read_object(const entry& e) {
    object_snapshot o;
    o.name = e.name;
    o.kind = e.header.kind_for_message();
    o.layout_version = e.header.layout_version;
    o.bytes = e.header.value_size;
    o.short_kind = "data";
    const std::string_view k = e.header.kind_prefix();
    const auto starts = [&](std::string_view p) { return k.substr(0, p.size()) == p; };
    if (starts("procsync::shared_value<")) o.short_kind = "shared_value";
    if (starts("procsync::shared_array<")) o.short_kind = "shared_array";
    if (starts("procsync::queue<")) o.short_kind = "queue";
    if (starts("procsync::message_queue<")) o.short_kind = "message_queue";
    if (e.header.magic != detail::object_magic) {
      o.state = object_state::unknown;
      o.note = "no valid object header";
      return o;
    }
    if (e.header.state != static_cast<std::uint32_t>(detail::object_state::ready)) {
      o.state = object_state::initializing;
      return o;
    }
    if (e.value == nullptr) {
      o.state = object_state::unknown;
      o.note = "bad value offset";
      return o;
    }
    if (e.header.same_kind(mutex::kind_name)) {
      o.short_kind = "mutex";
      if (const auto* m = as<mutex>(e, o)) lock_state(m->lock_word(), o);
    } else if (e.header.same_kind(recursive_mutex::kind_name)) {
      o.short_kind = "recursive_mutex";
      if (const auto* m = as<recursive_mutex>(e, o)) lock_state(m->lock_word(), o);
    } else if (e.header.same_kind(checked_mutex::kind_name)) {
      o.short_kind = "checked_mutex";
      if (const auto* m = as<checked_mutex>(e, o)) lock_state(m->lock_word(), o);
    } else if (e.header.same_kind(shared_mutex::kind_name)) {
      o.short_kind = "shared_mutex";
      if (const auto* m = as<shared_mutex>(e, o)) {
        lock_state(m->lock_word(), o);
        for (std::size_t i = 0; i < shared_mutex::reader_slots; ++i)
          if (const std::uint32_t tid = m->reader_tid(i); tid != 0) o.readers.push_back(describe_thread(tid));
        if (o.state == object_state::free && !o.readers.empty()) o.state = object_state::shared;
      }
    } else if (starts("procsync::counting_semaphore<")) {
      o.short_kind = "semaphore";
      // "procsync::counting_semaphore<MAX>" or "<MAX,undo_slots=N>"
      const std::string args(k.substr(29));
      o.max = std::strtoll(args.c_str(), nullptr, 10);
      std::size_t slots = 0;
      if (const auto at = args.find("undo_slots="); at != std::string::npos)
        slots = static_cast<std::size_t>(std::strtoull(args.c_str() + at + 11, nullptr, 10));
      if (slots == 0) {
        read_semaphore<0>(e, o);
      } else if (!read_undo_semaphore(slots, e, o, std::make_index_sequence<64>{})) {
        if (slots == 128) read_semaphore<128>(e, o);
        else if (slots == 256) read_semaphore<256>(e, o);
        else if (slots == 512) read_semaphore<512>(e, o);
        else if (slots == 1024) read_semaphore<1024>(e, o);
        else {
          o.state = object_state::unknown;
          o.note = "undo_slots=" + std::to_string(slots) + " not read by this inspector";
        }
      }
    } else if (e.header.same_kind(event::kind_name)) {
      o.short_kind = "event";
      if (const auto* ev = as<event>(e, o)) {
        o.flag = ev->is_set();
        o.state = *o.flag ? object_state::set : object_state::clear;
        o.mode = ev->mode() == event::reset_mode::manual ? "manual" : "automatic";
        o.waiters = ev->sleepers();
        o.waiters_exact = true;
      }
    } else if (e.header.same_kind(barrier::kind_name())) {
      o.short_kind = "barrier";
      if (const auto* b = as<barrier>(e, o)) {
        o.parties = static_cast<std::uint32_t>(b->parties());
        o.arrived = static_cast<std::uint32_t>(b->n_waiting());
        o.state = b->broken() ? object_state::broken : *o.arrived != 0 ? object_state::waiting : object_state::idle;
        o.waiters = b->sleepers();
        o.waiters_exact = true;
      }
    } else if (e.header.same_kind(condition_variable::kind_name)) {
      o.short_kind = "condition_variable";
      if (const auto* cv = as<condition_variable>(e, o)) {
        o.waiters = cv->sleepers();
        o.waiters_exact = true;
      }
    } else if (starts("procsync::queue<")) {
      read_queue(e, o);
    } else if (starts("procsync::message_queue<")) {
      read_message_queue(e, o);
    } else if (e.header.same_kind(deadlock_registry::kind_name)) {
      o.short_kind = "deadlock_registry";
      if (const auto* r = as<deadlock_registry>(e, o)) {
        const auto& g = detail_deadlock_access::graph_of(*r);
        o.classes = r->class_count();
        o.orders = r->order_count();
        std::uint32_t blocked = 0;
        for (const auto& w : g.waits) blocked += w.waiter.load(std::memory_order_relaxed) != 0;
        o.blocked = blocked;
        o.reports = r->report_count();
      }
    }
    return o;
  }

  /// Gives each checked_mutex its class name from the first registry in the segment.
  static void name_checked_classes(std::vector<object_snapshot>& objects, const std::vector<entry>& found) {
    const deadlock_registry* reg = nullptr;
    for (const entry& e : found)
      if (e.value != nullptr && e.header.same_kind(deadlock_registry::kind_name) &&
          e.header.layout_version == deadlock_registry::layout_version && e.header.value_size == sizeof(deadlock_registry)) {
        reg = std::launder(reinterpret_cast<const deadlock_registry*>(e.value));
        break;
      }
    if (reg == nullptr) return;
    for (std::size_t i = 0; i < objects.size() && i < found.size(); ++i) {
      if (objects[i].short_kind != "checked_mutex" || objects[i].state == object_state::unknown) continue;
      const auto* m = std::launder(reinterpret_cast<const checked_mutex*>(found[i].value));
      objects[i].lock_class = std::string(reg->class_name(m->get_class()));
    }
  }

  deadlock_snapshot read_registry(const deadlock_registry& r, const std::string& object) const {
    namespace dd = detail::deadlock;
    const dd::graph& g = detail_deadlock_access::graph_of(r);
    deadlock_snapshot d;
    d.segment = name_;
    d.object = object;
    d.timeout = r.deadlock_timeout();
    switch (r.policy()) {
      case order_policy::throw_error: d.policy = "throw_error"; break;
      case order_policy::report: d.policy = "report"; break;
      case order_policy::abort_process: d.policy = "abort_process"; break;
    }
    const auto text = [](const char* s, std::size_t cap) { return std::string(s, ::strnlen(s, cap)); };
    for (std::uint32_t c = 0; c < dd::class_slots; ++c) {
      const dd::class_entry& ce = g.classes[c];
      // Acquire: the name and options were written before `published`.
      if (ce.published.load(std::memory_order_acquire) == 0) continue;
      d.classes.push_back(lock_class_snapshot{c, text(ce.name, sizeof ce.name), ce.rank, ce.nestable != 0});
    }
    const std::uint32_t used = std::min(g.edge_count.load(std::memory_order_acquire), dd::max_edges);
    for (const auto& c : d.classes) {
      std::uint32_t steps = 0;
      // Acquire: a linked edge's fields were written before its link.
      for (std::uint32_t e = g.classes[c.id].first_out.load(std::memory_order_acquire); e != 0 && e <= dd::max_edges;
           e = g.edges[e - 1].next.load(std::memory_order_acquire)) {
        if (++steps > used + 1) break;
        const dd::edge_entry& edge = g.edges[e - 1];
        if (edge.to >= dd::class_slots) continue;
        lock_order_snapshot o;
        o.from = c.id;
        o.to = edge.to;
        o.from_name = c.name;
        o.to_name = text(g.classes[edge.to].name, dd::class_name_size);
        o.pid = edge.pid;
        o.tid = edge.tid;
        o.label = text(edge.label, sizeof edge.label);
        o.alive = ::kill(edge.pid, 0) == 0 || errno == EPERM;
        const bool duplicate = std::any_of(d.orders.begin(), d.orders.end(),
                                           [&](const lock_order_snapshot& x) { return x.from == o.from && x.to == o.to; });
        if (!duplicate) d.orders.push_back(std::move(o));
      }
    }
    std::sort(d.orders.begin(), d.orders.end(), [](const auto& a, const auto& b) {
      return std::pair(a.from_name, a.to_name) < std::pair(b.from_name, b.to_name);
    });
    for (std::uint32_t i = 0; i < dd::wait_slots; ++i) {
      dd::wait_view v{};
      if (!dd::read_wait(g, i, v)) continue;
      wait_snapshot w;
      w.waiter = describe_thread(v.waiter);
      w.label = text(v.label, sizeof v.label);
      w.lock = text(v.lock, sizeof v.lock);
      w.kind = text(v.kind, sizeof v.kind);
      w.holder = describe_thread(v.holder);
      w.stale = !detail::process_alive(detail::process_identity{v.pid, 0, g.waits[i].start_time});
      if (w.waiter.pid == 0) w.waiter.pid = v.pid;
      d.waits.push_back(std::move(w));
    }
    // Cycles: follow waiter -> holder among live entries.
    std::map<std::uint32_t, std::uint32_t> next;
    for (const auto& w : d.waits)
      if (!w.stale && w.holder.tid != 0) next[w.waiter.tid] = w.holder.tid;
    std::set<std::uint32_t> done;
    for (const auto& [start, unused] : next) {
      (void)unused;
      std::vector<std::uint32_t> path;
      std::uint32_t t = start;
      while (next.count(t) != 0 && done.count(t) == 0 &&
             std::find(path.begin(), path.end(), t) == path.end()) {
        path.push_back(t);
        t = next[t];
      }
      const auto at = std::find(path.begin(), path.end(), t);
      if (at != path.end()) {
        std::vector<std::uint32_t> cycle(at, path.end());
        std::rotate(cycle.begin(), std::min_element(cycle.begin(), cycle.end()), cycle.end());
        d.cycles.push_back(cycle);
      }
      done.insert(path.begin(), path.end());
    }
    for (auto& w : d.waits)
      for (const auto& c : d.cycles)
        if (std::find(c.begin(), c.end(), w.waiter.tid) != c.end()) w.in_cycle = true;
    d.reports_total = g.report_count.load(std::memory_order_acquire);
    d.report_capacity = dd::report_slots;
    for (std::uint32_t i = 0; i < dd::report_slots; ++i) {
      auto* raw = new dd::report_entry;  // 1.6 KiB: off the stack
      std::unique_ptr<dd::report_entry> copy(raw);
      if (!g.read_report(i, *copy)) continue;
      report_snapshot rs;
      rs.number = copy->number;
      rs.type = copy->type == dd::report_deadlock ? "deadlock" : "order_violation";
      rs.unix_ns = copy->unix_ns;
      rs.pid = copy->pid;
      rs.tid = copy->tid;
      rs.label = text(copy->label, sizeof copy->label);
      rs.cycle_length = copy->cycle_length;
      for (std::uint32_t j = 0; j < copy->step_count; ++j) {
        const dd::report_step& st = copy->steps[j];
        rs.steps.push_back(
            report_step_snapshot{st.pid, st.tid, text(st.label, sizeof st.label), text(st.lock, sizeof st.lock)});
      }
      rs.text = text(copy->text, sizeof copy->text);
      d.reports.push_back(std::move(rs));
    }
    std::sort(d.reports.begin(), d.reports.end(), [](const auto& a, const auto& b) { return a.number < b.number; });
    return d;
  }

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
