// Exact-point kills and stops for procsync::queue (and message_queue): the
// header's test hook (PROCSYNC_QUEUE_TEST_HOOK) calls back at every step of
// every operation, and the child SIGKILLs or SIGSTOPs itself exactly there.
// Then random kills of whole producer/consumer crews with an exactly-once
// accounting of every item.
#define BOOST_TEST_MODULE procsync queue crashes
#define PROCSYNC_QUEUE_TEST_HOOK 1
#include <boost/test/unit_test.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <array>
#include <thread>
#include <vector>

#include <procsync/message_queue.hpp>
#include <procsync/queue.hpp>
#include <procsync/segment.hpp>

#include "child.hpp"
#include "errors.hpp"

using namespace procsync_test;
using namespace std::chrono_literals;
using step = procsync::detail::queue_step;

namespace {

// Process-local (each child sets its own after fork).
step hook_step{};
int hook_countdown = 0;
int hook_signal = 0;

void hook(step s) {
  if (s == hook_step && --hook_countdown == 0) ::raise(hook_signal);
}

/// In a child: the `nth` time `at` is reached, raise `sig` (SIGKILL or SIGSTOP).
void arm(step at, int sig, int nth = 1) {
  hook_step = at;
  hook_signal = sig;
  hook_countdown = nth;
  procsync::detail::queue_test_hook.store(&hook);
}

/// Runs `op` in a child that SIGKILLs itself the `nth` time it reaches step
/// `at`. The child's exit code: -SIGKILL when it died there, 1 when `op`
/// finished without reaching it.
template <class Op>
int die_at(step at, Op&& op, int nth = 1) {
  return wait_exit_code(fork_child([&] {
    arm(at, SIGKILL, nth);
    op();
    return 1;
  }));
}

/// Forks a child that runs `op` and stops (SIGSTOP) the first time it reaches
/// step `at`; returns it once it is seen stopped. After a SIGCONT it finishes
/// `op` and exits 0.
template <class Op>
pid_t stopped_at(step at, Op&& op) {
  const pid_t pid = fork_child([&] {
    arm(at, SIGSTOP, 1);
    op();
    return 0;
  });
  BOOST_REQUIRE(eventually([&] { return is_stopped(pid); }));
  return pid;
}

using q4 = procsync::queue<std::uint64_t, 4>;

/// A queue and a destination for its pop_into() callers.
struct into_block {
  q4 q;
  procsync::handoff<std::uint64_t> dst;
};

/// Items from..to pass through the ring one at a time: the slot a dead or
/// stopped caller holds blocks no one.
void items_pass(q4& q, std::uint64_t from, std::uint64_t to) {
  for (std::uint64_t i = from; i <= to; ++i) {
    BOOST_TEST(q.try_push_for(i, 5s));
    BOOST_TEST(q.try_pop_for(5s).value_or(0) == i);
  }
}

/// Every slot usable again: exactly capacity() pushes fit, then all come out.
void check_whole_ring(q4& q) {
  int fitted = 0;
  while (fitted < 8 && q.try_push_for(1000 + fitted, 200ms)) ++fitted;  // timed: a stuck slot is dealt with
  BOOST_TEST(fitted == 4);
  for (int i = 0; i < fitted; ++i) BOOST_TEST(q.pop() == std::uint64_t(1000 + i));
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_producer_killed_at_each_step_leaves_its_item_whole_or_absent) {
  for (step at : {step::push_claimed, step::push_copied, step::push_published}) {
    auto q = procsync::make_anonymous<q4>();
    BOOST_TEST(die_at(at, [&] {
      for (std::uint64_t i = 1; i <= 3; ++i) q->push(i);
    }, 3) == -SIGKILL);
    BOOST_TEST(q->pop() == 1u);
    BOOST_TEST(q->pop() == 2u);
    // Blocking pop: after one re-arm slice it finds the dead owner and voids the slot.
    const auto third = q->try_pop_for(300ms);
    if (at == step::push_published) {
      BOOST_TEST((third && *third == 3u));
    } else {
      BOOST_TEST(!third.has_value());
    }
    check_whole_ring(*q);
  }
}

BOOST_AUTO_TEST_CASE(a_producer_killed_with_the_ring_full_is_recovered_by_blocked_producers) {
  auto q = procsync::make_anonymous<q4>();
  BOOST_TEST(die_at(step::push_copied, [&] { q->push(1); }) == -SIGKILL);
  for (std::uint64_t i = 2; i <= 4; ++i) q->push(i);
  // The ring is full only because of the dead slot: a blocked push recovers it.
  BOOST_TEST(q->try_push_for(5, 5s));
  for (std::uint64_t i = 2; i <= 5; ++i) BOOST_TEST(q->pop() == i);
  BOOST_TEST(!q->try_pop().has_value());
}

// Consumers stop at the first unpublished position, so a dead producer's slot
// hides what was published behind it. On a closed queue no blocked caller
// comes back after a slice for those items: every kind of pop must still get
// them before it says "closed and drained" (found by tests/killpoint.cpp).
BOOST_AUTO_TEST_CASE(a_closed_queue_still_yields_the_items_behind_a_dead_producers_slot) {
  enum class how { pop, try_pop, pop_into, try_pop_into };
  for (how h : {how::pop, how::try_pop, how::pop_into, how::try_pop_into}) {
    auto b = procsync::make_anonymous<into_block>();
    BOOST_TEST(die_at(step::push_copied, [&] { b->q.push(1); }) == -SIGKILL);
    b->q.push(2);
    b->q.close();
    std::uint64_t got = 0;
    const procsync::errc e = error_of([&] {
      switch (h) {
        case how::pop: got = b->q.pop(); break;
        case how::try_pop: got = b->q.try_pop().value_or(0); break;
        case how::pop_into:
          b->q.pop_into(b->dst);
          got = b->dst.take();
          break;
        case how::try_pop_into:
          if (b->q.try_pop_into(b->dst)) got = b->dst.take();
          break;
      }
    });
    BOOST_TEST((e == procsync::errc{}), "pop kind " << static_cast<int>(h) << " threw");
    BOOST_TEST(got == 2u, "pop kind " << static_cast<int>(h));
    BOOST_TEST((error_of([&] { (void)b->q.try_pop(); }) == procsync::errc::queue_closed));
    BOOST_TEST(b->q.size() == 0u);
  }
}

BOOST_AUTO_TEST_CASE(a_consumer_killed_before_its_take_leaves_the_item_after_it_took_it) {
  for (step at : {step::pop_copied, step::pop_taken}) {
    auto q = procsync::make_anonymous<q4>();
    q->push(1);
    q->push(2);
    BOOST_TEST(die_at(at, [&] { (void)q->pop(); }) == -SIGKILL);
    if (at == step::pop_copied) BOOST_TEST(q->pop() == 1u);  // still queued for the others
    BOOST_TEST(q->pop() == 2u);                              // (pop_taken: 1 went with its taker)
    BOOST_TEST(!q->try_pop().has_value());
    check_whole_ring(*q);
  }
}

// pop_into: whatever step its caller dies at, resolve() finds the item in
// exactly one of the queue and the destination.
BOOST_AUTO_TEST_CASE(pop_into_killed_at_each_step_loses_nothing) {
  for (step at : {step::into_receiving, step::into_copied, step::into_claimed, step::into_full, step::into_released}) {
    auto b = procsync::make_anonymous<into_block>();
    b->q.push(7);
    b->q.push(8);
    BOOST_TEST(die_at(at, [&] { b->q.pop_into(b->dst); }) == -SIGKILL);
    const bool in_dst = b->q.resolve(b->dst);
    const bool taken = at != step::into_receiving && at != step::into_copied;
    BOOST_TEST(in_dst == taken);
    using st = procsync::handoff<std::uint64_t>::status;
    BOOST_TEST((b->dst.state() == (taken ? st::full : st::empty)));
    if (taken) BOOST_TEST(b->dst.take() == 7u);
    if (!taken) BOOST_TEST(b->q.pop() == 7u);
    BOOST_TEST(b->q.pop() == 8u);
    BOOST_TEST(!b->q.try_pop().has_value());
    check_whole_ring(b->q);
  }
}

// Until resolve() runs, a dead pop_into caller's slot is passed by the others.
BOOST_AUTO_TEST_CASE(a_dead_pop_into_slot_is_skipped_until_resolved) {
  auto b = procsync::make_anonymous<into_block>();
  b->q.push(1);
  BOOST_TEST(die_at(step::into_claimed, [&] { b->q.pop_into(b->dst); }) == -SIGKILL);
  items_pass(b->q, 2, 6);  // 5 items through a ring of 4 whose one slot is held
  BOOST_TEST(b->q.resolve(b->dst));
  BOOST_TEST(b->dst.take() == 1u);
  check_whole_ring(b->q);
}

BOOST_AUTO_TEST_CASE(a_stopped_producer_holds_only_its_slot_and_its_item_arrives_once) {
  for (step at : {step::push_claimed, step::push_copied}) {
    auto q = procsync::make_anonymous<q4>();
    const pid_t producer = stopped_at(at, [&] { q->push(100); });
    items_pass(*q, 1, 10);  // the others go on while it is stopped
    ::kill(producer, SIGCONT);
    BOOST_TEST(wait_exit_code(producer) == 0);
    BOOST_TEST(*q->try_pop_for(5s) == 100u);
    BOOST_TEST(!q->try_pop().has_value());
    check_whole_ring(*q);
  }
}

BOOST_AUTO_TEST_CASE(a_stopped_consumer_blocks_no_one_and_takes_each_item_once) {
  struct block {
    q4 q;
    std::atomic<std::uint64_t> got{0};
  };
  auto b = procsync::make_anonymous<block>();
  b->q.push(1);
  const pid_t consumer = stopped_at(step::pop_copied, [&] { b->got.store(b->q.pop()); });
  BOOST_TEST(b->q.pop() == 1u);  // the item it copied is still ours to take
  for (std::uint64_t i = 2; i <= 9; ++i) {
    b->q.push(i);
    BOOST_TEST(b->q.pop() == i);
  }
  b->q.push(10);
  ::kill(consumer, SIGCONT);
  BOOST_TEST(wait_exit_code(consumer) == 0);
  BOOST_TEST(b->got.load() == 10u);  // its stale copy was discarded
  BOOST_TEST(!b->q.try_pop().has_value());
}

BOOST_AUTO_TEST_CASE(resolve_refuses_a_hand_off_whose_caller_is_stopped_and_the_ring_goes_on) {
  auto b = procsync::make_anonymous<into_block>();
  b->q.push(1);
  const pid_t consumer = stopped_at(step::into_claimed, [&] { b->q.pop_into(b->dst); });
  std::string what;
  BOOST_TEST((error_of([&] { (void)b->q.resolve(b->dst); }, &what) == procsync::errc::invalid_argument));
  BOOST_TEST(what.find("whose pop_into() caller died") != std::string::npos);
  BOOST_TEST(what.find("still running or stopped") != std::string::npos);
  items_pass(b->q, 2, 7);
  ::kill(consumer, SIGCONT);
  BOOST_TEST(wait_exit_code(consumer) == 0);
  BOOST_TEST(b->dst.take() == 1u);
  check_whole_ring(b->q);
}

// Random kills and stops of a crew of producers and consumers: every item
// pushed is received exactly once, except at most one per consumer killed
// inside pop(); none lost through pop_into.
BOOST_AUTO_TEST_CASE(random_kills_every_item_exactly_once) {
  constexpr int max_incarnations = 256, max_items = 1 << 16;
  constexpr int producers = 3, poppers = 2;
  struct role_state {
    std::atomic<std::int32_t> pid{0};
    std::atomic<std::uint32_t> incarnation{0};
  };
  struct block {
    procsync::queue<std::uint64_t, 8> q;
    procsync::handoff<std::uint64_t> dst;  // the pop_into consumer's (all its incarnations')
    std::atomic<std::uint32_t> stop{0};
    std::atomic<std::uint64_t> progress{0};
    std::atomic<std::uint32_t> next_incarnation{0};
    std::atomic<std::uint32_t> attempted[max_incarnations] = {};  // producer: items started
    std::atomic<std::uint32_t> done[max_incarnations] = {};       // producer: items whose push returned
    std::atomic<std::uint32_t> inflight[max_incarnations] = {};   // popper: inside pop()
    std::atomic<std::uint8_t> seen[max_incarnations][max_items] = {};
    std::atomic<std::uint8_t> seen_into[max_incarnations][max_items] = {};
  };
  auto b = procsync::make_anonymous<block>();
  const auto key = [](std::uint32_t inc, std::uint32_t s) { return std::uint64_t{inc} << 32 | s; };
  const auto record_into = [&](std::uint64_t k) {
    b->seen_into[k >> 32][k & 0xffffffffu].store(1);  // idempotent: a rerun after a death is harmless
  };
  // role: 0..producers-1 producers, then poppers, then the pop_into consumer.
  const auto start = [&](int role) -> pid_t {
    const std::uint32_t inc = b->next_incarnation.fetch_add(1);
    return fork_child([&, role, inc] {
      if (role < producers) {
        for (std::uint32_t s = 0; s < max_items && !b->stop.load(); ++s) {
          b->attempted[inc].store(s + 1);
          bool pushed = false;
          while (!pushed && !b->stop.load()) pushed = b->q.try_push_for(key(inc, s), 20ms);
          if (!pushed) break;
          b->done[inc].store(s + 1);
          b->progress.fetch_add(1);
        }
        while (!b->stop.load()) std::this_thread::sleep_for(1ms);  // out of numbers: idle until told
      } else if (role < producers + poppers) {
        while (!b->stop.load()) {
          b->inflight[inc].store(1);
          const auto got = b->q.try_pop_for(20ms);
          if (got) b->seen[*got >> 32][*got & 0xffffffffu].fetch_add(1);
          b->inflight[inc].store(0);
          b->progress.fetch_add(1);
        }
      } else {
        // A successor first finishes what its predecessor left.
        (void)b->q.resolve(b->dst);
        if (b->dst.state() == procsync::handoff<std::uint64_t>::status::full) {
          record_into(b->dst.value());
          b->dst.clear();
        }
        while (!b->stop.load()) {
          if (b->q.try_pop_into_for(b->dst, 20ms)) {
            record_into(b->dst.value());
            b->dst.clear();
          }
          b->progress.fetch_add(1);
        }
      }
      return 0;
    });
  };
  constexpr int roles = producers + poppers + 1;
  std::vector<pid_t> pids(roles);
  std::vector<std::uint32_t> incarnation_of(roles);
  for (int r = 0; r < roles; ++r) {
    incarnation_of[r] = b->next_incarnation.load();
    pids[r] = start(r);
  }
  std::mt19937 rng(std::random_device{}());
  BOOST_TEST_MESSAGE("seed-free run; kills follow");
  int kills = 0, stops = 0, popper_deaths_in_call = 0;
  const auto until = std::chrono::steady_clock::now() + 4s;
  std::uint64_t last_progress = 0;
  auto last_change = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() < until && b->next_incarnation.load() < max_incarnations - roles) {
    // The behaviour under test: faults at random instants, a stop for a random while.
    std::this_thread::sleep_for(std::chrono::microseconds(2000 + rng() % 20000));
    const int r = int(rng() % roles);
    if (rng() % 4 == 0) {
      ::kill(pids[r], SIGSTOP);
      std::this_thread::sleep_for(std::chrono::microseconds(rng() % 100000));
      ::kill(pids[r], SIGCONT);
      ++stops;
    } else {
      ::kill(pids[r], SIGKILL);
      BOOST_REQUIRE(wait_exit_code(pids[r]) == -SIGKILL);
      ++kills;
      if (r >= producers && r < producers + poppers && b->inflight[incarnation_of[r]].load() != 0)
        ++popper_deaths_in_call;
      incarnation_of[r] = b->next_incarnation.load();
      pids[r] = start(r);
    }
    const std::uint64_t p = b->progress.load();
    if (p != last_progress) {
      last_progress = p;
      last_change = std::chrono::steady_clock::now();
    }
    BOOST_REQUIRE_MESSAGE(std::chrono::steady_clock::now() - last_change < 20s, "no progress for 20 s");
  }
  b->stop.store(1);
  for (pid_t p : pids) {
    ::kill(p, SIGCONT);
    BOOST_TEST(wait_exit_code(p) == 0);
  }
  // Drain: blocking pops deal with slots that dead producers left.
  (void)b->q.resolve(b->dst);
  if (b->dst.state() == procsync::handoff<std::uint64_t>::status::full) record_into(b->dst.take());
  while (const auto got = b->q.try_pop_for(200ms)) b->seen[*got >> 32][*got & 0xffffffffu].fetch_add(1);
  long delivered = 0, missing = 0, duplicated = 0, maybe = 0;
  const std::uint32_t incarnations = b->next_incarnation.load();
  for (std::uint32_t inc = 0; inc < incarnations; ++inc) {
    const std::uint32_t attempted = b->attempted[inc].load(), done = b->done[inc].load();
    for (std::uint32_t s = 0; s < attempted; ++s) {
      const int n = b->seen[inc][s].load() + b->seen_into[inc][s].load();
      delivered += n;
      if (n > 1) ++duplicated;
      if (n == 0 && s < done) ++missing;
      if (n == 0 && s >= done) ++maybe;  // its producer died inside push: either outcome is right
    }
  }
  BOOST_TEST_MESSAGE("kills " << kills << ", stops " << stops << ", delivered " << delivered << ", popper deaths in pop "
                              << popper_deaths_in_call << ", missing " << missing << ", pushes cut short " << maybe);
  BOOST_TEST(kills > 10);
  BOOST_TEST(delivered > 1000);
  BOOST_TEST(duplicated == 0);
  BOOST_TEST(missing <= popper_deaths_in_call);
}

// --- message_queue ------------------------------------------------------------

namespace {

using mq4 = procsync::message_queue<16, 4>;

std::span<const std::byte> bytes_of(std::string_view s) { return std::as_bytes(std::span(s.data(), s.size())); }

/// Everything queued, in order, as "text/priority" (timed receives: a slot a
/// dead sender reserved is freed on the way).
std::vector<std::string> drain(mq4& mq) {
  std::vector<std::string> out;
  std::array<std::byte, 16> buf{};
  while (const auto got = mq.try_receive_for(buf, 100ms))
    out.push_back(std::string(reinterpret_cast<const char*>(buf.data()), got->size) + "/" +
                  std::to_string(got->priority));
  return out;
}

void check_whole_queue(mq4& mq) {
  int fitted = 0;
  while (fitted < 8 && mq.try_send_for(bytes_of("fill"), unsigned(fitted), 200ms)) ++fitted;
  BOOST_TEST(fitted == 4);
  const auto all = drain(mq);
  BOOST_TEST(all.size() == 4u);
  if (all.size() == 4u) BOOST_TEST(all.front() == "fill/3");
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_sender_killed_at_each_step_leaves_its_message_whole_or_absent) {
  for (step at : {step::send_reserved, step::send_copied, step::send_journaled, step::send_queued}) {
    auto mq = procsync::make_anonymous<mq4>();
    mq->send(bytes_of("a"), 1);
    mq->send(bytes_of("b"), 2);
    BOOST_TEST(die_at(at, [&] { mq->send(bytes_of("killed"), 5); }) == -SIGKILL);  // sifts to the top of the heap
    const auto all = drain(*mq);
    const std::vector<std::string> with = {"killed/5", "b/2", "a/1"}, without = {"b/2", "a/1"};
    BOOST_TEST((all == (at == step::send_queued ? with : without)));
    check_whole_queue(*mq);
  }
}

BOOST_AUTO_TEST_CASE(a_receiver_killed_before_its_commit_leaves_the_message_after_it_took_it) {
  for (step at : {step::receive_copied, step::receive_committed}) {
    auto mq = procsync::make_anonymous<mq4>();
    mq->send(bytes_of("a"), 1);
    mq->send(bytes_of("c"), 3);
    mq->send(bytes_of("b"), 2);
    BOOST_TEST(die_at(at, [&] {
      std::array<std::byte, 16> buf{};
      (void)mq->receive(buf);
    }) == -SIGKILL);
    const auto all = drain(*mq);
    const std::vector<std::string> kept = {"c/3", "b/2", "a/1"}, taken = {"b/2", "a/1"};
    BOOST_TEST((all == (at == step::receive_copied ? kept : taken)));
    check_whole_queue(*mq);
  }
}

BOOST_AUTO_TEST_CASE(a_stopped_sender_holds_only_its_slot) {
  auto mq = procsync::make_anonymous<mq4>();
  const pid_t sender = stopped_at(step::send_copied, [&] { mq->send(bytes_of("late"), 9); });
  // Three slots are left, and the others use them.
  for (int i = 0; i < 3; ++i) BOOST_TEST(mq->try_send_for(bytes_of("x"), 0, 5s));
  BOOST_TEST(!mq->try_send_for(bytes_of("x"), 0, 100ms));  // its slot stays its own
  BOOST_TEST(drain(*mq).size() == 3u);
  ::kill(sender, SIGCONT);
  BOOST_TEST(wait_exit_code(sender) == 0);
  const auto all = drain(*mq);
  BOOST_TEST((all == std::vector<std::string>{"late/9"}));
  check_whole_queue(*mq);
}
