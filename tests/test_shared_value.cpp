#define BOOST_TEST_MODULE procsync shared_value
#include <boost/test/unit_test.hpp>

#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <procsync/detail/futex.hpp>
#include <procsync/segment.hpp>
#include <procsync/shared_value.hpp>

#include "child.hpp"
#include "errors.hpp"
#include "kinds.hpp"

using namespace procsync_test;
using namespace std::chrono_literals;

namespace {

constexpr char point_kind[] = "test::point", span_pair_kind[] = "test::span_pair";
using point = kinded_xy<long, point_kind>;
using span_pair = kinded_xy<long, span_pair_kind>;  // point's layout, another kind

// 4 KiB of fields that must all agree: any mix of two commits is visible.
struct big {
  std::uint64_t field[512];
};

bool uniform(const big& b) {
  for (std::uint64_t f : b.field)
    if (f != b.field[0]) return false;
  return true;
}

struct flags {
  std::atomic<int> go{0};
  std::atomic<int> stop{0};
  std::atomic<long> counter{0};
};

static_assert(procsync::shared_value<long>::is_lock_free);
static_assert(procsync::shared_value<double>::is_lock_free);
static_assert(!procsync::shared_value<point>::is_lock_free);
static_assert(!procsync::shared_value<big>::is_lock_free);
static_assert(std::is_standard_layout_v<procsync::shared_value<long>>);
static_assert(std::is_standard_layout_v<procsync::shared_value<big>>);
static_assert(std::is_standard_layout_v<procsync::shared_array<int, 7>>);
static_assert(std::is_trivially_destructible_v<procsync::shared_value<big>>);
static_assert(std::is_trivially_destructible_v<procsync::shared_array<point, 3>>);

}  // namespace

BOOST_AUTO_TEST_CASE(store_load_exchange_semantics, *boost::unit_test::timeout(60)) {
  procsync::shared_value<long> l;
  BOOST_TEST(l.load() == 0);
  l.store(41);
  BOOST_TEST(l.load() == 41);
  BOOST_TEST(l.exchange(7) == 41);
  BOOST_TEST(l.load() == 7);
  BOOST_TEST(l.fetch_add(3) == 7);
  BOOST_TEST(l.fetch_sub(1) == 10);
  BOOST_TEST(l.fetch_or(0x100) == 9);
  BOOST_TEST(l.fetch_and(0x10f) == 0x109);
  BOOST_TEST(l.fetch_xor(0x1) == 0x109);
  BOOST_TEST(l.load() == 0x108);

  procsync::shared_value<double> d(1.5);
  BOOST_TEST(d.fetch_add(1.0) == 1.5);
  BOOST_TEST(d.load() == 2.5);

  procsync::shared_value<point> p(point{1, 2});
  BOOST_TEST(p.load().x == 1);
  BOOST_TEST(p.load().y == 2);
  p.store(point{3, 4});
  const point old = p.exchange(point{5, 6});
  BOOST_TEST(old.x == 3);
  BOOST_TEST(old.y == 4);
  BOOST_TEST(p.load().x == 5);
  BOOST_TEST(p.load().y == 6);

  // A non-lock-free arithmetic T goes through the lock and still answers.
  procsync::shared_value<long double> ld(2.0L);
  if (!procsync::shared_value<long double>::is_lock_free) {
    BOOST_TEST(static_cast<double>(ld.fetch_add(1.0L)) == 2.0);
    BOOST_TEST(static_cast<double>(ld.load()) == 3.0);
  }
}

BOOST_AUTO_TEST_CASE(other_value_types, *boost::unit_test::timeout(60)) {
  enum class colour : unsigned char { red, green, blue };
  static_assert(procsync::shared_value<colour>::is_lock_free);
  procsync::shared_value<colour> c(colour::green);
  BOOST_TEST((c.exchange(colour::blue) == colour::green));
  BOOST_TEST((c.update([](colour) { return colour::red; }) == colour::red));

  procsync::shared_value<bool> flag;
  BOOST_TEST(!flag.load());
  flag.with_lock([](bool& f) { f = true; });
  BOOST_TEST(flag.load());

  // Over-aligned T: both slots stay aligned.
  struct alignas(64) line {
    std::uint32_t a, b;
  };
  procsync::shared_value<line> v(line{1, 2});
  v.update([](line& l) { l.a += l.b; });
  BOOST_TEST(v.load().a == 3u);
  BOOST_TEST(reinterpret_cast<std::uintptr_t>(&*v.lock()) % 64 == 0u);

  procsync::shared_array<point, 3> pts;
  pts.update(2, [](point& q) { q.y = 9; });
  BOOST_TEST(pts.load(2).y == 9);
  BOOST_TEST(pts.snapshot()[0].y == 0);
}

BOOST_AUTO_TEST_CASE(update_forms_and_results, *boost::unit_test::timeout(60)) {
  procsync::shared_value<int> i(10);
  BOOST_TEST(i.update([](int v) { return v * 2; }) == 20);            // const T& -> T
  BOOST_TEST(i.update([](int& v) { v += 1; }) == 21);                 // T& -> void
  BOOST_TEST(i.with_lock([](int& v) { return v++ * 100; }) == 2100);  // result of fn
  BOOST_TEST(i.load() == 22);

  procsync::shared_value<point> p;
  const point n = p.update([](point& q) {
    q.x = 1;
    q.y = 2;
  });
  BOOST_TEST(n.x == 1);
  BOOST_TEST(p.update([](const point& q) { return point{q.x + 10, q.y + 10}; }).y == 12);
  const long sum = p.with_lock([&](point& q) {
    // Inside with_lock, load() still sees the committed value, not the draft.
    q.x = 100;
    BOOST_TEST(p.load().x == 11);
    return q.x + q.y;
  });
  BOOST_TEST(sum == 112);
  BOOST_TEST(p.load().x == 100);
}

BOOST_AUTO_TEST_CASE(multi_step_changes_commit_all_or_nothing, *boost::unit_test::timeout(120)) {
  procsync::shared_value<point> p(point{1, 1});
  // fn throws half-way: nothing is committed.
  BOOST_CHECK_THROW(p.with_lock([](point& q) {
    q.x = 99;
    throw std::runtime_error("abandon");
  }),
                    std::runtime_error);
  BOOST_TEST(p.load().x == 1);
  BOOST_CHECK_THROW(p.update([](point& q) {
    q.y = 99;
    throw std::runtime_error("abandon");
  }),
                    std::runtime_error);
  BOOST_TEST(p.load().y == 1);
  BOOST_TEST(!p.get_lock().owned_by_caller());

  // A locked view commits on destruction, discards on cancel() or unwinding.
  {
    auto v = p.lock();
    v->x = 2;
    v->y = 3;
    BOOST_TEST(p.load().x == 1);  // not yet committed
  }
  BOOST_TEST(p.load().x == 2);
  BOOST_TEST(p.load().y == 3);
  {
    auto v = p.lock();
    v->x = 50;
    v.cancel();
    BOOST_TEST(!v.active());
  }
  BOOST_TEST(p.load().x == 2);
  try {
    auto v = p.lock();
    v->x = 60;
    throw std::runtime_error("unwind");
  } catch (const std::runtime_error&) {
  }
  BOOST_TEST(p.load().x == 2);
  BOOST_TEST(!p.get_lock().owned_by_caller());

  // Lock-free T: with_lock's fn works on a copy, also all or nothing.
  procsync::shared_value<long> l(5);
  BOOST_CHECK_THROW(l.with_lock([](long& v) {
    v = 6;
    throw std::runtime_error("abandon");
  }),
                    std::runtime_error);
  BOOST_TEST(l.load() == 5);
}

BOOST_AUTO_TEST_CASE(writing_while_holding_the_lock_is_an_error, *boost::unit_test::timeout(60)) {
  procsync::shared_value<point> p(point{1, 1});
  std::string message;
  BOOST_TEST((error_of([&] { p.with_lock([&](point& q) {
                q.x = 7;
                p.store(point{2, 2});
              }); }, &message) == procsync::errc::would_deadlock));
  BOOST_TEST(p.load().x == 1);  // the outer transaction was abandoned by the throw
  {
    std::lock_guard g(p.get_lock());
    BOOST_TEST((error_of([&] { p.store(point{3, 3}); }) == procsync::errc::would_deadlock));
    BOOST_TEST(p.load().x == 1);  // reads need no lock
  }
  p.store(point{4, 4});
  BOOST_TEST(p.load().x == 4);
}

BOOST_AUTO_TEST_CASE(array_bounds_and_elements, *boost::unit_test::timeout(60)) {
  procsync::shared_array<int, 4> a(7);
  BOOST_TEST(a.size() == 4u);
  BOOST_TEST(a.load(3) == 7);
  a.store(2, 5);
  BOOST_TEST(a.load(2) == 5);
  BOOST_TEST(a.exchange(2, 6) == 5);
  BOOST_TEST(a.update(1, [](int v) { return v + 1; }) == 8);
  BOOST_TEST(a.fetch_add(0, 3) == 7);
  const auto snap = a.snapshot();
  BOOST_TEST(snap[0] == 10);
  BOOST_TEST(snap[1] == 8);
  BOOST_TEST(snap[2] == 6);
  BOOST_TEST(snap[3] == 7);

  for (auto op : {0, 1, 2, 3, 4}) {
    std::string message;
    const procsync::errc e = error_of(
        [&] {
          switch (op) {
            case 0: (void)a.load(4); break;
            case 1: a.store(9, 1); break;
            case 2: (void)a.exchange(4, 1); break;
            case 3: (void)a.update(100, [](int v) { return v; }); break;
            case 4: {
              auto v = a.lock();
              (void)v.at(4);
              break;
            }
          }
        },
        &message);
    BOOST_TEST((e == procsync::errc::invalid_argument));
    BOOST_TEST(message.find("out of range for an array of size 4") != std::string::npos, message);
  }
  std::string message;
  (void)error_of([&] { a.store(9, 1); }, &message);
  BOOST_TEST(message.find("index 9") != std::string::npos, message);
  BOOST_TEST(!a.get_lock().owned_by_caller());  // the view released it while unwinding

  // Multi-element changes: all or nothing.
  a.store_all({1, 1, 1, 1});
  BOOST_CHECK_THROW(a.with_lock([](std::span<int, 4> s) {
    s[0] = s[1] = 2;
    throw std::runtime_error("abandon");
  }),
                    std::runtime_error);
  BOOST_TEST(a.snapshot()[0] == 1);
  const int total = a.with_lock([](std::span<int, 4> s) {
    for (int& v : s) v += 1;
    return s[0] + s[1] + s[2] + s[3];
  });
  BOOST_TEST(total == 8);
  {
    auto v = a.lock();
    v[0] = 10;
    v.elements()[3] = 40;
  }
  BOOST_TEST(a.load(0) == 10);
  BOOST_TEST(a.load(3) == 40);
}

BOOST_AUTO_TEST_CASE(uncontended_operations_make_no_futex_syscall, *boost::unit_test::timeout(60)) {
  auto l = procsync::make_anonymous<procsync::shared_value<long>>(0);
  auto p = procsync::make_anonymous<procsync::shared_value<point>>();
  auto b = procsync::make_anonymous<procsync::shared_value<big>>();
  auto a = procsync::make_anonymous<procsync::shared_array<long, 16>>();
  const std::uint64_t before = procsync::detail::futex_syscalls.load();
  for (int i = 0; i < 1000; ++i) {
    l->update([](long v) { return v + 1; });
    l->with_lock([](long& v) { ++v; });
    l->fetch_add(1);
    p->update([](point& q) { ++q.x; });
    p->with_lock([](point& q) { ++q.y; });
    { auto v = p->lock(); v->x += 1; }
    b->with_lock([](big& g) { ++g.field[7]; });
    (void)b->load();
    a->fetch_add(3, 1);
    a->with_lock([](std::span<long, 16> s) { ++s[4]; });
    (void)a->snapshot();
  }
  BOOST_TEST(procsync::detail::futex_syscalls.load() - before == 0u);
  BOOST_TEST(l->load() == 3000);
  BOOST_TEST(p->load().x == 2000);
  BOOST_TEST(b->load().field[7] == 1000u);
  BOOST_TEST(a->load(3) + a->load(4) == 2000);
}

BOOST_AUTO_TEST_CASE(contended_updates_are_exact, *boost::unit_test::timeout(120)) {
  auto l = procsync::make_anonymous<procsync::shared_value<long>>(0);
  auto f = procsync::make_anonymous<procsync::shared_value<long>>(0);
  auto p = procsync::make_anonymous<procsync::shared_value<point>>();
  auto a = procsync::make_anonymous<procsync::shared_array<long, 4>>();
  auto sync = procsync::make_anonymous<flags>();
  constexpr int procs = 4, iters = 5000;
  std::vector<pid_t> kids;
  for (int k = 0; k < procs; ++k)
    kids.push_back(fork_child([&, k] {
      sync->go.fetch_add(1);
      while (sync->go.load() < procs) std::this_thread::yield();  // start together
      for (int j = 0; j < iters; ++j) {
        l->update([](long v) { return v + 1; });                        // lock-free CAS loop
        f->fetch_add(2);                                                // one atomic instruction
        p->update([](point& q) { ++q.x; });                             // under the lock
        { auto v = p->lock(); v->y += 1; }                              // locked view
        a->update(static_cast<std::size_t>(k), [](long v) { return v + 1; });
        a->fetch_add(3 - static_cast<std::size_t>(k), 1);
      }
      return 0;
    }));
  for (pid_t k : kids) BOOST_TEST(wait_exit_code(k) == 0);
  BOOST_TEST(l->load() == procs * iters);
  BOOST_TEST(f->load() == 2L * procs * iters);
  BOOST_TEST(p->load().x == procs * iters);
  BOOST_TEST(p->load().y == procs * iters);
  for (std::size_t i = 0; i < 4; ++i) BOOST_TEST(a->load(i) == 2 * iters);
}

BOOST_AUTO_TEST_CASE(with_lock_keeps_multi_field_invariants, *boost::unit_test::timeout(120)) {
  // Invariant: x + y == 0. Writers move amounts between the fields in two
  // steps with a yield in between; readers must never see the middle.
  auto p = procsync::make_anonymous<procsync::shared_value<point>>();
  auto a = procsync::make_anonymous<procsync::shared_array<long, 8>>();
  auto sync = procsync::make_anonymous<flags>();
  std::vector<pid_t> writers, readers;
  for (int k = 0; k < 2; ++k)
    writers.push_back(fork_child([&, k] {
      for (int j = 0; j < 2000; ++j) {
        const long amount = (j % 7) + k + 1;
        p->with_lock([&](point& q) {
          q.x += amount;
          if (j % 16 == 0) sched_yield();
          q.y -= amount;
        });
        a->with_lock([&](std::span<long, 8> s) {
          s[0] += amount;
          if (j % 16 == 0) sched_yield();
          for (std::size_t i = 1; i < 8; ++i) s[i] = s[0];
        });
      }
      return 0;
    }));
  for (int k = 0; k < 2; ++k)
    readers.push_back(fork_child([&] {
      long reads = 0;
      while (sync->stop.load() == 0 || reads < 1000) {
        const point q = p->load();
        if (q.x + q.y != 0) return 1;
        const auto s = a->snapshot();
        for (long v : s)
          if (v != s[0]) return 2;
        ++reads;
      }
      return 0;
    }));
  for (pid_t w : writers) BOOST_TEST(wait_exit_code(w) == 0);
  sync->stop.store(1);
  for (pid_t r : readers) BOOST_TEST(wait_exit_code(r) == 0);
  BOOST_TEST(p->load().x > 0);
  BOOST_TEST(p->load().x + p->load().y == 0);
}

// The torn-value check: writers are SIGKILLed hundreds of times in the middle
// of multi-step updates of a 4 KiB struct (and of a shared_array), while
// readers check that every load is one whole commit; after each kill the next
// writer must continue from exactly the last committed value.
BOOST_AUTO_TEST_CASE(killed_writers_never_leave_a_torn_value, *boost::unit_test::timeout(300)) {
  struct shared_state {
    procsync::shared_value<big> value;
    procsync::shared_array<std::uint64_t, 256> array;
    std::atomic<std::uint64_t> first_seen;   // what the current writer found first
    std::atomic<std::uint64_t> started;      // writer generation that has committed once
    std::atomic<int> stop;
    std::atomic<long> torn;
    std::atomic<long> reads;
  };
  auto s = procsync::make_anonymous<shared_state>();
  s->first_seen = ~0ull;
  constexpr int kills = 200;

  std::vector<pid_t> readers;
  for (int k = 0; k < 2; ++k)
    readers.push_back(fork_child([&] {
      while (s->stop.load() == 0) {
        const big b = s->value.load();
        const auto a = s->array.snapshot();
        bool ok = uniform(b);
        for (std::uint64_t v : a) ok = ok && v == a[0];
        if (!ok) s->torn.fetch_add(1);
        // Leave CPU time to the writers on a small machine.
        if (s->reads.fetch_add(1, std::memory_order_relaxed) % 8 == 0) sched_yield();
      }
      return 0;
    }));

  std::mt19937 rng(12345);
  int killed_holding_lock = 0, mismatches = 0;
  for (int round = 0; round < kills; ++round) {
    const std::uint64_t committed = s->value.load().field[0];
    const pid_t writer = fork_child([&, round] {
      bool first = true;
      for (;;) {
        // Mode by round: with_lock, a locked view, or update(T&).
        auto step = [&](big& b) {
          if (first) s->first_seen.store(b.field[0]);
          const std::uint64_t next = b.field[0] + 1;
          for (std::size_t i = 0; i < 512; ++i) {
            b.field[i] = next;
            if (i % 64 == 0) sched_yield();
          }
        };
        if (round % 3 == 0) {
          s->value.with_lock(step);
        } else if (round % 3 == 1) {
          auto v = s->value.lock();
          step(*v);
        } else {
          s->value.update(step);
        }
        s->array.with_lock([](std::span<std::uint64_t, 256> a) {
          const std::uint64_t next = a[0] + 1;
          for (std::size_t i = 0; i < a.size(); ++i) {
            a[i] = next;
            if (i % 128 == 0) sched_yield();
          }
        });
        if (first) s->started.store(static_cast<std::uint64_t>(round) + 1);
        first = false;
      }
      return 0;
    });
    // Let it commit at least once, then kill it at a random point.
    BOOST_REQUIRE(eventually([&] { return s->started.load() == static_cast<std::uint64_t>(round) + 1; }, 30s));
    if (s->first_seen.load() != committed) ++mismatches;
    // The behaviour under test: a kill at a random point of the update, not a sequencing step.
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 1500));
    ::kill(writer, SIGKILL);
    BOOST_REQUIRE(wait_exit_code(writer) == -SIGKILL);
    // The kernel marked the lock owner_died if the writer held it.
    if (s->value.get_lock().inconsistent() || s->array.get_lock().inconsistent()) ++killed_holding_lock;
  }
  s->stop.store(1);
  for (pid_t r : readers) BOOST_TEST(wait_exit_code(r) == 0);

  BOOST_TEST(s->torn.load() == 0);
  BOOST_TEST(mismatches == 0);
  BOOST_TEST(s->reads.load() > 0);
  BOOST_TEST_MESSAGE("kills: " << kills << ", inside a locked update: " << killed_holding_lock
                               << ", reads: " << s->reads.load());
  // Writers spend nearly all their time inside updates: most kills land there.
  BOOST_TEST(killed_holding_lock >= kills / 4);
  // The survivors carry on: consistent values, working lock.
  const big b = s->value.load();
  BOOST_TEST(uniform(b));
  BOOST_TEST(b.field[0] >= static_cast<std::uint64_t>(kills));
  s->value.with_lock([](big& g) { for (auto& f : g.field) ++f; });
  BOOST_TEST(s->value.load().field[0] == b.field[0] + 1);
  BOOST_TEST(!s->value.get_lock().not_recoverable());
  BOOST_TEST(!s->array.get_lock().not_recoverable());
}

BOOST_AUTO_TEST_CASE(killed_holder_of_a_lock_free_value, *boost::unit_test::timeout(120)) {
  // Lock-free T: with_lock() commits by one CAS, so a writer killed inside fn
  // changes nothing, and the next with_lock() repairs the lock.
  auto l = procsync::make_anonymous<procsync::shared_value<long>>(5);
  BOOST_REQUIRE(die_holding([&](const hold_here& hold) {
    l->with_lock([&](long& v) {
      v = 1000;
      hold();
    });
  }) == -SIGKILL);
  BOOST_TEST(l->load() == 5);
  BOOST_TEST(l->get_lock().inconsistent());
  BOOST_TEST(l->with_lock([](long& v) { return ++v; }) == 6);
  BOOST_TEST(!l->get_lock().inconsistent());
  BOOST_TEST(l->fetch_add(1) == 6);
}

// get_lock() used as documented, the std way: a holder killed while holding it
// (a std::unique_lock, no consistent() anywhere) must not poison the value.
BOOST_AUTO_TEST_CASE(std_style_use_of_get_lock_survives_a_holders_death, *boost::unit_test::timeout(120)) {
  // A value that needs the lock to commit (a scalar would bypass it).
  using pair = std::array<long, 2>;
  struct block {
    procsync::shared_value<pair> total{pair{5, 5}};
  };
  auto b = procsync::make_anonymous<block>();
  BOOST_REQUIRE(die_holding([&](const hold_here& hold) {
    std::unique_lock lk(b->total.get_lock());
    hold();  // killed while holding
  }) == -SIGKILL);
  {
    std::lock_guard g(b->total.get_lock());  // std code: never calls consistent()
  }
  BOOST_TEST(!b->total.get_lock().not_recoverable());
  b->total.store(pair{7, 7});
  BOOST_TEST(b->total.update([](pair v) { return pair{v[0] + 1, v[1] + 1}; })[0] == 8);
  BOOST_TEST(b->total.load()[1] == 8);
}

BOOST_AUTO_TEST_CASE(lives_in_a_named_segment, *boost::unit_test::timeout(120)) {
  const std::string name = unique_name("value");
  {
    procsync::named_segment seg(procsync::create_only, name, 64 * 1024);
    auto& v = seg.construct<procsync::shared_value<point>>("pos", point{3, 4});
    auto& a = seg.construct<procsync::shared_array<int, 8>>("arr", 1);
    const pid_t child = fork_child([&] {
      procsync::named_segment other(procsync::open_only, name);
      auto& cv = other.find<procsync::shared_value<point>>("pos");
      cv.update([](point& q) { q.x += 10; });
      other.find<procsync::shared_array<int, 8>>("arr").store(7, 70);
      return 0;
    });
    BOOST_TEST(wait_exit_code(child) == 0);
    BOOST_TEST(v.load().x == 13);
    BOOST_TEST(a.load(7) == 70);
    // A shared_array of another length is another kind (its kind spells N).
    BOOST_TEST((error_of([&] { (void)seg.find<procsync::shared_array<int, 9>>("arr"); }) ==
                procsync::errc::wrong_object_kind));
    BOOST_TEST((error_of([&] { (void)seg.find<procsync::shared_value<point>>("arr"); }) ==
                procsync::errc::wrong_object_kind));
  }
  procsync::named_segment::remove(name);
}

// The stored kind spells the element type: a value of one type is never read
// as another of the same size (a long read as a double used to give 2.07508e-322).
BOOST_AUTO_TEST_CASE(named_segment_checks_the_element_type, *boost::unit_test::timeout(120)) {
  const std::string name = unique_name("typed");
  {
    procsync::named_segment seg(procsync::create_only, name, 64 * 1024);
    seg.construct<procsync::shared_value<long>>("total", 42L);
    seg.construct<procsync::shared_value<point>>("pos", point{1, 2});
    seg.construct<procsync::shared_array<int, 8>>("ints", 3);
    const pid_t child = fork_child([&] {
      procsync::named_segment other(procsync::open_only, name);
      std::string msg;
      if (error_of([&] { (void)other.find<procsync::shared_value<double>>("total"); }, &msg) !=
          procsync::errc::wrong_object_kind)
        return 1;
      if (msg.find("is a procsync::shared_value<int64>, expected procsync::shared_value<float64>") ==
          std::string::npos)
        return 2;
      if (error_of([&] { (void)other.find<procsync::shared_value<unsigned long>>("total"); }) !=
          procsync::errc::wrong_object_kind)
        return 3;
      // Same-sized struct of another kind.
      if (error_of([&] { (void)other.find<procsync::shared_value<span_pair>>("pos"); }, &msg) !=
          procsync::errc::wrong_object_kind)
        return 4;
      if (msg.find("procsync::shared_value<test::point{size=16,align=8}>") == std::string::npos) return 5;
      // shared_array: element type and length both count.
      if (error_of([&] { (void)other.find<procsync::shared_array<float, 8>>("ints"); }) !=
          procsync::errc::wrong_object_kind)
        return 6;
      if (error_of([&] { (void)other.find<procsync::shared_array<unsigned, 8>>("ints"); }) !=
          procsync::errc::wrong_object_kind)
        return 7;
      if (error_of([&] { (void)other.find<procsync::shared_array<int, 16>>("ints"); }, &msg) !=
          procsync::errc::wrong_object_kind)
        return 8;
      if (msg.find("procsync::shared_array<int32,8>") == std::string::npos) return 9;
      // The right types open fine.
      if (other.find<procsync::shared_value<long>>("total").load() != 42) return 10;
      if (other.find<procsync::shared_value<long long>>("total").load() != 42) return 11;  // same layout: int64
      return other.find<procsync::shared_array<int, 8>>("ints").load(7) == 3 ? 0 : 12;
    });
    BOOST_TEST(wait_exit_code(child) == 0);
  }
  procsync::named_segment::remove(name);
}
