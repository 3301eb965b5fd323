// procsync/pg/semaphore.hpp — a robust pool of permits shared by processes on
// any machines that reach one PostgreSQL server.
//
//   procsync::pg::counting_semaphore rooms{s, "rooms", 3};
//   rooms.acquire();   // one of 3 permits, or wait
//   ...
//   rooms.release();
//
// Each permit is one advisory lock (int8 key 0x7073 << 48 | name key << 16 |
// index), so a permit belongs to the session that took it, and the server
// gives it back the moment that session ends: a client killed while holding
// permits never shrinks the pool. That is also why release() requires a
// prior acquire() through the same object: this is a permit pool, not a
// signal. To signal another process without taking anything first, use
// pg::event.
//
// Waiting. PostgreSQL can wait for one lock, not for "any one of N", so a
// waiter listens for the notification every release() sends and otherwise
// retries in 200 ms slices (at most 5 round trips per second while it waits):
// a permit released by release() reaches a waiter at once, a permit released
// by the death of its holder's session within one slice.
//
// Costs: an uncontended acquire() or try_acquire() is one round trip (the
// permits are tried in one statement); release() is one; the first wait of an
// object adds one (LISTEN).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "../detail/clock.hpp"
#include "session.hpp"

namespace procsync::pg {

class counting_semaphore {
 public:
  /// The most permits a semaphore may have.
  static constexpr std::ptrdiff_t max_permits = 4096;

  /// Opens the pool `name` of `permits` permits, all free initially. Every
  /// client must give the same count: another one throws errc::layout_mismatch
  /// (naming the registered count). Throws errc::invalid_argument unless
  /// 1 <= permits <= max_permits; otherwise the errors of mutex's constructor.
  counting_semaphore(const session& s, std::string_view name, std::ptrdiff_t permits)
      : c_(s.shared_state()), name_(name), permits_(permits) {
    if (permits < 1 || permits > max_permits)
      throw error(errc::invalid_argument, "procsync::pg::counting_semaphore '" + name_ + "': permits must be 1.." +
                                              std::to_string(max_permits) + ", got " + std::to_string(permits));
    key_ = c_->register_name(detail::kind::semaphore, name, permits, "counting_semaphore");
    const std::uint64_t base = (std::uint64_t{0x7073} << 48) | (std::uint64_t{static_cast<std::uint32_t>(key_)} << 16);
    base_ = std::to_string(static_cast<std::int64_t>(base));
    channel_ = "procsync_sem_" + std::to_string(key_);
  }
  counting_semaphore(const counting_semaphore&) = delete;
  counting_semaphore& operator=(const counting_semaphore&) = delete;

  /// Gives back every permit this object still holds (never throws).
  ~counting_semaphore() {
    while (!mine_.empty()) release_one();
  }

  /// The pool size.
  [[nodiscard]] std::ptrdiff_t max() const noexcept { return permits_; }

  /// Takes one permit, waiting as long as it takes. Throws
  /// errc::connection_lost (the session's permits are gone with it),
  /// errc::server_error.
  void acquire() { (void)acquire_until(std::nullopt); }

  /// Takes a permit if one is free now; one round trip.
  [[nodiscard]] bool try_acquire() { return take(); }

  /// Waits at most `timeout`; never returns false early.
  template <class Rep, class Period>
  [[nodiscard]] bool try_acquire_for(const std::chrono::duration<Rep, Period>& timeout) {
    return acquire_until(procsync::detail::deadline_after(timeout));
  }
  template <class Clock, class Duration>
  [[nodiscard]] bool try_acquire_until(const std::chrono::time_point<Clock, Duration>& deadline) {
    return acquire_until(procsync::detail::to_steady(deadline));
  }

  /// Gives back `n` permits this object holds (the latest taken first) and
  /// wakes waiters. Throws errc::not_owner if it holds fewer than `n` (nothing
  /// is released then); never throws for a lost connection.
  void release(std::ptrdiff_t n = 1) {
    if (n < 0 || static_cast<std::size_t>(n) > mine_.size())
      throw error(errc::not_owner, "procsync::pg::counting_semaphore '" + name_ + "': release(" + std::to_string(n) +
                                       ") but this object holds " + std::to_string(mine_.size()) +
                                       " permits (use pg::event to signal without acquiring)");
    for (std::ptrdiff_t i = 0; i < n; ++i) release_one();
  }

  /// Permits this object holds.
  [[nodiscard]] std::ptrdiff_t held() const noexcept { return static_cast<std::ptrdiff_t>(mine_.size()); }
  [[nodiscard]] const std::string& name() const noexcept { return name_; }

 private:
  static constexpr auto slice = std::chrono::milliseconds(200);

  bool take() {
    std::set<int>& session_held = c_->permits(key_);
    // Advisory locks are re-entrant per session: skip the permits this
    // session holds already (CASE fixes the evaluation order; LIMIT 1 stops
    // at the first permit taken).
    std::string held_list = "'{";
    for (const int i : session_held) held_list += (held_list.size() > 2 ? "," : "") + std::to_string(i);
    held_list += "}'::int[]";
    detail::result r = c_->exec("SELECT i FROM generate_series(0, " + std::to_string(permits_ - 1) +
                                    ") AS i WHERE CASE WHEN i = ANY(" + held_list +
                                    ") THEN false ELSE pg_try_advisory_lock(" + base_ + " + i) END LIMIT 1",
                                "counting_semaphore::acquire");
    if (r.rows() == 0) return false;
    const int index = std::atoi(r.value());
    session_held.insert(index);
    mine_.push_back(index);
    return true;
  }

  bool acquire_until(const std::optional<detail::steady::time_point>& deadline) {
    for (;;) {
      c_->drain_notifications();
      if (take()) return true;
      if (deadline && detail::steady::now() >= *deadline) return false;
      if (!listening_) {
        (void)c_->exec("LISTEN \"" + channel_ + "\"", "counting_semaphore::acquire");
        listening_ = true;
        continue;  // a release may have come before LISTEN took effect
      }
      auto until = detail::steady::now() + slice;
      if (deadline && *deadline < until) until = *deadline;
      (void)c_->wait_notification(until, "counting_semaphore::acquire");
    }
  }

  void release_one() noexcept {
    const int index = mine_.back();
    mine_.pop_back();
    c_->permits(key_).erase(index);
    (void)c_->exec_quiet("SELECT pg_advisory_unlock(" + base_ + " + " + std::to_string(index) + "), pg_notify('" +
                         channel_ + "', '')");
  }

  std::shared_ptr<detail::connection> c_;
  std::string name_;
  std::ptrdiff_t permits_;
  std::int32_t key_ = 0;
  std::string base_, channel_;
  std::vector<int> mine_;
  bool listening_ = false;
};

}  // namespace procsync::pg
