// procsync/pg/event.hpp — Python's Event for processes on any machines that
// reach one PostgreSQL server.
//
//   procsync::pg::event ready{s, "ready"};
//   ready.wait();      // in the consumers
//   ready.set();       // in the producer: wakes them all
//
// The state is a row of procsync.events; set() updates it and sends a
// notification in the same transaction, and waiters LISTEN, so a wait costs
// no round trip until something happens. Manual reset: it stays set until
// clear(). Unlike a lock it belongs to nobody: a setter that dies leaves the
// event as it was (set stays set). This, not counting_semaphore (a pool of
// permits owned by sessions), is the way to signal another process.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "../detail/clock.hpp"
#include "session.hpp"

namespace procsync::pg {

class event {
 public:
  /// Opens the event `name`, creating it cleared if new. Errors as mutex's
  /// constructor (event names are a namespace of their own).
  event(const session& s, std::string_view name) : c_(s.shared_state()), name_(name) {
    key_ = c_->register_name(detail::kind::event, name, 0, "event");
    key_s_ = std::to_string(key_);
    channel_ = "procsync_ev_" + key_s_;
    (void)c_->exec("INSERT INTO procsync.events (key) VALUES (" + key_s_ + ") ON CONFLICT DO NOTHING", "event");
  }
  event(const event&) = delete;
  event& operator=(const event&) = delete;

  /// Sets the event and wakes every waiter. One round trip.
  void set() {
    (void)c_->exec("WITH u AS (UPDATE procsync.events SET is_set = true WHERE key = " + key_s_ +
                       ") SELECT pg_notify('" + channel_ + "', '')",
                   "event::set");
  }

  /// Clears it. One round trip.
  void clear() { (void)c_->exec("UPDATE procsync.events SET is_set = false WHERE key = " + key_s_, "event::clear"); }

  /// The state now. One round trip.
  [[nodiscard]] bool is_set() { return query(); }

  /// Returns once the event is set (at once if it is). Throws
  /// errc::connection_lost.
  void wait() { (void)wait_until_impl(std::nullopt); }

  /// Waits at most `timeout`; returns whether the event is set. Never
  /// returns false early.
  template <class Rep, class Period>
  [[nodiscard]] bool wait_for(const std::chrono::duration<Rep, Period>& timeout) {
    return wait_until_impl(procsync::detail::deadline_after(timeout));
  }
  template <class Clock, class Duration>
  [[nodiscard]] bool wait_until(const std::chrono::time_point<Clock, Duration>& deadline) {
    return wait_until_impl(procsync::detail::to_steady(deadline));
  }

  [[nodiscard]] const std::string& name() const noexcept { return name_; }

 private:
  bool query() {
    return c_->exec("SELECT is_set FROM procsync.events WHERE key = " + key_s_, "event::is_set").boolean();
  }

  bool wait_until_impl(const std::optional<detail::steady::time_point>& deadline) {
    if (!listening_) {
      // Listen before looking, so a set() between the look and the wait
      // still wakes us.
      (void)c_->exec("LISTEN \"" + channel_ + "\"", "event::wait");
      listening_ = true;
    }
    for (;;) {
      c_->drain_notifications();
      if (query()) return true;
      if (!c_->wait_notification(deadline, "event::wait")) return query();
    }
  }

  std::shared_ptr<detail::connection> c_;
  std::string name_;
  std::int32_t key_ = 0;
  std::string key_s_, channel_;
  bool listening_ = false;
};

}  // namespace procsync::pg
