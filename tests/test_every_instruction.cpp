// Kills one operation at every instruction, one run per instruction.
//
// The kill-point harness (killpoint.cpp) kills at every futex call and at a
// few sampled instructions after one. A commit protocol can still be wrong at
// an instruction no sample lands on: a journal committed one store too early
// loses a permit only when the process dies between two plain stores. Here a
// single process runs one operation between two markers (tests/support/
// killpoint.hpp); run n single-steps n instructions past the first marker and
// SIGKILLs it there, then the parent checks the structure's invariant. n goes
// 1, 2, 3, ... until the operation completes before the kill, so every
// instruction of the operation (and of everything it calls) is a kill point.
// Each target first does the operation once untraced, so the sweep covers the
// steady state, not the process's first-use set-up (thread identity, robust
// list registration), which the other tests kill often enough.
#define BOOST_TEST_MODULE every_instruction
#include <boost/test/unit_test.hpp>

#include <sys/wait.h>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>

#include <procsync/anonymous.hpp>
#include <procsync/message_queue.hpp>
#include <procsync/mutex.hpp>
#include <procsync/queue.hpp>
#include <procsync/shared_mutex.hpp>
#include <procsync/shared_value.hpp>
#include <procsync/undo_semaphore.hpp>

#include "killpoint.hpp"

namespace {

using namespace killpoint;
namespace utf = boost::unit_test;

// Under AddressSanitizer every instruction is several, and a sweep costs the
// square of its length: there it kills every tenth instruction (the plain
// build, which CI also runs, kills every one). The sanitizer run is for
// memory errors on the recovery paths, which a tenth of the points reach.
#if defined(__SANITIZE_ADDRESS__)
constexpr int stride = 10;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr int stride = 10;
#else
constexpr int stride = 1;
#endif
#else
constexpr int stride = 1;
#endif

// Stops a sweep that never completes (an operation that loops forever under
// the tracer would otherwise make it run for ever).
constexpr int max_steps = 60'000;

struct sweep_result {
  int runs = 0;            // kills tried (one per instruction)
  bool completed = false;  // the last run finished the operation before its kill
  std::string failure;     // the first broken invariant, with the instruction number
};

/// For n = 1, 2, ...: makes a fresh State in shared memory, forks a target that runs
/// `prepare(state)`, a marker, `operation(state)`, then sets `finished`;
/// SIGKILLs it n instructions after the marker; then `check(state, n)`
/// returns "" or what is broken. Stops at the first run whose target finished
/// the operation before the kill.
template <class State, class Prepare, class Operation, class Check>
sweep_result sweep(Prepare prepare, Operation operation, Check check) {
  sweep_result r;
  for (int n = 1; n <= max_steps; n += stride) {
    auto st = procsync::make_anonymous<State>();
    auto& s = *st;
    sigchld_blocker blocked;
    const pid_t pid = procsync_test::fork_child([&s, &prepare, &operation] {
      sigchld_blocker::unblock_in_child();
      prepare(s);
      if (!become_target()) return 3;
      mark(s.ctl);
      operation(s);
      s.finished.store(1);
      mark(s.ctl);
      return 0;
    });
    tracer t({pid}, 0, point{point_kind::other, 0, n}, &s.ctl.marker);
    t.set_fault(fault::kill);
    if (!t.attach()) {
      r.failure = "the target could not be traced";
      return r;
    }
    if (!t.run_until([&] { return t.all_exited(); }, now_ns() + 10'000'000'000)) {
      r.failure = "the target neither finished nor died within 10 s at instruction " + std::to_string(n);
      return r;
    }
    ++r.runs;
    if (const std::string broken = check(s, n); !broken.empty()) {
      r.failure = "killed at instruction " + std::to_string(n) + " after the marker: " + broken;
      return r;
    }
    if (s.finished.load() != 0) {
      r.completed = true;
      return r;
    }
  }
  return r;
}

/// One step a target takes on its State: the operation swept, or one of the
/// steps before it.
template <class State>
using step_of = void (*)(State&);

/// Sweeps `operation` on a fresh State, after the `prepare` steps (in order:
/// the untraced first run of the operation, then the state it is swept from),
/// and asserts that every kill kept the invariant `check` and that the sweep
/// reached the end.
template <class State, class Check>
void require_sweep(const char* what, std::initializer_list<step_of<State>> prepare, step_of<State> operation,
                   Check check) {
  if (!supported) return;
  const auto prepare_all = [prepare](State& s) {
    for (const step_of<State> step : prepare) step(s);
  };
  const sweep_result r = sweep<State>(prepare_all, operation, check);
  BOOST_TEST_MESSAGE(what << ": " << r.runs << " instructions killed (every " << stride << ")");
  BOOST_TEST(r.failure.empty(), what << ": " << r.failure);
  BOOST_TEST(r.completed, what << ": the operation never completed within " << max_steps << " instructions");
  BOOST_TEST(r.runs > 10, what << ": only " << r.runs << " instructions: the sweep saw no real work");
}

// --- undo semaphore: a dead holder's permits come back, exactly -------------------

struct undo_state {
  control ctl;
  std::atomic<int> finished{0};
  procsync::undo_semaphore<8, 4> sem{procsync::undo, 3};
};

std::string permits_restored(undo_state& s, int) {
  (void)s.sem.reclaim_dead_holders();
  if (s.sem.value() != 3)
    return "value " + std::to_string(s.sem.value()) + " after reclaiming the dead holder, expected all 3 permits";
  for (std::size_t i = 0; i < 4; ++i)
    if (s.sem.undo_holder(i).second != 0) return "undo slot " + std::to_string(i) + " still records permits";
  return {};
}

void acquire(undo_state& s) { s.sem.acquire(); }
void release(undo_state& s) { s.sem.release(); }

BOOST_AUTO_TEST_CASE(undo_semaphore_acquire_killed_at_every_instruction, *utf::timeout(300)) {
  require_sweep<undo_state>("undo_semaphore::acquire", {acquire, release}, acquire, permits_restored);
}

BOOST_AUTO_TEST_CASE(undo_semaphore_release_killed_at_every_instruction, *utf::timeout(300)) {
  // Holding two permits: the release leaves one held.
  require_sweep<undo_state>("undo_semaphore::release", {acquire, release, acquire, acquire}, release,
                            permits_restored);
}

// --- mutex: a holder killed anywhere in lock() or unlock() never wedges it ----------

struct mutex_state {
  control ctl;
  std::atomic<int> finished{0};
  procsync::mutex m;
};

// The next locker gets the mutex at once: free, or owner_died (then repairable).
std::string next_locker_gets_it(mutex_state& s, int) {
  const procsync::lock_status got = s.m.try_lock_robust();
  if (!procsync::holds(got)) return "the mutex is held by nobody alive, yet try_lock fails";
  if (got == procsync::lock_status::owner_died) s.m.consistent();
  s.m.unlock();
  return {};
}

void lock(mutex_state& s) { s.m.lock(); }
void unlock(mutex_state& s) { s.m.unlock(); }

BOOST_AUTO_TEST_CASE(mutex_lock_killed_at_every_instruction, *utf::timeout(300)) {
  require_sweep<mutex_state>("mutex::lock", {lock, unlock}, lock, next_locker_gets_it);
}

BOOST_AUTO_TEST_CASE(mutex_unlock_killed_at_every_instruction, *utf::timeout(300)) {
  require_sweep<mutex_state>("mutex::unlock", {lock, unlock, lock}, unlock, next_locker_gets_it);
}

// --- shared_value: a writer killed anywhere leaves the old or the new value ---------

struct pair_value {
  std::int64_t a;
  std::int64_t b;  // always -a: a torn value shows
};

struct value_state {
  control ctl;
  std::atomic<int> finished{0};
  procsync::shared_value<pair_value> v{pair_value{1, -1}};
};

std::string old_or_new(value_state& s, int) {
  const pair_value now = s.v.load();
  if (now.b != -now.a) return "torn value {" + std::to_string(now.a) + ", " + std::to_string(now.b) + "}";
  if (now.a != 1 && now.a != 2) return "neither the old nor the new value: a = " + std::to_string(now.a);
  // A later writer is not blocked by the dead one.
  s.v.store(pair_value{3, -3});
  if (s.v.load().a != 3) return "a later store did not take";
  return {};
}

BOOST_AUTO_TEST_CASE(shared_value_store_killed_at_every_instruction, *utf::timeout(300)) {
  require_sweep<value_state>(
      "shared_value<struct>::store", {[](value_state& s) { s.v.store(pair_value{1, -1}); }},
      [](value_state& s) { s.v.store(pair_value{2, -2}); }, old_or_new);
}

// --- queues: an item is entirely in the queue or not at all, no slot is lost -------

struct queue_state {
  control ctl;
  std::atomic<int> finished{0};
  procsync::queue<std::uint64_t, 4> q;
};

// After recovery the queue holds nothing or the one item, and all 4 slots
// still take an item each.
std::string one_item_or_none(queue_state& s, int) {
  (void)s.q.recover();
  if (const std::optional<std::uint64_t> got = s.q.try_pop(); got && *got != 42)
    return "popped " + std::to_string(*got) + ", expected 42 or nothing";
  if (s.q.try_pop()) return "a second item appeared";
  for (std::uint64_t i = 0; i < 4; ++i)
    if (!s.q.try_push(i)) return "slot " + std::to_string(i) + " of 4 is lost: a push fails on a drained queue";
  for (std::uint64_t i = 0; i < 4; ++i)
    if (s.q.try_pop() != i) return "the refill did not come back in order";
  return {};
}

void push_1(queue_state& s) { s.q.push(1); }
void push_42(queue_state& s) { s.q.push(42); }
void pop(queue_state& s) { (void)s.q.pop(); }

BOOST_AUTO_TEST_CASE(queue_push_killed_at_every_instruction, *utf::timeout(300)) {
  require_sweep<queue_state>("queue::push", {push_1, pop}, push_42, one_item_or_none);
}

BOOST_AUTO_TEST_CASE(queue_pop_killed_at_every_instruction, *utf::timeout(300)) {
  // A consumer killed inside pop() may take the item with it (documented: at
  // most one per killed consumer); nothing else may change.
  require_sweep<queue_state>("queue::pop", {push_1, pop, push_42}, pop, one_item_or_none);
}

struct message_state {
  control ctl;
  std::atomic<int> finished{0};
  procsync::message_queue<16, 4> mq;
};

std::span<const std::byte> hello() {
  static constexpr std::array<char, 5> text{'h', 'e', 'l', 'l', 'o'};
  return std::as_bytes(std::span(text));
}

// After the next lock holder's repair: nothing or exactly "hello" at priority
// 7, and all 4 slots take a message each.
std::string one_message_or_none(message_state& s, int) {
  (void)s.mq.recover();
  std::array<std::byte, 16> buf{};
  if (const auto got = s.mq.try_receive(buf)) {
    if (got->size != 5 || got->priority != 7 || std::memcmp(buf.data(), "hello", 5) != 0)
      return "received a message of " + std::to_string(got->size) + " bytes at priority " +
             std::to_string(got->priority) + ", expected \"hello\" at 7 or nothing";
  }
  if (s.mq.try_receive(buf)) return "a second message appeared";
  for (unsigned i = 0; i < 4; ++i)
    if (!s.mq.try_send(hello(), i))
      return "slot " + std::to_string(i) + " of 4 is lost: a send fails on a drained queue";
  for (unsigned i = 4; i-- > 0;) {
    const auto got = s.mq.try_receive(buf);
    if (!got || got->priority != i) return "the refill did not come back by priority";
  }
  return {};
}

BOOST_AUTO_TEST_CASE(message_queue_send_killed_at_every_instruction, *utf::timeout(300)) {
  require_sweep<message_state>(
      "message_queue::send",
      {[](message_state& s) {
        std::array<std::byte, 16> buf{};
        s.mq.send(hello(), 1);
        (void)s.mq.receive(buf);
      }},
      [](message_state& s) { s.mq.send(hello(), 7); }, one_message_or_none);
}

// --- shared_mutex: a reader stopped anywhere in lock_shared() never shares with a writer --
//
// Not a kill: the reader is frozen n instructions into lock_shared(), a writer
// takes the lock if it can, the reader goes on. If the writer got in, the
// reader must stay out until the writer leaves. This is the Dekker pair of
// the reader's slot and the writer's gate, tested at every instruction
// between them (a reader that skipped its second look at the gate would get
// in only when frozen between its first look and its slot).

struct shared_state {
  control ctl;
  std::atomic<int> inside{0};  // the reader's lock_shared() returned
  procsync::shared_mutex rw;
};

// How long a reader the writer let through would need to show it: once
// resumed it runs a few dozen instructions.
constexpr std::int64_t reader_show_ns = 50'000'000;

BOOST_AUTO_TEST_CASE(shared_mutex_reader_frozen_at_every_instruction_meets_no_writer, *utf::timeout(300)) {
  if (!supported) return;
  int runs = 0, writer_got_in = 0;
  bool completed = false;
  // Every instruction in both builds: a run is short (no kill, no recovery).
  for (int n = 1; n <= max_steps && !completed; ++n) {
    auto st = procsync::make_anonymous<shared_state>();
    auto& s = *st;
    sigchld_blocker blocked;
    const pid_t pid = procsync_test::fork_child([&s] {
      sigchld_blocker::unblock_in_child();
      s.rw.lock_shared();  // the untraced first use
      s.rw.unlock_shared();
      if (!become_target()) return 3;
      mark(s.ctl);
      s.rw.lock_shared();
      s.inside.store(1);
      mark(s.ctl);
      s.rw.unlock_shared();
      return 0;
    });
    tracer t({pid}, 0, point{point_kind::other, 0, n}, &s.ctl.marker);
    t.set_fault(fault::stop);
    BOOST_REQUIRE_MESSAGE(t.attach(), "the target could not be traced");
    BOOST_REQUIRE_MESSAGE(t.run_until([&] { return t.hit() || t.all_exited(); }, now_ns() + 10'000'000'000),
                          "instruction " << n << ": the reader neither stopped nor finished within 10 s");
    ++runs;
    completed = !t.hit() || s.inside.load() != 0;
    if (t.hit() && s.rw.try_lock()) {
      ++writer_got_in;
      t.resume_target();
      const bool entered = t.run_until([&] { return s.inside.load() != 0; }, now_ns() + reader_show_ns);
      BOOST_TEST(!entered, "frozen at instruction " << n << ": the reader got in while a writer held the lock");
      s.rw.unlock();
    } else {
      t.resume_target();
    }
    BOOST_REQUIRE_MESSAGE(t.run_until([&] { return t.all_exited(); }, now_ns() + 10'000'000'000),
                          "instruction " << n << ": the reader did not finish within 10 s");
    BOOST_TEST((WIFEXITED(t.status(0)) && WEXITSTATUS(t.status(0)) == 0),
               "instruction " << n << ": the reader ended with status " << t.status(0));
    BOOST_TEST(s.inside.load() == 1);
  }
  BOOST_TEST_MESSAGE("shared_mutex::lock_shared: " << runs << " instructions frozen, the writer got in at "
                                                   << writer_got_in);
  BOOST_TEST(completed, "lock_shared never completed within " << max_steps << " instructions");
  BOOST_TEST(writer_got_in > 0, "no freeze let a writer in: the sweep tested nothing");
  BOOST_TEST(runs > 10);
}

}  // namespace
