// procsync/shared_value.hpp — a value and an array shared between processes,
// with a built-in robust lock, that no crash can tear.
//
// shared_value<T> is the C++ answer to Python's multiprocessing.Value:
//
//   auto total = procsync::make_anonymous<procsync::shared_value<long>>(0);
//   // in each of N forked workers:
//   total->update([](long t) { return t + 1; });   // the tutorials' `total += 1`, done right
//   total->fetch_add(1);                           // the same, one instruction
//
//   struct account { long balance; long deposits; };
//   auto acct = procsync::make_anonymous<procsync::shared_value<account>>();
//   acct->with_lock([](account& a) { a.balance += 10; a.deposits += 1; });
//   { auto v = acct->lock(); v->balance -= 5; v->deposits += 1; }  // committed here
//
// shared_array<T, N> is the same for N elements (Python's multiprocessing.Array).
//
// T must be trivially copyable and hold no pointers (it lives in shared memory
// mapped at different addresses). shared_value and shared_array are fixed-size,
// standard-layout, pointer-free and trivially destructible: place them with
// make_anonymous<> or named_segment::construct<> (see segment.hpp).
//
// Crash consistency. A process killed at any instruction — in the middle of
// store(), update(), with_lock() or a locked view — never leaves a torn or
// half-updated value behind: every reader sees the last *committed* value, and
// the next writer continues from it. A multi-step with_lock() or locked view
// commits all its changes or none (also when fn throws). How:
//  - "Lock-free" T (see is_lock_free below): every write is one atomic
//    instruction on the value, so there is no intermediate state to see.
//  - Any other T (structs, large values) and every shared_array: two copies of
//    the value and a commit counter. A writer modifies the uncommitted copy
//    (a fresh copy of the committed one) and publishes it with one atomic
//    store. If it dies before that store, its work is simply never published;
//    the next lock holder is told owner_died by the robust lock, discards the
//    scratch copy and marks the lock consistent (see detail/shared_value_slots.hpp).
//
// Which operations take the lock, and which are lock-free:
//
//   | operation                       | lock-free T           | any other T, shared_array |
//   |---------------------------------|-----------------------|---------------------------|
//   | load, snapshot                  | atomic load           | no lock (seqlock read)*   |
//   | store, exchange                 | atomic store/exchange | lock                      |
//   | fetch_add/sub/and/or/xor        | atomic RMW            | lock                      |
//   | update(fn)                      | CAS loop, no lock**   | lock, fn runs once        |
//   | with_lock(fn)                   | lock + CAS commit**   | lock, fn runs once        |
//   | lock() (locked view)            | not available***      | lock until destroyed      |
//
//   *   Readers never wait for a writer, alive or dead. They retry when a
//       commit happens during their copy and, after 16 failed attempts, take
//       the lock for one copy (so a reader cannot starve).
//   **  fn may run more than once: again on the fresh value when another
//       process changed it in between (update: any writer; with_lock: only the
//       lock-free writers store/exchange/fetch_*/update, since with_lock
//       callers exclude each other). Keep such fn free of other side effects.
//   *** A view cannot re-run the caller's code if a lock-free writer changed
//       the value meanwhile; use update() or with_lock() for lock-free T.
//
// "Lock-free T" means integral, floating-point or enum T for which
// std::atomic_ref<T> is always lock-free (every such type on x86-64 up to 8
// bytes). There the lock only serializes with_lock() callers (and users of
// get_lock()); lock-free operations do not wait for it.
//
// No system call is made on any path without contention: the lock is a
// procsync::mutex (a futex only when someone must sleep).
//
// Memory order: the lock-free operations take a std::memory_order like
// std::atomic (default seq_cst). Everything else is at least acquire (reads)
// and release (commits), so data written before a commit is visible to a
// process that reads the committed value.
//
// The lock. get_lock() is the procsync::mutex every locking operation above
// uses; hold it (e.g. with std::unique_lock, or with procsync's
// condition_variable) to keep writers out while you wait for or act on a
// value. Writing operations called by a thread that holds it throw
// errc::would_deadlock (from inside with_lock()'s fn, too: modify the T& it
// passes instead). The lock is constructed with owner_death::nothing_to_repair:
// the committed value is always consistent, so a holder's death never needs a
// repair and never poisons the lock, however it is used (std::lock_guard,
// std::unique_lock, a condition_variable wait). Do not use this lock to guard
// other data: a death would not be reported to their users as one to repair.
//
// Threads inside one process may share these objects as well.
#pragma once

#include "detail/config.hpp"  // first: one clear error below C++20
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <span>
#include <string>
#include <type_traits>
#include <utility>

#include "detail/object_header.hpp"
#include "detail/robust_guard.hpp"
#include "detail/shared_value_slots.hpp"
#include "detail/shared_value_traits.hpp"
#include "error.hpp"
#include "lock_status.hpp"
#include "mutex.hpp"
#include "shared_array.hpp"  // shared_array<T, N>, declared here before it had its own header

namespace procsync {


/// A value of trivially copyable T in shared memory: atomic operations,
/// read-modify-write across processes, a robust built-in lock, and crash
/// consistency (see the top of this file).
template <class T>
class shared_value {
  static_assert(detail::shared_value_type_check<T>::value);  // T's requirements, reported first
  static constexpr bool lock_free = detail::lock_free_scalar<T>;
  using storage = std::conditional_t<
      lock_free, detail::scalar_cell<T>,
      std::conditional_t<detail::storable_value<T>, detail::committed_slots<T>, detail::rejected_storage>>;

 public:
  using value_type = T;

  /// Layout identity, checked when opened in a named segment (with sizeof):
  /// spells T ("procsync::shared_value<int64>"; a struct by its kind_name,
  /// size and alignment, see detail::element_kind), so a shared_value<long> is
  /// never opened as a shared_value<double> or as another struct's.
  static std::string kind_name() { return detail::template_kind("procsync::shared_value", detail::element_kind<T>()); }
  static constexpr std::uint32_t layout_version = 1;

  /// True when T's loads, stores and read-modify-writes are single atomic
  /// instructions (see the table at the top of this file).
  static constexpr bool is_lock_free = lock_free;

  /// A value-initialized T (zero for scalars).
  shared_value() noexcept : shared_value(T{}) {}

  /// Holds `initial`.
  explicit shared_value(const T& initial) noexcept : storage_(initial) {}

  shared_value(const shared_value&) = delete;
  shared_value& operator=(const shared_value&) = delete;

  /// The last committed value; never a torn one. Lock-free T: one atomic load.
  /// Other T: takes no lock unless commits keep racing with the copy; then
  /// it may throw errc::not_recoverable if the lock was poisoned through
  /// get_lock(). Called inside with_lock()'s fn, returns the value as it was
  /// before fn started (the change is not yet committed).
  [[nodiscard]] T load(std::memory_order order = std::memory_order_seq_cst) const {
    if constexpr (lock_free)
      return storage_.ref().load(order);
    else
      return storage_.read(lock_);
  }

  /// Replaces the value. Lock-free T: one atomic store; otherwise one commit
  /// under the lock (errc::would_deadlock if the caller holds it).
  void store(const T& desired, std::memory_order order = std::memory_order_seq_cst) {
    if constexpr (lock_free) {
      storage_.ref().store(desired, order);
    } else {
      detail::replace_committed(lock_, storage_, desired);
    }
  }

  /// Replaces the value; returns the one it replaced (atomically).
  T exchange(const T& desired, std::memory_order order = std::memory_order_seq_cst) {
    if constexpr (lock_free) {
      return storage_.ref().exchange(desired, order);
    } else {
      detail::robust_guard held{lock_};
      const T previous = storage_.committed_for_holder();
      std::memcpy(&storage_.begin_write(false), &desired, sizeof(T));
      storage_.publish();
      return previous;
    }
  }

  /// Atomically replaces the value v by fn's result, and returns the new value.
  /// fn either takes T& and modifies it (returning void), or takes const T&
  /// (or T) and returns the new value. Lock-free T: a CAS loop that takes no
  /// lock, so fn may run more than once (on the fresh value each time): keep
  /// it free of side effects. Other T: fn runs once, under the lock; if it
  /// throws, nothing changes.
  template <class F>
  T update(F&& fn) {
    if constexpr (lock_free) {
      const std::atomic_ref<T> ref = storage_.ref();
      // Relaxed: a stale guess only costs one failed CAS.
      T current = ref.load(std::memory_order_relaxed);
      for (;;) {
        const T next = detail::apply_update<T>(fn, current);
        // seq_cst on success: as strong as std::atomic's default RMW.
        // Acquire on failure: fn's next run sees what the winner published.
        if (ref.compare_exchange_weak(current, next, std::memory_order_seq_cst, std::memory_order_acquire))
          return next;
      }
    } else {
      return detail::write_transaction(lock_, storage_, [&fn](T& v) -> T {
        detail::apply_update_in_place<T>(fn, v);
        return v;
      });
    }
  }

  /// Runs fn(T&) holding the lock, for multi-step changes, and commits what fn
  /// leaves in the T& when it returns (nothing if it throws, or if the caller
  /// is killed meanwhile). Returns fn's result (by value). Other with_lock()
  /// callers and lock() views wait meanwhile. The T& is valid only inside fn.
  /// Lock-free T: fn works on a copy committed by CAS; it runs again on the
  /// fresh value if a lock-free writer (store, fetch_*, update) changed it in
  /// between. Throws errc::would_deadlock if the caller already holds the
  /// lock, errc::not_recoverable if it was poisoned through get_lock().
  template <class F>
  auto with_lock(F&& fn) {
    static_assert(std::is_invocable_v<F&, T&>, "with_lock(fn): fn must accept T&");
    if constexpr (lock_free) {
      detail::robust_guard held{lock_};
      const std::atomic_ref<T> ref = storage_.ref();
      // Acquire: fn must see what the last writer published with the value.
      T current = ref.load(std::memory_order_acquire);
      for (;;) {
        T copy = current;
        if constexpr (std::is_void_v<std::invoke_result_t<F&, T&>>) {
          fn(copy);
          // seq_cst / acquire: as in update().
          if (ref.compare_exchange_strong(current, copy, std::memory_order_seq_cst, std::memory_order_acquire))
            return;
        } else {
          std::decay_t<std::invoke_result_t<F&, T&>> result = fn(copy);
          if (ref.compare_exchange_strong(current, copy, std::memory_order_seq_cst, std::memory_order_acquire))
            return result;
        }
      }
    } else {
      return detail::write_transaction(lock_, storage_, fn);
    }
  }

  /// A view holding the lock: read and modify the value through -> and *;
  /// the changes are committed, all together, when the view is destroyed (or
  /// commit() is called), and discarded if it is destroyed by an exception's
  /// unwinding, by cancel(), or by the process dying. Must be destroyed by
  /// the thread that created it. Not for lock-free T (see the table above).
  class locked_view : public detail::commit_view<T, procsync::mutex> {
    using base = detail::commit_view<T, procsync::mutex>;

   public:
    /// The uncommitted value. Requires: the view is active.
    T* operator->() const noexcept { return &this->scratch(); }
    T& operator*() const noexcept { return this->scratch(); }

   private:
    friend class shared_value;
    explicit locked_view(shared_value& owner) : base(owner.lock_, owner.storage_) {}
  };

  /// Takes the lock (blocking) and returns a view of an uncommitted copy of
  /// the value (see locked_view). Same errors as with_lock(). Not for
  /// lock-free T: rejected at compile time, with the reason.
  [[nodiscard]] locked_view lock() {
    static_assert(!lock_free,
                  "shared_value<T>::lock() is not available when T is lock-free (integral, floating-point or enum): "
                  "store(), fetch_add() and update() change such a value without the lock, and a view could not "
                  "re-run your code on the new value, so its commit would overwrite theirs. Use update(fn) or "
                  "with_lock(fn), which retry fn on the fresh value");
    if constexpr (!lock_free) {
      detail::lock_for_commit(lock_);
      return locked_view(*this);
    } else {
      std::terminate();  // unreachable: the static_assert above rejects this instantiation
    }
  }

  /// Adds `delta`; returns the previous value. Integral (not bool) and
  /// floating-point T only. Lock-free T: one atomic instruction (a CAS loop
  /// for floating point); otherwise a commit under the lock.
  T fetch_add(T delta, std::memory_order order = std::memory_order_seq_cst)
    requires detail::arithmetic_value<T>
  {
    if constexpr (lock_free)
      return storage_.ref().fetch_add(delta, order);
    else
      return locked_rmw([delta](T v) { return static_cast<T>(v + delta); });
  }

  /// Subtracts `delta`; returns the previous value. As fetch_add.
  T fetch_sub(T delta, std::memory_order order = std::memory_order_seq_cst)
    requires detail::arithmetic_value<T>
  {
    if constexpr (lock_free)
      return storage_.ref().fetch_sub(delta, order);
    else
      return locked_rmw([delta](T v) { return static_cast<T>(v - delta); });
  }

  /// Bitwise and/or/xor with `mask`; returns the previous value. Integral T
  /// (not bool) only.
  T fetch_and(T mask, std::memory_order order = std::memory_order_seq_cst)
    requires detail::bitwise_value<T>
  {
    if constexpr (lock_free)
      return storage_.ref().fetch_and(mask, order);
    else
      return locked_rmw([mask](T v) { return static_cast<T>(v & mask); });
  }

  T fetch_or(T mask, std::memory_order order = std::memory_order_seq_cst)
    requires detail::bitwise_value<T>
  {
    if constexpr (lock_free)
      return storage_.ref().fetch_or(mask, order);
    else
      return locked_rmw([mask](T v) { return static_cast<T>(v | mask); });
  }

  T fetch_xor(T mask, std::memory_order order = std::memory_order_seq_cst)
    requires detail::bitwise_value<T>
  {
    if constexpr (lock_free)
      return storage_.ref().fetch_xor(mask, order);
    else
      return locked_rmw([mask](T v) { return static_cast<T>(v ^ mask); });
  }

  /// The robust lock every locking operation uses (see the top of this file).
  [[nodiscard]] procsync::mutex& get_lock() const noexcept { return lock_; }

 private:
  template <class F>
  T locked_rmw(F op) {
    return detail::write_transaction(lock_, storage_, [&op](T& v) -> T {
      const T previous = v;
      v = op(v);
      return previous;
    });
  }

  mutable procsync::mutex lock_{owner_death::nothing_to_repair};
  storage storage_;
};

}  // namespace procsync
