// tests/test_pg.cpp — procsync::pg against a real PostgreSQL server.
//
// The server is the throwaway cluster scripts/test.sh starts
// (scripts/pg-cluster.sh); it is found through PROCSYNC_PG_CONNINFO (Unix
// socket) and PROCSYNC_PG_TCP_CONNINFO. Without them every case FAILS: CI must
// never pass without having talked to the server. A developer without
// PostgreSQL configures with -Dpg=disabled (or runs
// PROCSYNC_SKIP_PG=1 scripts/test.sh) and this test is not built at all.
//
// Fault cases SIGKILL and SIGSTOP clients and crash the server itself
// (pg_ctl stop -m immediate through PROCSYNC_PG_CLUSTER_SCRIPT), so this test
// runs alone (is_parallel: false) and the server-crash case runs last.
#define BOOST_TEST_MODULE procsync pg
#include <boost/test/unit_test.hpp>

#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <procsync/mutex.hpp>
#include <procsync/pg.hpp>
#include <procsync/segment.hpp>

#include "child.hpp"
#include "errors.hpp"

using namespace procsync_test;
using namespace std::chrono_literals;
using clk = std::chrono::steady_clock;
namespace pg = procsync::pg;
namespace utf = boost::unit_test;

namespace {

std::string env_or_fail(const char* var) {
  const char* v = std::getenv(var);
  if (v == nullptr || *v == '\0')
    BOOST_FAIL(std::string(var) + " is not set: run the tests through scripts/test.sh, which starts a "
               "PostgreSQL cluster (or configure with -Dpg=disabled to leave procsync::pg out)");
  return v;
}
std::string conninfo() { return env_or_fail("PROCSYNC_PG_CONNINFO"); }
std::string tcp_conninfo() { return env_or_fail("PROCSYNC_PG_TCP_CONNINFO"); }

// Blocks until a byte arrives on `fd` (true) or `limit` passes (false).
bool read_byte(int fd, std::chrono::milliseconds limit = 30s) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(limit.count())) != 1) return false;
  char c;
  return ::read(fd, &c, 1) == 1;
}
void write_byte(int fd) { (void)!::write(fd, "x", 1); }

struct pipe_pair {
  int fd[2];
  pipe_pair() { BOOST_REQUIRE(::pipe(fd) == 0); }
  ~pipe_pair() { ::close(fd[0]); ::close(fd[1]); }
};

// One query on a session's own connection (for inspecting server state).
std::string query(pg::session& s, const std::string& sql) {
  PGresult* r = PQexec(s.native_handle(), sql.c_str());
  std::string v = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "<none>";
  PQclear(r);
  return v;
}

// When the session whose backend is `backend_pid` last began a query.
std::string query_start(pg::session& observer, int backend_pid) {
  return query(observer, "SELECT query_start FROM pg_stat_activity WHERE pid = " + std::to_string(backend_pid));
}

// Whether thread `tid` of this process has made its wait's last check on the
// session whose backend is `backend_pid` and sleeps for a notification,
// decided by looking: the backend is idle after a query that began after
// `since` with `last_sql` (the check a wait makes before it sleeps: it ran and
// found nothing, so only a notification, or the wait's next slice, releases
// the thread), and the thread sleeps in poll(2) through two such looks in a
// row, with no newer query and without waking in between.
bool sleeps_for_notification(pg::session& observer, int backend_pid, const std::string& since,
                             const std::string& last_sql, pid_t tid) {
  const auto look = [&](std::string& started, long& switches) {
    const long call = current_syscall(::getpid(), tid);
#ifdef SYS_poll
    if (call != SYS_poll && call != SYS_ppoll) return false;
#else
    if (call != SYS_ppoll) return false;
#endif
    switches = voluntary_switches(::getpid(), tid);
    started = query(observer, "SELECT query_start FROM pg_stat_activity WHERE pid = " + std::to_string(backend_pid) +
                                  " AND state = 'idle' AND query_start > '" + since +
                                  "'::timestamptz AND query LIKE '" + last_sql + "%'");
    return started != "<none>" && current_syscall(::getpid(), tid) == call;
  };
  std::string first, second;
  long switches_first = 0, switches_second = 0;
  return look(first, switches_first) && look(second, switches_second) && first == second &&
         switches_first == switches_second;
}

// Whether the session whose backend is `backend_pid` waits for a lock on the server.
bool waits_for_a_lock(pg::session& observer, int backend_pid) {
  return query(observer, "SELECT wait_event_type FROM pg_stat_activity WHERE pid = " + std::to_string(backend_pid)) ==
         "Lock";
}

// Code written against the std concepts, used with both backends below.
template <class Lockable>
long locked_increment(Lockable& m, long& value) {
  std::lock_guard guard(m);
  return ++value;
}

}  // namespace

BOOST_AUTO_TEST_CASE(session_errors, *utf::timeout(60)) {
  BOOST_TEST((error_of([] { pg::session s{"host /tmp"}; }) == procsync::errc::invalid_argument));
  std::string what;
  BOOST_TEST((error_of([] { pg::session s{"host=/nonexistent-procsync-dir port=1 dbname=x"}; }, &what) ==
              procsync::errc::connection_failed));
  BOOST_TEST(what.find("cannot connect") != std::string::npos);
  pg::session s{conninfo()};
  BOOST_TEST(s.backend_pid() > 0);
  s.check();
  BOOST_TEST(!s.broken());
  pg::session moved{std::move(s)};
  moved.check();
  BOOST_TEST((error_of([&] { pg::mutex m{s, "x"}; }) == procsync::errc::invalid_argument));  // NOLINT: moved-from
}

BOOST_AUTO_TEST_CASE(mutex_basics_and_misuse, *utf::timeout(60)) {
  pg::session a{conninfo()}, b{conninfo()};
  const auto name = unique_name("m");
  pg::mutex ma{a, name}, mb{b, name};
  {
    std::lock_guard g(ma);
    BOOST_TEST(ma.owned());
    BOOST_TEST(!mb.try_lock());
  }
  BOOST_TEST(mb.try_lock());
  mb.unlock();
  BOOST_TEST((error_of([&] { mb.unlock(); }) == procsync::errc::not_owner));
  // Advisory locks are re-entrant per session: a second holder on one session is refused.
  pg::mutex ma2{a, name};
  ma.lock();
  BOOST_TEST((error_of([&] { ma2.lock(); }) == procsync::errc::would_deadlock));
  BOOST_TEST((error_of([&] { (void)ma2.try_lock(); }) == procsync::errc::would_deadlock));
  BOOST_TEST((error_of([&] { ma.lock(); }) == procsync::errc::would_deadlock));
  ma.unlock();
  BOOST_TEST(ma2.try_lock());
  ma2.unlock();
  // std::scoped_lock over two pg mutexes.
  pg::mutex other{a, unique_name("m2")};
  { std::scoped_lock both(ma, other); BOOST_TEST(!mb.try_lock()); }
  BOOST_TEST(mb.try_lock());
  mb.unlock();
  // Names.
  BOOST_TEST((error_of([&] { pg::mutex m{a, std::string(pg::max_name_length + 1, 'n')}; }) == procsync::errc::invalid_name));
  BOOST_TEST((error_of([&] { pg::mutex m{a, ""}; }) == procsync::errc::invalid_name));
  pg::mutex longest{a, unique_name("") + std::string(pg::max_name_length - unique_name("").size(), 'n')};
  BOOST_TEST(longest.try_lock());
  longest.unlock();
}

BOOST_AUTO_TEST_CASE(kinds_are_separate_namespaces, *utf::timeout(60)) {
  pg::session a{conninfo()}, b{conninfo()};
  const auto name = unique_name("x");
  pg::mutex m{a, name};
  pg::shared_mutex sm{b, name};
  pg::counting_semaphore sem{b, name, 1};
  m.lock();
  BOOST_TEST(sm.try_lock());
  BOOST_TEST(sem.try_acquire());
  sm.unlock();
  sem.release();
  m.unlock();
}

BOOST_AUTO_TEST_CASE(name_collisions_are_refused, *utf::timeout(60)) {
  // Find two names with the same 32-bit key (birthday bound: ~1e5 tries).
  std::unordered_map<std::int32_t, std::string> seen;
  const auto prefix = unique_name("c");
  std::string first, second;
  for (int i = 0; second.empty(); ++i) {
    const auto n = prefix + std::to_string(i);
    auto [it, fresh] = seen.emplace(pg::detail::name_key(n), n);
    if (!fresh) { first = it->second; second = n; }
  }
  pg::session s{conninfo()};
  pg::mutex one{s, first};
  std::string what;
  BOOST_TEST((error_of([&] { pg::mutex two{s, second}; }, &what) == procsync::errc::name_collision));
  BOOST_TEST(what.find(first) != std::string::npos);
  // Another kind has its own key space: no collision there.
  pg::event ev{s, second};
}

BOOST_AUTO_TEST_CASE(timed_lock_is_never_early_and_blocked_lock_does_not_poll, *utf::timeout(120)) {
  pg::session a{conninfo()}, b{conninfo()}, observer{conninfo()};
  const auto name = unique_name("t");
  pg::mutex ma{a, name}, mb{b, name};
  ma.lock();
  for (const auto timeout : {0ms, 1ms, 150ms, 400ms}) {
    const auto start = clk::now();
    BOOST_TEST(!mb.try_lock_for(timeout));
    BOOST_TEST((clk::now() - start >= timeout));
  }
  BOOST_TEST(!mb.try_lock_until(std::chrono::system_clock::now() + 50ms));
  // The session is usable after a cancelled wait.
  b.check();
  // A blocked lock() waits on the server: its query never restarts.
  std::atomic<bool> got{false};
  std::thread waiter([&] { mb.lock(); got = true; });
  BOOST_TEST(eventually([&] { return waits_for_a_lock(observer, b.backend_pid()); }));
  const auto started = query_start(observer, b.backend_pid());
  // The behaviour under test, after the look above: for this long its query
  // is seen never to restart (a polling lock would restart it).
  std::this_thread::sleep_for(500ms);
  BOOST_TEST(query_start(observer, b.backend_pid()) == started);
  BOOST_TEST(!got.load());
  ma.unlock();
  waiter.join();
  BOOST_TEST(got.load());
  BOOST_TEST(mb.owned());
  BOOST_TEST((error_of([&] { (void)mb.try_lock_for(10ms); }) == procsync::errc::would_deadlock));
  mb.unlock();
}

BOOST_AUTO_TEST_CASE(fencing_tokens_increase_over_clients, *utf::timeout(60)) {
  pg::session a{conninfo()}, b{conninfo()};
  const auto name = unique_name("f");
  pg::mutex ma{a, name}, mb{b, name};
  BOOST_TEST((error_of([&] { (void)ma.fencing_token(); }) == procsync::errc::not_owner));
  std::uint64_t last = 0;
  for (int i = 0; i < 6; ++i) {
    pg::mutex& m = i % 2 ? mb : ma;
    std::lock_guard g(m);
    const auto t = m.fencing_token();
    BOOST_TEST(t > last);
    BOOST_TEST(m.fencing_token() == t);  // stable (and free) during one hold
    last = t;
  }
}

BOOST_AUTO_TEST_CASE(deadlock_victim_gets_the_server_report_and_keeps_its_locks, *utf::timeout(120)) {
  pg::session a{conninfo()}, b{conninfo()}, c{conninfo()};
  const auto n1 = unique_name("d1"), n2 = unique_name("d2");
  pg::mutex a1{a, n1}, a2{a, n2}, b1{b, n1}, b2{b, n2}, c1{c, n1}, c2{c, n2};
  a1.lock();
  b2.lock();
  std::atomic<int> victims{0};
  std::string report;
  std::atomic<int> victim_kept_lock{-1};
  auto run = [&](pg::mutex& second, pg::mutex& first, pg::mutex& probe) {
    try {
      second.lock();
      second.unlock();
      first.unlock();
    } catch (const procsync::error& e) {
      if (e.code() == procsync::errc::deadlock_detected) {
        report = e.what();
        ++victims;
        victim_kept_lock = first.owned() && !probe.try_lock() ? 1 : 0;
        first.unlock();  // lets the other side finish
      }
    }
  };
  std::thread ta([&] { run(a2, a1, c1); });
  std::thread tb([&] { run(b1, b2, c2); });
  ta.join();
  tb.join();
  BOOST_TEST(victims.load() == 1);
  BOOST_TEST(victim_kept_lock.load() == 1);
  BOOST_TEST(report.find("40P01") != std::string::npos);
  BOOST_TEST(report.find("DETAIL") != std::string::npos);
  BOOST_TEST(report.find("blocked by process") != std::string::npos);
  BOOST_TEST(c1.try_lock());
  BOOST_TEST(c2.try_lock());
}

BOOST_AUTO_TEST_CASE(generic_code_runs_on_both_backends, *utf::timeout(60)) {
  auto local = procsync::make_anonymous<procsync::mutex>();
  pg::session s{conninfo()};
  pg::mutex remote{s, unique_name("g")};
  long value = 0;
  BOOST_TEST(locked_increment(*local, value) == 1);
  BOOST_TEST(locked_increment(remote, value) == 2);
}

BOOST_AUTO_TEST_CASE(shared_mutex_readers_and_writers, *utf::timeout(60)) {
  pg::session a{conninfo()}, b{conninfo()}, w{conninfo()};
  const auto name = unique_name("rw");
  pg::shared_mutex ra{a, name}, rb{b, name}, wr{w, name}, a_again{a, name};
  ra.lock_shared();
  BOOST_TEST(rb.try_lock_shared());
  BOOST_TEST(!wr.try_lock());
  BOOST_TEST(!wr.try_lock_for(100ms));
  BOOST_TEST((error_of([&] { a_again.lock(); }) == procsync::errc::would_deadlock));
  BOOST_TEST((error_of([&] { ra.unlock(); }) == procsync::errc::not_owner));
  ra.unlock_shared();
  rb.unlock_shared();
  BOOST_TEST(wr.try_lock());
  BOOST_TEST(!rb.try_lock_shared_for(50ms));
  BOOST_TEST(wr.fencing_token() > 0);
  wr.unlock();
  BOOST_TEST(rb.try_lock_shared_for(1s));
  rb.unlock_shared();
  BOOST_TEST((error_of([&] { rb.unlock_shared(); }) == procsync::errc::not_owner));
}

BOOST_AUTO_TEST_CASE(semaphore_is_a_permit_pool, *utf::timeout(60)) {
  pg::session a{conninfo()}, b{conninfo()}, observer{conninfo()};
  const auto name = unique_name("s");
  pg::counting_semaphore sa{a, name, 3}, sb{b, name, 3}, sa2{a, name, 3};
  BOOST_TEST(sa.max() == 3);
  // One session may hold several permits (through one object or several).
  BOOST_TEST(sa.try_acquire());
  BOOST_TEST(sa.try_acquire());
  BOOST_TEST(sa2.try_acquire());
  BOOST_TEST(!sb.try_acquire());
  BOOST_TEST(!sa.try_acquire());
  const auto start = clk::now();
  BOOST_TEST(!sb.try_acquire_for(250ms));
  BOOST_TEST((clk::now() - start >= 250ms));
  // A release wakes a waiter: one seen asleep, waiting for a notification
  // after its last look for a permit (sb listens since its timed wait above).
  const auto since = query_start(observer, b.backend_pid());
  std::atomic<pid_t> tid{0};
  std::thread waiter([&] {
    tid = ::gettid();
    sb.acquire();
  });
  BOOST_TEST(eventually([&] {
    return tid.load() != 0 && sleeps_for_notification(observer, b.backend_pid(), since, "SELECT i FROM", tid.load());
  }));
  sa.release();
  waiter.join();
  BOOST_TEST(sb.held() == 1);
  BOOST_TEST((error_of([&] { sb.release(2); }) == procsync::errc::not_owner));
  sb.release();
  BOOST_TEST((error_of([&] { sb.release(); }) == procsync::errc::not_owner));
  sa.release();
  sa2.release();
  BOOST_TEST((error_of([&] { pg::counting_semaphore bad{a, name, 5}; }) == procsync::errc::layout_mismatch));
  BOOST_TEST((error_of([&] { pg::counting_semaphore bad{a, unique_name("z"), 0}; }) == procsync::errc::invalid_argument));
}

BOOST_AUTO_TEST_CASE(event_set_clear_wait, *utf::timeout(60)) {
  pg::session a{conninfo()}, b{conninfo()}, observer{conninfo()};
  const auto name = unique_name("e");
  pg::event ea{a, name}, eb{b, name};
  BOOST_TEST(!ea.is_set());
  const auto start = clk::now();
  BOOST_TEST(!ea.wait_for(200ms));
  BOOST_TEST((clk::now() - start >= 200ms));
  // set() wakes a waiter seen asleep, waiting for a notification after its
  // last look at the flag (ea listens since its timed wait above).
  const auto since = query_start(observer, a.backend_pid());
  std::atomic<pid_t> tid{0};
  std::thread waiter([&] {
    tid = ::gettid();
    ea.wait();
  });
  BOOST_TEST(eventually([&] {
    return tid.load() != 0 && sleeps_for_notification(observer, a.backend_pid(), since, "SELECT is_set", tid.load());
  }));
  eb.set();
  waiter.join();
  BOOST_TEST(ea.is_set());
  BOOST_TEST(ea.wait_for(0ms));
  eb.clear();
  BOOST_TEST(!ea.is_set());
}

BOOST_AUTO_TEST_CASE(shared_value_update_is_exact_across_processes, *utf::timeout(120)) {
  const auto name = unique_name("v");
  {
    pg::session s{conninfo()};
    pg::shared_value<long> v{s, name, 0};
    v.store(5);
    BOOST_TEST(v.load() == 5);
    struct pair { std::int32_t x, y; };
    BOOST_TEST((error_of([&] { pg::shared_value<pair> wrong{s, name}; }) == procsync::errc::wrong_object_kind));
    BOOST_TEST((error_of([&] { v.update([](long) -> long { throw procsync::error(procsync::errc::invalid_argument, "no"); }); }) ==
                procsync::errc::invalid_argument));
    BOOST_TEST(v.load() == 5);  // fn threw: nothing changed, session still usable
  }
  std::vector<pid_t> kids;
  for (int k = 0; k < 4; ++k)
    kids.push_back(fork_child([&] {
      pg::session s{conninfo()};
      pg::shared_value<long> v{s, name, 0};
      for (int i = 0; i < 25; ++i) v.update([](long t) { return t + 1; });
      return 0;
    }));
  for (const pid_t k : kids) BOOST_TEST(wait_exit_code(k, 90s) == 0);
  pg::session s{conninfo()};
  pg::shared_value<long> v{s, name, 0};
  BOOST_TEST(v.load() == 105);
}

BOOST_AUTO_TEST_CASE(tcp_loopback, *utf::timeout(60)) {
  pg::session t{tcp_conninfo()}, u{conninfo()};
  const auto name = unique_name("tcp");
  pg::mutex mt{t, name}, mu{u, name};
  std::lock_guard g(mt);
  BOOST_TEST(!mu.try_lock());
}

BOOST_AUTO_TEST_CASE(forked_child_refuses_the_parents_session, *utf::timeout(60)) {
  pg::session s{conninfo()};
  pg::mutex m{s, unique_name("fork")};
  m.lock();
  const pid_t kid = fork_child([&] {
    if (error_of([&] { s.check(); }) != procsync::errc::unsupported) return 1;
    if (error_of([&] { pg::mutex n{s, "other"}; }) != procsync::errc::unsupported) return 2;
    m.unlock();   // must not touch the parent's connection
    { pg::session moved{std::move(s)}; }  // closing in the child leaves the parent's connection alone
    pg::session own{conninfo()};
    pg::mutex mine{own, m.name()};
    return mine.try_lock() ? 3 : 0;  // the parent still holds it
  });
  BOOST_TEST(wait_exit_code(kid) == 0);
  s.check();
  BOOST_TEST(m.owned());
  m.unlock();
}

BOOST_AUTO_TEST_CASE(server_error_carries_the_servers_message, *utf::timeout(60)) {
  // A read-only session cannot register a new name.
  pg::session ro{conninfo() + " options='-c default_transaction_read_only=on'"};
  std::string what;
  BOOST_TEST((error_of([&] { pg::mutex m{ro, unique_name("ro")}; }, &what) == procsync::errc::server_error));
  BOOST_TEST(what.find("read-only") != std::string::npos);
  BOOST_TEST(what.find("25006") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(terminated_session_reports_loss_and_stays_broken, *utf::timeout(60)) {
  pg::session s{conninfo()}, admin{conninfo()}, other{conninfo()};
  const auto name = unique_name("term");
  pg::mutex m{s, name}, mo{other, name};
  m.lock();
  BOOST_TEST(query(admin, "SELECT pg_terminate_backend(" + std::to_string(s.backend_pid()) + ")") == "t");
  BOOST_TEST(eventually([&] { return mo.try_lock(); }));  // the server released it
  std::string what;
  BOOST_TEST((error_of([&] { s.check(); }, &what) == procsync::errc::connection_lost));
  BOOST_TEST(s.broken());
  m.unlock();  // never throws for a lost connection
  BOOST_TEST((error_of([&] { m.lock(); }) == procsync::errc::connection_lost));
  BOOST_TEST((error_of([&] { s.check(); }) == procsync::errc::connection_lost));
  mo.unlock();
}

BOOST_AUTO_TEST_CASE(sigkilled_holders_release_lock_permit_and_update, *utf::timeout(120)) {
  const auto mname = unique_name("km"), sname = unique_name("ks"), vname = unique_name("kv");
  pg::session s{conninfo()};
  pg::mutex m{s, mname};
  pg::counting_semaphore sem{s, sname, 1};
  pg::shared_value<long> v{s, vname, 100};
  pipe_pair p;
  const pid_t kid = fork_child([&] {
    pg::session own{conninfo()};
    pg::mutex km{own, mname};
    pg::counting_semaphore ks{own, sname, 1};
    pg::shared_value<long> kv{own, vname, 0};
    km.lock();
    ks.acquire();
    kv.update([&](long t) {
      write_byte(p.fd[1]);  // holding all three, mid-update
      for (;;) ::pause();
      return t + 1000;
    });
    return 1;
  });
  BOOST_TEST_REQUIRE(read_byte(p.fd[0]));
  BOOST_TEST(!m.try_lock());
  BOOST_TEST(!sem.try_acquire());
  BOOST_TEST(v.update([](long t) { return t + 1; }) == 101);  // an open update blocks nobody
  ::kill(kid, SIGKILL);
  BOOST_TEST(wait_exit_code(kid) == -SIGKILL);
  BOOST_TEST(m.try_lock_for(30s));
  BOOST_TEST(sem.try_acquire_for(30s));
  BOOST_TEST(v.load() == 101);  // the killed update never committed
  m.unlock();
  sem.release();
}

BOOST_AUTO_TEST_CASE(paused_holder_outlives_its_session_and_is_fenced, *utf::timeout(120)) {
  const auto name = unique_name("pause"), store = unique_name("store");
  pg::session s{conninfo()};
  pg::mutex m{s, name};
  // The protected resource: a value that accepts a write only with a token
  // at least as high as the highest it has seen.
  pg::shared_value<std::uint64_t> highest{s, store, 0};
  pipe_pair p;
  const pid_t kid = fork_child([&] {
    pg::session own{conninfo() + " options='-c idle_session_timeout=1s'"};
    pg::mutex km{own, name};
    km.lock();
    const auto token = km.fencing_token();
    write_byte(p.fd[1]);
    ::raise(SIGSTOP);  // paused past the server's idle_session_timeout
    // Awake, believing it holds the lock. The check tells it otherwise...
    const bool lost = error_of([&] { own.check(); }) == procsync::errc::connection_lost;
    // ...and even without the check, the resource refuses its stale token.
    pg::session fresh{conninfo()};
    pg::shared_value<std::uint64_t> h{fresh, store, 0};
    bool accepted = false;
    h.update([&](std::uint64_t seen) { accepted = token >= seen; return accepted ? token : seen; });
    km.unlock();  // never throws
    return lost && !accepted ? 0 : 1;
  });
  BOOST_TEST_REQUIRE(read_byte(p.fd[0]));
  // The server ends the paused holder's idle session and hands us the lock.
  BOOST_TEST_REQUIRE(m.try_lock_for(60s));
  const auto token = m.fencing_token();
  highest.update([&](std::uint64_t seen) { return token >= seen ? token : seen; });
  BOOST_TEST(highest.load() == token);
  ::kill(kid, SIGCONT);
  BOOST_TEST(wait_exit_code(kid, 60s) == 0);
  BOOST_TEST(highest.load() == token);  // the stale write was refused
  m.unlock();
}

// Runs last: crashes the server (pg_ctl stop -m immediate) under holders and
// waiters of every kind, then starts it again.
BOOST_AUTO_TEST_CASE(server_crash_under_holders_and_waiters, *utf::timeout(180)) {
  const std::string script = env_or_fail("PROCSYNC_PG_CLUSTER_SCRIPT");
  const std::string cluster = env_or_fail("PROCSYNC_PG_CLUSTER");
  const auto mname = unique_name("cm"), sname = unique_name("cs"), ename = unique_name("ce");
  pg::session holder{conninfo()}, w1{conninfo()}, w2{conninfo()}, w3{conninfo()}, observer{conninfo()};
  pg::mutex hm{holder, mname}, wm{w1, mname};
  pg::counting_semaphore hs{holder, sname, 1}, ws{w2, sname, 1};
  pg::event we{w3, ename};
  hm.lock();
  hs.acquire();
  std::atomic<int> lost{0}, other{0};
  auto outcome = [&](auto&& wait) {
    try { wait(); ++other; } catch (const procsync::error& e) {
      if (e.code() == procsync::errc::connection_lost) ++lost; else ++other;
    }
  };
  const auto since2 = query_start(observer, w2.backend_pid()), since3 = query_start(observer, w3.backend_pid());
  std::atomic<pid_t> tid2{0}, tid3{0};
  std::thread t1([&] { outcome([&] { wm.lock(); }); });
  std::thread t2([&] {
    tid2 = ::gettid();
    outcome([&] { ws.acquire(); });
  });
  std::thread t3([&] {
    tid3 = ::gettid();
    outcome([&] { we.wait(); });
  });
  // All three wait, seen by looking (a waiter not yet waiting would see the
  // loss too, so a miss here costs nothing but the case's meaning).
  BOOST_TEST(eventually([&] {
    return waits_for_a_lock(observer, w1.backend_pid()) && tid2.load() != 0 && tid3.load() != 0 &&
           sleeps_for_notification(observer, w2.backend_pid(), since2, "SELECT i FROM", tid2.load()) &&
           sleeps_for_notification(observer, w3.backend_pid(), since3, "SELECT is_set", tid3.load());
  }));
  BOOST_TEST_REQUIRE(std::system(("bash '" + script + "' kill '" + cluster + "'").c_str()) == 0);
  t1.join();
  t2.join();
  t3.join();
  BOOST_TEST(lost.load() == 3);
  BOOST_TEST(other.load() == 0);
  hm.unlock();  // never throws
  hs.release();
  BOOST_TEST((error_of([&] { holder.check(); }) == procsync::errc::connection_lost));
  BOOST_TEST((error_of([&] { hm.lock(); }) == procsync::errc::connection_lost));
  BOOST_TEST_REQUIRE(std::system(("bash '" + script + "' resume '" + cluster + "'").c_str()) == 0);
  // A broken session stays broken; a new one finds everything free.
  BOOST_TEST((error_of([&] { holder.check(); }) == procsync::errc::connection_lost));
  pg::session fresh{conninfo()};
  pg::mutex fm{fresh, mname};
  pg::counting_semaphore fs{fresh, sname, 1};
  BOOST_TEST(fm.try_lock());
  BOOST_TEST(fs.try_acquire());
}
