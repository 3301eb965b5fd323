// procsync/detail/shared_value_slots.hpp — the crash-consistent, double-
// buffered storage under shared_value<T> (for T without lock-free atomics) and
// shared_array<T, N>.
//
// Two slots and a commit counter `seq`: the committed value is in slot
// seq & 1, the other slot is scratch space. A writer (holding the robust lock)
// copies the committed slot into the scratch slot, modifies the copy, and
// publishes it with a single atomic store of seq + 1. So:
//  - A writer killed at any instruction before that store has changed only the
//    scratch slot, which nobody reads as a value: the committed one is intact.
//    The next lock holder sees lock_status::owner_died, has nothing to repair
//    (scratch is rebuilt from the committed slot on every write) and marks the
//    lock consistent.
//  - Readers take no lock (a seqlock over the two slots): they copy the
//    committed slot and retry only if a publish happened meanwhile (then the
//    next writer may be overwriting the slot they read). A dead writer never
//    blocks them: they never wait for a writer to finish. After a few failed
//    attempts (a reader starved by a stream of publishes) a reader takes the
//    lock, which stops publishes, and reads once more.
//
// Readers copy with relaxed atomic loads (word-wise where aligned) while a
// writer may write the other slot with plain stores — the usual seqlock idiom
// (what P1478's atomic_load_per_byte_memcpy standardizes); the retry discards
// any copy that may have overlapped a write.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <new>
#include <type_traits>
#include <utility>

#include "robust_guard.hpp"

namespace procsync::detail {

/// A 64-bit word that may alias any object (the slots hold T objects, read
/// word-wise by racy_copy).
using aliasing_word = std::uint64_t __attribute__((__may_alias__));

/// Copies `n` bytes from shared memory that a writer may be modifying, with
/// relaxed atomic loads: never a torn *word* read by the compiler, never UB
/// from the race itself. The caller validates the copy (seqlock).
inline void racy_copy(void* dst, const unsigned char* src, std::size_t n) noexcept {
  auto* out = static_cast<unsigned char*>(dst);
  while (n != 0 && reinterpret_cast<std::uintptr_t>(src) % sizeof(std::uint64_t) != 0) {
    *out++ = __atomic_load_n(src++, __ATOMIC_RELAXED);
    --n;
  }
  // Four words per round: the relaxed loads cannot be merged into vector
  // loads, so unrolling is what keeps a large copy near memcpy speed.
  for (; n >= 4 * sizeof(std::uint64_t); n -= 4 * sizeof(std::uint64_t)) {
    const auto* w = reinterpret_cast<const aliasing_word*>(src);
    const std::uint64_t w0 = __atomic_load_n(w, __ATOMIC_RELAXED);
    const std::uint64_t w1 = __atomic_load_n(w + 1, __ATOMIC_RELAXED);
    const std::uint64_t w2 = __atomic_load_n(w + 2, __ATOMIC_RELAXED);
    const std::uint64_t w3 = __atomic_load_n(w + 3, __ATOMIC_RELAXED);
    const std::uint64_t words[4] = {w0, w1, w2, w3};
    std::memcpy(out, words, sizeof words);
    out += sizeof words;
    src += sizeof words;
  }
  for (; n >= sizeof(std::uint64_t); n -= sizeof(std::uint64_t)) {
    const std::uint64_t w = __atomic_load_n(reinterpret_cast<const aliasing_word*>(src), __ATOMIC_RELAXED);
    std::memcpy(out, &w, sizeof w);
    out += sizeof w;
    src += sizeof w;
  }
  while (n-- != 0) *out++ = __atomic_load_n(src++, __ATOMIC_RELAXED);
}

/// Takes `m` (the value's procsync::mutex) for a commit that outlives the
/// caller's scope (a locked view). An owner that died holding it can only have
/// written the scratch slot (it is rebuilt before every use), so there is
/// nothing to repair: mark it consistent and go on. Scoped commits use
/// robust_guard, which does the same.
template <class Lock>
void lock_for_commit(Lock& m) {
  if (m.lock_robust() == lock_status::owner_died) m.consistent();
}

template <class V>
class committed_slots {
  static_assert(std::is_trivially_copyable_v<V>, "slots hold trivially copyable values");
  static constexpr std::size_t align = alignof(V) > alignof(std::uint64_t) ? alignof(V) : alignof(std::uint64_t);
  // Slot stride: a multiple of the alignment so both slots are aligned.
  static constexpr std::size_t stride = (sizeof(V) + align - 1) / align * align;

 public:
  explicit committed_slots(const V& initial) noexcept {
    std::memcpy(slot(0), &initial, sizeof(V));
    std::memcpy(slot(1), &initial, sizeof(V));
  }
  committed_slots(const committed_slots&) = delete;
  committed_slots& operator=(const committed_slots&) = delete;

  /// Copies bytes [offset, offset + n) of the committed value into `out`
  /// without locking (see the file comment); `m` is the value's lock, taken
  /// only if publishes keep invalidating the copy.
  template <class Lock>
  void read(Lock& m, std::size_t offset, std::size_t n, void* out) const {
    for (int attempt = 0; attempt < 16; ++attempt) {
      // Acquire: pairs with publish()'s release store, so the committed slot's
      // bytes written before it are visible.
      const std::uint32_t before = seq_.load(std::memory_order_acquire);
      racy_copy(out, slot(before & 1u) + offset, n);
      // Acquire fence: if the copy saw any byte of a later writer (which
      // issued a release fence after the publish it follows, see
      // begin_write), the load below sees that publish and we retry.
      std::atomic_thread_fence(std::memory_order_acquire);
      if (seq_.load(std::memory_order_relaxed) == before) return;
    }
    // Starved by publishes: hold the lock so none can happen, then copy.
    robust_guard held{m};
    // Relaxed: our lock acquisition ordered us after the last publish.
    racy_copy(out, slot(seq_.load(std::memory_order_relaxed) & 1u) + offset, n);
  }

  template <class Lock>
  V read(Lock& m) const {
    // Copied straight into the result (trivially copyable: its bytes are its value).
    V value;
    read(m, 0, sizeof(V), &value);
    return value;
  }

  /// Requires the lock. Returns the scratch slot, filled with a copy of the
  /// committed value when `copy` is set.
  V& begin_write(bool copy) noexcept {
    // Relaxed: only lock holders store seq_, and we hold the lock.
    const std::uint32_t s = seq_.load(std::memory_order_relaxed);
    // Release fence: a reader whose copy sees any byte we write from here on
    // also sees seq_ >= s (that publish happened before our lock acquisition),
    // so it notices it raced with us and retries.
    std::atomic_thread_fence(std::memory_order_release);
    unsigned char* scratch = slot((s & 1u) ^ 1u);
    if (copy) std::memcpy(scratch, slot(s & 1u), sizeof(V));
    return *std::launder(reinterpret_cast<V*>(scratch));
  }

  /// Requires the lock and a finished begin_write(): makes the scratch slot
  /// the committed one. A single store: the commit point.
  void publish() noexcept {
    const std::uint32_t s = seq_.load(std::memory_order_relaxed);
    // Release: readers that see the new count see the whole new value.
    seq_.store(s + 1, std::memory_order_release);
  }

  /// The committed value, for the lock holder (no concurrent publish).
  const V& committed_for_holder() const noexcept {
    return *std::launder(reinterpret_cast<const V*>(slot(seq_.load(std::memory_order_relaxed) & 1u)));
  }

  /// How many commits so far (wraps at 2^32): for tests and diagnostics.
  std::uint32_t commits() const noexcept { return seq_.load(std::memory_order_relaxed); }

 private:
  unsigned char* slot(std::uint32_t i) noexcept { return bytes_ + i * stride; }
  const unsigned char* slot(std::uint32_t i) const noexcept { return bytes_ + i * stride; }

  std::atomic<std::uint32_t> seq_{0};
  alignas(align) unsigned char bytes_[2 * stride];
};

/// Runs a write transaction on `slots` under `m`: fn(V&) on the scratch copy,
/// committed if it returns, discarded if it throws. Returns fn's result by
/// value (never a reference into the slots, which the next writer reuses).
template <class Lock, class V, class F>
auto write_transaction(Lock& m, committed_slots<V>& slots, F&& fn) {
  robust_guard held{m};
  V& scratch = slots.begin_write(true);
  if constexpr (std::is_void_v<std::invoke_result_t<F&, V&>>) {
    std::forward<F>(fn)(scratch);
    slots.publish();
  } else {
    std::decay_t<std::invoke_result_t<F&, V&>> result = std::forward<F>(fn)(scratch);
    slots.publish();
    return result;
  }
}

/// Replaces the committed value by `desired`, in one commit under `m`.
template <class Lock, class V>
void replace_committed(Lock& m, committed_slots<V>& slots, const V& desired) {
  robust_guard held{m};
  std::memcpy(&slots.begin_write(false), &desired, sizeof(V));
  slots.publish();
}

/// What shared_value::locked_view and shared_array::locked_view share: a
/// scratch copy of the committed V, edited while `m` is held, published all
/// together when the view is destroyed normally or commit() is called, and
/// discarded by cancel(), by an exception's unwinding, or by the process dying.
/// Requires: the creating thread holds `m`; the view is destroyed on it.
template <class V, class Lock>
class commit_view {
 public:
  commit_view(commit_view&& other) noexcept
      : lock_(std::exchange(other.lock_, nullptr)),
        slots_(other.slots_),
        scratch_(other.scratch_),
        exceptions_(other.exceptions_) {}
  commit_view(const commit_view&) = delete;
  commit_view& operator=(const commit_view&) = delete;
  commit_view& operator=(commit_view&&) = delete;

  /// Commits unless an exception thrown after the view was made is unwinding
  /// the stack (then the changes are discarded).
  ~commit_view() noexcept(false) {
    if (lock_ == nullptr) return;
    if (std::uncaught_exceptions() > exceptions_)
      cancel();
    else
      commit();
  }

  /// Whether the view still holds the lock.
  [[nodiscard]] bool active() const noexcept { return lock_ != nullptr; }

  /// Commits the changes now and releases the lock. No effect if inactive.
  void commit() {
    if (Lock* m = std::exchange(lock_, nullptr)) {
      slots_->publish();
      m->unlock();
    }
  }

  /// Discards the changes and releases the lock. No effect if inactive.
  void cancel() {
    if (Lock* m = std::exchange(lock_, nullptr)) m->unlock();
  }

 protected:
  commit_view(Lock& m, committed_slots<V>& slots)
      : lock_(&m), slots_(&slots), scratch_(&slots.begin_write(true)), exceptions_(std::uncaught_exceptions()) {}

  /// The uncommitted copy. Requires: the view is active.
  V& scratch() const noexcept { return *scratch_; }

 private:
  Lock* lock_;  // null once committed or cancelled
  committed_slots<V>* slots_;
  V* scratch_;
  int exceptions_;
};

/// The new value `fn` makes of `current`: fn(T&) returning void mutates a copy;
/// otherwise fn's result (convertible to T) is the new value.
template <class T, class F>
T apply_update(F& fn, const T& current) {
  if constexpr (std::is_invocable_v<F&, T&> && std::is_void_v<std::invoke_result_t<F&, T&>>) {
    T copy = current;
    fn(copy);
    return copy;
  } else if constexpr (std::is_invocable_v<F&, T&>) {
    T copy = current;
    return static_cast<T>(fn(copy));
  } else {
    static_assert(std::is_invocable_v<F&, const T&> && std::is_convertible_v<std::invoke_result_t<F&, const T&>, T>,
                  "update(fn): fn must take T& (and mutate it), or take const T& and return the new T");
    return static_cast<T>(fn(current));
  }
}

/// Applies update's fn in place on `target` (the scratch slot).
template <class T, class F>
void apply_update_in_place(F& fn, T& target) {
  if constexpr (std::is_invocable_v<F&, T&> && std::is_void_v<std::invoke_result_t<F&, T&>>) {
    fn(target);
  } else if constexpr (std::is_invocable_v<F&, T&>) {
    T next = static_cast<T>(fn(target));
    target = next;
  } else {
    static_assert(std::is_invocable_v<F&, const T&> && std::is_convertible_v<std::invoke_result_t<F&, const T&>, T>,
                  "update(fn): fn must take T& (and mutate it), or take const T& and return the new T");
    T next = static_cast<T>(fn(std::as_const(target)));
    target = next;
  }
}

}  // namespace procsync::detail
