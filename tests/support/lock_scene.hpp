// tests/support/lock_scene.hpp — a named segment full of locks in known states,
// made by real processes, for the inspector's tests (test_inspect.cpp) and
// procsync-shm's (tests/cli/lock_scene.cpp):
//
//   held      mutex held by child "ps-holder"; child "ps-waiter" sleeps on it,
//             and has reserved it (it has waited past the starvation bound)
//   orphaned  mutex whose holder "ps-victim" was SIGKILLed (inconsistent)
//   poisoned  mutex released without consistent() after its holder died
//   free      mutex nobody holds
//   seats     undo_semaphore<4, 8> (undo, 4); "ps-permits" holds 2 permits
//   door      event (manual), set
//   gate      barrier(3); "ps-party" waits in it
//   table     shared_mutex; "ps-reader" holds a share
//   registry  deadlock_registry (200 ms); classes "ledger", "accounts"
//   ledger, accounts  checked_mutex; "transfer" took ledger -> accounts, then
//             "audit" tried accounts -> ledger and was refused
//   left, right  mutexes in a live deadlock: "ps-dl-high" (the higher TID, so
//             the would-be victim) holds right and waits for left, and is
//             SIGSTOPped; "ps-dl-low" holds left and waits for right. The
//             cycle stays in the wait-for graph until resume_deadlock().
//   jobs      queue<int64, 8>: "ps-producer" pushed 5 items and exited
//   inbox     queue<int64, 4>, empty: "ps-consumer" sleeps in pop() until
//             close_inbox() closes it (then the consumer gets queue_closed)
//   stuck     queue<scene_item, 4> (24-byte items): "ps-pusher" pushed 2, then
//             stopped (SIGSTOP) inside its third push, holding slot 2 (writing)
//   mail      message_queue<64, 16>: "ps-sender" sent 3 messages, then stopped
//             inside its fourth send, holding the slot it reserved
//
// Every child dies with the test process (PR_SET_PDEATHSIG); the destructor
// kills and reaps them and removes the segment. The including file defines
// PROCSYNC_QUEUE_TEST_HOOK before it includes anything (the scene stops its
// pusher and sender inside their calls through the queues' test hook).
#pragma once

#ifndef PROCSYNC_QUEUE_TEST_HOOK
#error "lock_scene.hpp: #define PROCSYNC_QUEUE_TEST_HOOK 1 before the first #include"
#endif

#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <procsync/barrier.hpp>
#include <procsync/condition_variable.hpp>
#include <procsync/deadlock.hpp>
#include <procsync/event.hpp>
#include <procsync/message_queue.hpp>
#include <procsync/mutex.hpp>
#include <procsync/queue.hpp>
#include <procsync/segment.hpp>
#include <procsync/semaphore.hpp>
#include <procsync/shared_mutex.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "child.hpp"

namespace procsync_test {

/// Whether process `pid` is stopped (state T in /proc/<pid>/stat).
inline bool stopped_now(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  const std::string all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const auto p = all.rfind(')');  // the name may hold anything: the state follows its last ')'
  return p != std::string::npos && p + 2 < all.size() && all[p + 2] == 'T';
}

/// A queue hook for a child: stops it (SIGSTOP) inside its next push or send,
/// once that call holds its slot.
inline void stop_holding_a_slot(procsync::detail::queue_step s) {
  if (s == procsync::detail::queue_step::push_claimed || s == procsync::detail::queue_step::send_reserved)
    ::raise(SIGSTOP);
}

/// The items of the scene's "stuck" queue (a class: its kind spells its size).
struct scene_item {
  static constexpr const char* kind_name = "test::scene_item";
  std::int64_t id = 0;
  char tag[16] = {};
};

/// Shared flags the scene's children and the parent hand each other.
struct scene_control {
  static constexpr const char* kind_name = "test::scene_control";
  std::atomic<int> high_pid{0};     // which deadlock child has the higher TID
  std::atomic<int> dl_holding{0};   // deadlock children holding their first lock
  std::atomic<int> low_may_go{0};   // the parent stopped the high one
  std::atomic<int> audit_result{0}; // 1: refused with lock_order_violation, 2: something else
};

class lock_scene {
 public:
  std::string name;
  pid_t holder = 0, waiter = 0, victim = 0, poisoner = 0, permits = 0, party = 0, reader = 0;
  pid_t transfer = 0, audit = 0, dl_high = 0, dl_low = 0;
  pid_t producer = 0, consumer = 0, pusher = 0, sender = 0;

  explicit lock_scene(const std::string& segment_name) : name(segment_name) {
    namespace ps = procsync;
    seg_.emplace(ps::create_only, name, 8u << 20);
    auto& s = *seg_;
    auto& held = s.construct<ps::mutex>("held");
    auto& orphaned = s.construct<ps::mutex>("orphaned");
    auto& poisoned = s.construct<ps::mutex>("poisoned");
    s.construct<ps::mutex>("free");
    auto& seats = s.construct<ps::undo_semaphore<4, 8>>("seats", ps::undo, 4);
    s.construct<ps::event>("door", ps::event::reset_mode::manual, true);
    auto& gate = s.construct<ps::barrier>("gate", 3);
    auto& table = s.construct<ps::shared_mutex>("table");
    auto& reg = s.construct<ps::deadlock_registry>("registry", std::chrono::milliseconds(200));
    auto& ledger = s.construct<ps::checked_mutex>("ledger", reg.define_class("ledger"));
    auto& accounts = s.construct<ps::checked_mutex>("accounts", reg.define_class("accounts"));
    auto& left = s.construct<ps::mutex>("left");
    auto& right = s.construct<ps::mutex>("right");
    auto& ctl = s.construct<scene_control>("control");
    auto& jobs = s.construct<ps::queue<std::int64_t, 8>>("jobs");
    inbox_ = &s.construct<ps::queue<std::int64_t, 4>>("inbox");
    auto& stuck = s.construct<ps::queue<scene_item, 4>>("stuck");
    auto& mail = s.construct<ps::message_queue<64, 16>>("mail");
    ctl_ = &ctl;

    holder = keep(fork_child([&] {
      named("ps-holder");
      held.lock();
      return idle();
    }));
    need(eventually([&] { return held.holder_tid() == static_cast<std::uint32_t>(holder); }), "holder holds");
    waiter = keep(fork_child([&] {
      named("ps-waiter");
      held.lock();  // after the holder's death (the test kills it): holds it, inconsistent
      return idle();
    }));
    need(eventually([&] { return (held.lock_word() & procsync::detail::word_waiters) != 0 && blocked_in_futex(waiter); }),
         "waiter sleeps");
    // Waiting longer than the starvation bound, it reserves the lock (eventual fairness).
    need(eventually([&] { return held.heir_tid() == static_cast<std::uint32_t>(waiter); }), "waiter reserves it");

    victim = keep(fork_child([&] {
      named("ps-victim");
      orphaned.lock();
      return idle();
    }));
    need(eventually([&] { return orphaned.holder_tid() == static_cast<std::uint32_t>(victim); }), "victim holds");
    kill_and_reap(victim);

    poisoner = keep(fork_child([&] {
      named("ps-poisoner");
      poisoned.lock();
      return idle();
    }));
    need(eventually([&] { return poisoned.holder_tid() == static_cast<std::uint32_t>(poisoner); }), "poisoner holds");
    kill_and_reap(poisoner);
    need(poisoned.lock_robust() == ps::lock_status::owner_died, "poisoned: owner died");
    poisoned.unlock();  // without consistent(): not recoverable

    permits = keep(fork_child([&] {
      named("ps-permits");
      seats.acquire();
      seats.acquire();
      return idle();
    }));
    need(eventually([&] { return seats.value() == 2; }), "permits taken");

    party = keep(fork_child([&] {
      named("ps-party");
      (void)gate.wait();
      return 0;
    }));
    need(eventually([&] { return gate.n_waiting() == 1 && gate.sleepers() == 1; }), "party waits");

    reader = keep(fork_child([&] {
      named("ps-reader");
      table.lock_shared();
      return idle();
    }));
    need(eventually([&] { return table.reader_count() == 1; }), "reader holds a share");

    // Lock order: transfer records ledger -> accounts, audit is refused.
    transfer = fork_child([&] {
      named("transfer");
      ps::install_deadlock_detector(reg, "transfer");
      std::lock_guard a(ledger);
      std::lock_guard b(accounts);
      return 0;
    });
    need(wait_exit_code(transfer) == 0, "transfer ran");
    audit = fork_child([&] {
      named("audit");
      ps::install_deadlock_detector(reg, "audit");
      std::lock_guard a(accounts);
      try {
        std::lock_guard b(ledger);
      } catch (const ps::error& e) {
        ctl.audit_result = e.code() == ps::errc::lock_order_violation ? 1 : 2;
        return 0;
      }
      ctl.audit_result = 2;
      return 0;
    });
    need(wait_exit_code(audit) == 0 && ctl.audit_result == 1, "audit refused");

    // A live deadlock that nobody breaks: see the header comment.
    const auto dl = [&](const char* first_name) {
      return fork_child([&, first_name] {
        while (ctl.high_pid.load() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        const bool high = ctl.high_pid.load() == ::getpid();
        named(high ? "ps-dl-high" : "ps-dl-low");
        (void)first_name;
        ps::install_deadlock_detector(reg, high ? "dl-high" : "dl-low");
        ps::mutex& mine = high ? right : left;
        ps::mutex& other = high ? left : right;
        mine.lock();
        ctl.dl_holding.fetch_add(1);
        if (!high)
          while (ctl.low_may_go.load() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        while (ctl.dl_holding.load() < 2) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        try {
          other.lock();
          other.unlock();
        } catch (const ps::error&) {
        }
        mine.unlock();
        return 0;
      });
    };
    const pid_t a = keep(dl("a")), b = keep(dl("b"));
    dl_high = a > b ? a : b;
    dl_low = a > b ? b : a;
    ctl.high_pid = dl_high;
    // The high one waits for left (held by the low one) and publishes its wait
    // entry; then it is stopped before the low one closes the cycle.
    need(eventually([&] { return left.holder_tid() == static_cast<std::uint32_t>(dl_low); }), "low holds left");
    need(eventually([&] {
           auto& g = ps::detail_deadlock_access::graph_of(reg);
           for (const auto& w : g.waits)
             if (w.waiter.load() == static_cast<std::uint32_t>(dl_high) && w.holder.load() == static_cast<std::uint32_t>(dl_low))
               return true;
           return false;
         }),
         "high published its wait");
    ::kill(dl_high, SIGSTOP);
    ctl.low_may_go = 1;
    need(eventually([&] {
           auto& g = ps::detail_deadlock_access::graph_of(reg);
           for (const auto& w : g.waits)
             if (w.waiter.load() == static_cast<std::uint32_t>(dl_low) && w.holder.load() == static_cast<std::uint32_t>(dl_high))
               return true;
           return false;
         }),
         "low published its wait");

    producer = fork_child([&] {
      named("ps-producer");
      for (std::int64_t i = 1; i <= 5; ++i) jobs.push(i);
      return 0;
    });
    need(wait_exit_code(producer) == 0, "producer pushed 5 items");
    consumer = keep(fork_child([&] {
      named("ps-consumer");
      try {
        (void)inbox_->pop();
      } catch (const ps::error& e) {
        return e.code() == ps::errc::queue_closed ? 0 : 2;
      }
      return 1;  // an item nobody pushed
    }));
    need(eventually([&] { return blocked_in_futex(consumer); }), "consumer sleeps in pop()");
    pusher = keep(fork_child([&] {
      named("ps-pusher");
      stuck.push(scene_item{1, "one"});
      stuck.push(scene_item{2, "two"});
      ps::detail::queue_test_hook.store(&stop_holding_a_slot);
      stuck.push(scene_item{3, "three"});  // stopped inside, holding slot 2
      return idle();
    }));
    need(eventually([&] { return stopped_now(pusher); }), "pusher stopped inside its push");
    sender = keep(fork_child([&] {
      named("ps-sender");
      const std::string texts[] = {"first", "second message", "third"};
      for (const std::string& t : texts) mail.send(std::as_bytes(std::span(t.data(), t.size())), 1);
      ps::detail::queue_test_hook.store(&stop_holding_a_slot);
      mail.send(std::as_bytes(std::span(texts[0].data(), texts[0].size())));  // stopped inside, slot reserved
      return idle();
    }));
    need(eventually([&] { return stopped_now(sender); }), "sender stopped inside its send");
  }

  /// Closes "inbox" from a child process ("ps-closer"); returns once the
  /// consumer sleeping in it woke with errc::queue_closed and exited.
  void close_inbox() {
    const pid_t closer = fork_child([&] {
      named("ps-closer");
      inbox_->close();
      return 0;
    });
    need(wait_exit_code(closer) == 0, "closer closed the inbox");
    need(wait_exit_code(consumer) == 0, "consumer woke with queue_closed");
    forget(consumer);
  }

  /// Lets the stopped high child go on: it finds the cycle, is the victim
  /// (errc::deadlock_detected), and both children finish. Returns once they have.
  void resume_deadlock() {
    ::kill(dl_high, SIGCONT);
    need(wait_exit_code(dl_high) == 0 && wait_exit_code(dl_low) == 0, "deadlock children finished");
    forget(dl_high);
    forget(dl_low);
  }

  procsync::named_segment& segment() { return *seg_; }

  ~lock_scene() { cleanup(); }

  lock_scene(const lock_scene&) = delete;
  lock_scene& operator=(const lock_scene&) = delete;

 private:
  static void named(const char* comm) { ::prctl(PR_SET_NAME, comm, 0, 0, 0); }
  static int idle() {
    for (;;) ::pause();
  }
  void cleanup() noexcept {
    for (const pid_t p : children_) {
      ::kill(p, SIGKILL);
      ::kill(p, SIGCONT);
      (void)wait_status(p);
    }
    children_.clear();
    try {
      procsync::named_segment::remove(name);
    } catch (...) {
    }
  }
  void need(bool ok, const char* what) {
    if (!ok) {
      cleanup();  // leave nothing behind
      throw std::runtime_error(std::string("lock_scene: ") + what);
    }
  }
  pid_t keep(pid_t p) {
    children_.push_back(p);
    return p;
  }
  void forget(pid_t p) { std::erase(children_, p); }
  void kill_and_reap(pid_t p) {
    ::kill(p, SIGKILL);
    (void)wait_status(p);
    forget(p);
  }

  std::optional<procsync::named_segment> seg_;
  scene_control* ctl_ = nullptr;
  procsync::queue<std::int64_t, 4>* inbox_ = nullptr;
  std::vector<pid_t> children_;
};

}  // namespace procsync_test
