#define BOOST_TEST_MODULE procsync queue
#include <boost/test/unit_test.hpp>

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

#include <procsync/queue.hpp>
#include <procsync/segment.hpp>

#include "child.hpp"
#include "errors.hpp"

using namespace procsync_test;
using namespace std::chrono_literals;
using clk = std::chrono::steady_clock;

namespace {

struct item {
  std::uint32_t producer;
  std::uint32_t seq;
  std::uint64_t check;  // a function of the two: a torn item fails it
  static constexpr const char* kind_name = "test::item";
};
constexpr std::uint64_t check_of(std::uint32_t p, std::uint32_t s) {
  return (std::uint64_t{p} * 0x9e3779b97f4a7c15ull) ^ (std::uint64_t{s} * 0xc2b2ae3d27d4eb4full);
}
item make_item(std::uint32_t p, std::uint32_t s) { return {p, s, check_of(p, s)}; }

}  // namespace

BOOST_AUTO_TEST_CASE(fifo_capacity_and_size_in_one_process) {
  auto q = procsync::make_anonymous<procsync::queue<std::uint64_t, 4>>();
  static_assert(procsync::queue<std::uint64_t, 4>::capacity() == 4);
  static_assert(std::is_trivially_destructible_v<procsync::queue<std::uint64_t, 4>>);
  BOOST_TEST(q->size() == 0u);
  BOOST_TEST(!q->try_pop().has_value());
  for (std::uint64_t i = 1; i <= 4; ++i) BOOST_TEST(q->try_push(i));
  BOOST_TEST(!q->try_push(5));
  BOOST_TEST(q->size() == 4u);
  // Many laps: positions wrap the ring over and over.
  for (std::uint64_t i = 1; i <= 1000; ++i) {
    BOOST_TEST(q->pop() == i);
    q->push(i + 4);
  }
  for (std::uint64_t i = 1001; i <= 1004; ++i) BOOST_TEST(*q->try_pop() == i);
  BOOST_TEST(!q->try_pop().has_value());
  BOOST_TEST(q->size() == 0u);
}

BOOST_AUTO_TEST_CASE(capacity_one_works) {
  auto q = procsync::make_anonymous<procsync::queue<int, 1>>();
  for (int i = 0; i < 100; ++i) {
    BOOST_TEST(q->try_push(i));
    BOOST_TEST(!q->try_push(i));
    BOOST_TEST(q->pop() == i);
  }
}

// 4 producers and 4 consumers, every item received exactly once, untorn, and
// in each producer's order at every consumer.
template <std::size_t Capacity>
void many_producers_many_consumers(int per_producer_arg) {
  constexpr int producers = 4, consumers = 4, per_producer = 50000;
  BOOST_REQUIRE(per_producer_arg <= per_producer);
  struct block {
    procsync::queue<item, Capacity> q;
    std::atomic<std::uint8_t> seen[producers][per_producer] = {};
    std::atomic<int> bad{0};
    std::atomic<int> received{0};
  };
  auto b = procsync::make_anonymous<block>();
  std::vector<pid_t> kids;
  for (int p = 0; p < producers; ++p)
    kids.push_back(fork_child([&, p] {
      for (int s = 0; s < per_producer_arg; ++s) b->q.push(make_item(std::uint32_t(p), std::uint32_t(s)));
      return 0;
    }));
  for (int c = 0; c < consumers; ++c)
    kids.push_back(fork_child([&] {
      std::int64_t last[producers];
      for (auto& l : last) l = -1;
      for (;;) {
        const auto got = b->q.try_pop_for(30s);
        if (!got) return 3;
        if (got->producer == 0xffffffffu) return 0;  // stop marker
        if (got->producer >= producers || got->check != check_of(got->producer, got->seq)) return 1;
        if (std::int64_t(got->seq) <= last[got->producer]) return 2;  // out of producer order
        last[got->producer] = got->seq;
        b->seen[got->producer][got->seq].fetch_add(1);
        b->received.fetch_add(1);
      }
    }));
  for (int p = 0; p < producers; ++p) BOOST_TEST(wait_exit_code(kids[p]) == 0);
  for (int c = 0; c < consumers; ++c) b->q.push(item{0xffffffffu, 0, 0});
  for (int c = 0; c < consumers; ++c) BOOST_TEST(wait_exit_code(kids[producers + c]) == 0);
  BOOST_TEST(b->received.load() == producers * per_producer_arg);
  int wrong = 0;
  for (auto& row : b->seen)
    for (int s = 0; s < per_producer; ++s) wrong += row[s].load() != (s < per_producer_arg ? 1 : 0);
  BOOST_TEST(wrong == 0);
}

BOOST_AUTO_TEST_CASE(many_producers_many_consumers_exactly_once_in_order) {
  many_producers_many_consumers<16>(20000);
}

// A deep ring: producers run far ahead and race each other for positions
// (the counters' helping compare-exchanges fail often).
BOOST_AUTO_TEST_CASE(many_producers_many_consumers_through_a_deep_ring) {
  for (int round = 0; round < 3; ++round) many_producers_many_consumers<1024>(50000);
}

BOOST_AUTO_TEST_CASE(blocked_pop_is_woken_by_a_push_from_another_process) {
  struct block {
    procsync::queue<int, 4> q;
    std::atomic<int> got{0};
  };
  auto b = procsync::make_anonymous<block>();
  const pid_t consumer = fork_child([&] {
    b->got.store(b->q.pop());
    return 0;
  });
  BOOST_REQUIRE(eventually([&] { return blocked_in_futex(consumer); }));
  b->q.push(42);
  BOOST_TEST(wait_exit_code(consumer) == 0);
  BOOST_TEST(b->got.load() == 42);
}

BOOST_AUTO_TEST_CASE(blocked_push_is_woken_by_a_pop_from_another_process) {
  auto q = procsync::make_anonymous<procsync::queue<int, 2>>();
  q->push(1);
  q->push(2);
  const pid_t producer = fork_child([&] {
    q->push(3);
    return 0;
  });
  BOOST_REQUIRE(eventually([&] { return blocked_in_futex(producer); }));
  BOOST_TEST(q->size() == 2u);
  BOOST_TEST(q->pop() == 1);
  BOOST_TEST(wait_exit_code(producer) == 0);
  BOOST_TEST(q->pop() == 2);
  BOOST_TEST(q->pop() == 3);
}

BOOST_AUTO_TEST_CASE(timed_variants_never_return_early) {
  auto q = procsync::make_anonymous<procsync::queue<int, 1>>();
  for (auto timeout : {1ms, 20ms, 60ms}) {
    auto t0 = clk::now();
    BOOST_TEST(!q->try_pop_for(timeout).has_value());
    BOOST_TEST((clk::now() - t0 >= timeout));
  }
  auto t0 = clk::now();
  BOOST_TEST(!q->try_pop_until(std::chrono::system_clock::now() + 30ms).has_value());
  BOOST_TEST((clk::now() - t0 >= 29ms));  // converted once; clock granularity aside, not early
  BOOST_TEST(q->try_push_for(7, 0ms));
  for (auto timeout : {1ms, 20ms, 60ms}) {
    t0 = clk::now();
    BOOST_TEST(!q->try_push_for(8, timeout));
    BOOST_TEST((clk::now() - t0 >= timeout));
  }
  t0 = clk::now();
  BOOST_TEST(!q->try_push_until(8, clk::now() + 25ms));
  BOOST_TEST((clk::now() - t0 >= 25ms));
  BOOST_TEST(*q->try_pop_for(std::chrono::hours::max()) == 7);  // "forever" does not overflow
  BOOST_TEST(q->try_push_until(9, std::chrono::system_clock::time_point::max()));
  BOOST_TEST(*q->try_pop_for(-5ms) == 9);
}

BOOST_AUTO_TEST_CASE(close_rejects_pushes_drains_then_throws_at_once) {
  auto q = procsync::make_anonymous<procsync::queue<int, 8>>();
  q->push(1);
  q->push(2);
  q->close();
  BOOST_TEST(q->closed());
  std::string what;
  BOOST_TEST((error_of([&] { q->push(3); }, &what) == procsync::errc::queue_closed));
  BOOST_TEST(what.find("closed") != std::string::npos);
  BOOST_TEST((error_of([&] { (void)q->try_push(3); }) == procsync::errc::queue_closed));
  BOOST_TEST((error_of([&] { (void)q->try_push_for(3, 1s); }) == procsync::errc::queue_closed));
  BOOST_TEST((error_of([&] { (void)q->try_push_until(3, clk::now() + 1s); }) == procsync::errc::queue_closed));
  BOOST_TEST(q->pop() == 1);
  BOOST_TEST(*q->try_pop() == 2);
  BOOST_TEST((error_of([&] { (void)q->pop(); }) == procsync::errc::queue_closed));
  BOOST_TEST((error_of([&] { (void)q->try_pop(); }) == procsync::errc::queue_closed));
  const auto t0 = clk::now();
  BOOST_TEST((error_of([&] { (void)q->try_pop_for(1h); }) == procsync::errc::queue_closed));
  BOOST_TEST((error_of([&] { (void)q->try_pop_until(std::chrono::system_clock::now() + 1h); }) ==
              procsync::errc::queue_closed));
  BOOST_TEST((clk::now() - t0 < 30min));  // the watchdog-sized bound: it did not wait out the hour
  procsync::handoff<int> dst;
  BOOST_TEST((error_of([&] { q->pop_into(dst); }) == procsync::errc::queue_closed));
  BOOST_TEST((dst.state() == procsync::handoff<int>::status::empty));
}

BOOST_AUTO_TEST_CASE(close_wakes_blocked_consumers_and_producers_in_other_processes) {
  auto q = procsync::make_anonymous<procsync::queue<int, 1>>();
  auto full = procsync::make_anonymous<procsync::queue<int, 1>>();
  full->push(0);
  std::vector<pid_t> kids;
  for (int i = 0; i < 3; ++i)
    kids.push_back(fork_child([&] {
      return error_of([&] { (void)q->try_pop_for(1h); }) == procsync::errc::queue_closed ? 0 : 1;
    }));
  kids.push_back(fork_child([&] {
    return error_of([&] { full->push(1); }) == procsync::errc::queue_closed ? 0 : 1;
  }));
  for (pid_t k : kids) BOOST_REQUIRE(eventually([&] { return blocked_in_futex(k); }));
  q->close();
  full->close();
  for (pid_t k : kids) BOOST_TEST(wait_exit_code(k) == 0);
  BOOST_TEST(full->pop() == 0);  // still drains
}

BOOST_AUTO_TEST_CASE(pop_into_delivers_and_checks_its_destination) {
  auto q = procsync::make_anonymous<procsync::queue<std::uint64_t, 4>>();
  auto dst = procsync::make_anonymous<procsync::handoff<std::uint64_t>>();
  using st = procsync::handoff<std::uint64_t>::status;
  BOOST_TEST((dst->state() == st::empty));
  std::string what;
  BOOST_TEST((error_of([&] { (void)dst->value(); }, &what) == procsync::errc::invalid_argument));
  BOOST_TEST(what.find("expected a full destination, found an empty one") != std::string::npos);
  BOOST_TEST(!q->try_pop_into(*dst));
  q->push(11);
  q->push(12);
  q->pop_into(*dst);
  BOOST_TEST((dst->state() == st::full));
  BOOST_TEST(dst->value() == 11u);
  BOOST_TEST((error_of([&] { q->pop_into(*dst); }, &what) == procsync::errc::invalid_argument));
  BOOST_TEST(what.find("expected an empty destination, found one full") != std::string::npos);
  BOOST_TEST(q->resolve(*dst));  // full and released: nothing to do
  BOOST_TEST(dst->take() == 11u);
  BOOST_TEST((dst->state() == st::empty));
  BOOST_TEST(!q->resolve(*dst));
  BOOST_TEST(q->try_pop_into_for(*dst, 1s));
  BOOST_TEST(dst->take() == 12u);
  BOOST_TEST(!q->try_pop_into_for(*dst, 10ms));
  BOOST_TEST(q->size() == 0u);
  // The slot was released: the queue still holds 4.
  for (std::uint64_t i = 0; i < 4; ++i) BOOST_TEST(q->try_push(i));
}

BOOST_AUTO_TEST_CASE(blocked_pop_into_is_woken_in_another_process) {
  struct block {
    procsync::queue<int, 2> q;
    procsync::handoff<int> dst;
  };
  auto b = procsync::make_anonymous<block>();
  const pid_t consumer = fork_child([&] {
    b->q.pop_into(b->dst);
    return 0;
  });
  BOOST_REQUIRE(eventually([&] { return blocked_in_futex(consumer); }));
  b->q.push(5);
  BOOST_TEST(wait_exit_code(consumer) == 0);
  BOOST_TEST(b->dst.take() == 5);
}

BOOST_AUTO_TEST_CASE(lives_in_a_named_segment_and_is_typed) {
  const std::string name = unique_name("queue");
  {
    procsync::named_segment seg(procsync::create_only, name, 256 * 1024);
    auto& q = seg.construct<procsync::queue<int, 8>>("jobs");
    q.push(7);
    const pid_t child = fork_child([&] {
      procsync::named_segment other(procsync::open_only, name);
      auto& oq = other.find<procsync::queue<int, 8>>("jobs");
      if (oq.pop() != 7) return 1;
      oq.push(8);
      std::string msg;
      if (error_of([&] { (void)other.find<procsync::queue<long, 8>>("jobs"); }, &msg) !=
          procsync::errc::wrong_object_kind)
        return 2;
      if (msg.find("procsync::queue<int32,8>") == std::string::npos) return 3;
      if (error_of([&] { (void)other.find<procsync::queue<int, 16>>("jobs"); }) != procsync::errc::wrong_object_kind)
        return 4;
      if (error_of([&] { (void)other.find<procsync::queue<unsigned, 8>>("jobs"); }) !=
          procsync::errc::wrong_object_kind)
        return 5;
      return 0;
    });
    BOOST_TEST(wait_exit_code(child) == 0);
    BOOST_TEST(q.pop() == 8);
  }
  procsync::named_segment::remove(name);
}

BOOST_AUTO_TEST_CASE(kind_names_spell_element_and_capacity) {
  BOOST_TEST((procsync::queue<std::uint64_t, 16>::kind_name() == "procsync::queue<uint64,16>"));
  BOOST_TEST((procsync::queue<item, 4>::kind_name() == "procsync::queue<test::item{size=16,align=8},4>"));
  BOOST_TEST((procsync::handoff<int>::kind_name() == "procsync::handoff<int32>"));
}

// The consumers' doorbell coalesces: while the consumer it woke has not run
// (here: it is stopped), further pushes make no futex call at all.
BOOST_AUTO_TEST_CASE(pushes_to_a_woken_but_not_yet_running_consumer_make_one_futex_call) {
  struct block {
    procsync::queue<int, 64> q;
    std::atomic<int> got{-1};
  };
  auto b = procsync::make_anonymous<block>();
  const pid_t consumer = fork_child([&] {
    b->got.store(b->q.pop());
    return 0;
  });
  BOOST_REQUIRE(eventually([&] { return blocked_in_futex(consumer); }));
  ::kill(consumer, SIGSTOP);
  const std::uint64_t before = procsync::detail::futex_syscalls.load();
  for (int i = 0; i < 50; ++i) b->q.push(i);
  const std::uint64_t calls = procsync::detail::futex_syscalls.load() - before;
  BOOST_TEST(calls == 1u);  // one wake; without coalescing, one per push
  ::kill(consumer, SIGCONT);
  BOOST_TEST(wait_exit_code(consumer) == 0);
  BOOST_TEST(b->got.load() == 0);
  for (int i = 1; i < 50; ++i) BOOST_TEST(b->q.pop() == i);
}

// Several sleeping consumers and a burst of items: every consumer gets one
// (the woken one passes the baton; the floor's slices are only the backstop).
BOOST_AUTO_TEST_CASE(a_burst_reaches_every_sleeping_consumer) {
  struct block {
    procsync::queue<int, 64> q;
    std::atomic<int> sum{0};
  };
  auto b = procsync::make_anonymous<block>();
  std::vector<pid_t> kids;
  for (int c = 0; c < 4; ++c)
    kids.push_back(fork_child([&] {
      b->sum.fetch_add(b->q.pop());
      return 0;
    }));
  for (pid_t k : kids) BOOST_REQUIRE(eventually([&] { return blocked_in_futex(k); }));
  for (int i = 1; i <= 4; ++i) b->q.push(i);
  for (pid_t k : kids) BOOST_TEST(wait_exit_code(k) == 0);
  BOOST_TEST(b->sum.load() == 10);
  BOOST_TEST(!b->q.try_pop().has_value());
}
