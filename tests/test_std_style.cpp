// Crash safety for ordinary std-style code: a bounded queue written the obvious
// way (std::unique_lock, condition_variable::wait(lk, pred)) in a named segment,
// shared by processes that open it by name, while producers and consumers are
// SIGKILLed at random and replaced. The mutex is constructed with
// owner_death::nothing_to_repair, which is honest here: every change to the
// queue is published by one store (a slot is written first, then its index
// moves), so a death can lose at most what the dead process held.
#define BOOST_TEST_MODULE procsync std-style crash safety
#include <boost/test/unit_test.hpp>

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <procsync/condition_variable.hpp>
#include <procsync/mutex.hpp>
#include <procsync/segment.hpp>

#include "child.hpp"

using namespace std::chrono_literals;
using namespace procsync_test;

namespace {

constexpr std::size_t capacity = 8;
constexpr std::size_t max_workers = 160;  // every worker ever started, replacements included
constexpr std::size_t log_size = 1 << 20;  // items received, by all consumers together
constexpr std::uint64_t quota = 4000;       // items per producer (then it idles until killed)

struct bounded_queue {
  static constexpr const char* kind_name = "procsync_test::bounded_queue";
  procsync::mutex m{procsync::owner_death::nothing_to_repair};
  procsync::condition_variable not_full;
  procsync::condition_variable not_empty;
  std::uint64_t head = 0;  // next to pop; moves after the item was copied out
  std::uint64_t tail = 0;  // next to fill; moves after the slot was written
  std::uint64_t slots[capacity] = {};
  bool closed = false;
};

// Per worker: what it has committed, written after each operation returned.
struct ledger {
  static constexpr const char* kind_name = "procsync_test::ledger";
  std::atomic<std::uint64_t> produced[max_workers];   // producer: items pushed (ids id<<32 | 0..n-1)
  std::atomic<std::uint64_t> log_used{0};              // entries claimed in `log`
  std::atomic<std::uint64_t> log[log_size];             // item + 1 per reception; 0: claimed by a consumer that died
  std::atomic<std::uint32_t> role[max_workers];       // 1 producer, 2 consumer
};

void push(bounded_queue& q, std::uint64_t item) {
  std::unique_lock lk(q.m);
  q.not_full.wait(lk, [&] { return q.tail - q.head < capacity; });
  q.slots[q.tail % capacity] = item;
  q.tail = q.tail + 1;  // the one store that publishes the item
  lk.unlock();
  q.not_empty.notify_one();
}

bool pop(bounded_queue& q, std::uint64_t& item) {
  std::unique_lock lk(q.m);
  q.not_empty.wait(lk, [&] { return q.tail != q.head || q.closed; });
  if (q.tail == q.head) return false;
  item = q.slots[q.head % capacity];
  q.head = q.head + 1;  // the one store that takes it
  lk.unlock();
  q.not_full.notify_one();
  return true;
}

int run_worker(const std::string& segment, std::uint32_t id, bool producer) {
  procsync::named_segment seg(procsync::open_only, segment);  // opened by name, as an unrelated program would
  auto& q = seg.find<bounded_queue>("queue");
  auto& l = seg.find<ledger>("ledger");
  if (producer) {
    for (std::uint64_t n = l.produced[id].load(); n < quota; ++n) {
      push(q, std::uint64_t{id} << 32 | n);
      l.produced[id].store(n + 1);
    }
    for (;;) ::pause();
  }
  for (;;) {
    std::uint64_t item = 0;
    if (!pop(q, item)) return 0;
    const std::uint64_t k = l.log_used.fetch_add(1);
    if (k >= log_size) return 3;
    l.log[k].store(item + 1);
  }
}

BOOST_AUTO_TEST_CASE(std_style_bounded_queue_survives_100_random_kills) {
  const std::string name = unique_name("stdq");
  procsync::named_segment seg(procsync::create_only, name, 12u << 20);
  struct remove_at_end {
    std::string name;
    ~remove_at_end() { procsync::named_segment::remove(name); }
  } cleanup{name};
  auto& q = seg.construct<bounded_queue>("queue");
  auto& l = seg.construct<ledger>("ledger");

  std::mt19937 rng(static_cast<unsigned>(::getpid()));
  struct worker {
    pid_t pid;
    std::uint32_t id;
  };
  std::vector<worker> live;
  std::uint32_t next_id = 0;
  auto start = [&](bool producer) {
    const std::uint32_t id = next_id++;
    l.role[id] = producer ? 1 : 2;
    live.push_back({fork_child([&, id, producer] { return run_worker(name, id, producer); }), id});
  };
  for (int i = 0; i < 3; ++i) start(true);
  for (int i = 0; i < 3; ++i) start(false);

  int kills = 0, killed_consumers = 0;
  while (kills < 100) {
    // The behaviour under test: a kill at a random instant, not a sequencing step.
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 3000));
    const std::size_t victim = rng() % live.size();
    const worker w = live[victim];
    ::kill(w.pid, SIGKILL);
    const int code = wait_exit_code(w.pid);
    BOOST_REQUIRE_MESSAGE(code == -SIGKILL, "worker " << w.id << " ended by itself with " << code);
    live.erase(live.begin() + static_cast<std::ptrdiff_t>(victim));
    ++kills;
    const bool was_producer = l.role[w.id] == 1;
    killed_consumers += !was_producer;
    start(was_producer);  // a replacement takes its place
    BOOST_REQUIRE(next_id + 1 < max_workers);
  }

  // Stop: producers first; then close the queue and let the consumers drain it.
  for (const worker& w : live)
    if (l.role[w.id] == 1) {
      ::kill(w.pid, SIGKILL);
      BOOST_REQUIRE(wait_exit_code(w.pid) == -SIGKILL);
    }
  {
    std::lock_guard g(q.m);  // usable after all those deaths, the std way
    q.closed = true;
  }
  q.not_empty.notify_all();
  for (const worker& w : live)
    if (l.role[w.id] == 2) BOOST_TEST(wait_exit_code(w.pid, 60s) == 0);
  BOOST_TEST(!q.m.not_recoverable());
  BOOST_TEST(q.head == q.tail);

  // Accounting: every item received at most once; every item a producer
  // committed was received, except at most one per killed consumer (the one it
  // had taken when it died); an item pushed by a producer that died before
  // committing it may or may not have been received.
  std::set<std::uint64_t> seen;
  std::size_t duplicates = 0;
  const std::uint64_t used = std::min<std::uint64_t>(l.log_used.load(), log_size);
  for (std::uint64_t k = 0; k < used; ++k)
    if (const std::uint64_t entry = l.log[k].load(); entry != 0) duplicates += !seen.insert(entry - 1).second;
  std::size_t missing = 0, total = 0;
  for (std::uint32_t id = 0; id < next_id; ++id) {
    if (l.role[id] != 1) continue;
    const std::uint64_t committed = l.produced[id].load();
    total += committed;
    for (std::uint64_t n = 0; n < committed; ++n) missing += seen.count(std::uint64_t{id} << 32 | n) == 0;
  }
  BOOST_TEST_MESSAGE(kills << " kills (" << killed_consumers << " consumers), " << total
                           << " items committed, " << missing << " missing, " << duplicates << " duplicated");
  BOOST_TEST(duplicates == 0u);
  BOOST_TEST(missing <= static_cast<std::size_t>(killed_consumers));
  BOOST_TEST(total > 0u);
}

}  // namespace
