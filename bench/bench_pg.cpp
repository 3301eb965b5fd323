// bench/bench_pg.cpp — what leaving the machine costs: procsync::pg::mutex
// against the same statements issued by hand through libpq (the floor), and
// against the local procsync::mutex.
//
// roundtrip/<impl>/<transport>: one client, lock+unlock in a loop (two round
//   trips for pg); ns per lock+unlock.
// contended/<impl>/<transport>/clients:4: 4 forked clients, each with its own
//   session, take the same lock PROCSYNC_BENCH_PG_OPS times (default 2000) in
//   all; items_per_second is locks per second over all clients.
// paired/<transport>/clients:<N>: the fairest comparison on a busy machine.
//   N clients (1 or 4) each alternate, op by op, one pg::mutex lock+unlock and
//   one by-hand lock+unlock (on another name), timing each, so background load
//   hits both alike. Counters: pg_us, floor_us (mean per lock+unlock) and
//   ratio = pg_us / floor_us.
// <transport>: unix (PROCSYNC_PG_CONNINFO) or tcp (PROCSYNC_PG_TCP_CONNINFO).
// Start a server with scripts/pg-cluster.sh start DIR and eval its output.
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <benchmark/benchmark.h>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>

#include <procsync/mutex.hpp>
#include <procsync/pg.hpp>

#include "bench_main.hpp"

namespace {

namespace pg = procsync::pg;

std::string conninfo_for(const std::string& transport) {
  const char* v = std::getenv(transport == "tcp" ? "PROCSYNC_PG_TCP_CONNINFO" : "PROCSYNC_PG_CONNINFO");
  return v ? v : "";
}

// One name for the run, fixed before any fork, so the forked clients share it.
const std::string& bench_name() {
  static const std::string name = "bench-pg-" + std::to_string(::getpid());
  return name;
}

// The floor: the very statements pg::mutex sends, through PQexec.
struct raw_lock {
  PGconn* c;
  std::string lock_sql, unlock_sql;
  explicit raw_lock(const std::string& conninfo, const std::string& name) : c(PQconnectdb(conninfo.c_str())) {
    const auto key = std::to_string(pg::detail::name_key(name));
    lock_sql = "SELECT pg_advisory_lock(1886584833, " + key + ")";
    unlock_sql = "SELECT pg_advisory_unlock(1886584833, " + key + ")";
  }
  ~raw_lock() { PQfinish(c); }
  void lock() { check(PQexec(c, lock_sql.c_str())); }
  void unlock() { check(PQexec(c, unlock_sql.c_str())); }
  static void check(PGresult* r) {
    if (PQresultStatus(r) != PGRES_TUPLES_OK) { std::fprintf(stderr, "raw: %s", PQresultErrorMessage(r)); std::abort(); }
    PQclear(r);
  }
};

template <class Make>
void roundtrip(benchmark::State& state, Make make) {
  auto lock = make();
  for (auto _ : state) {
    lock->lock();
    lock->unlock();
  }
  state.SetItemsProcessed(state.iterations());
}

// 4 clients in forked processes; each makes its lock after the fork.
template <class Make>
void contended(benchmark::State& state, Make make) {
  const long ops = std::getenv("PROCSYNC_BENCH_PG_OPS") ? std::atol(std::getenv("PROCSYNC_BENCH_PG_OPS")) : 2000;
  constexpr int clients = 4;
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    pid_t kids[clients];
    for (int k = 0; k < clients; ++k) {
      kids[k] = ::fork();
      if (kids[k] == 0) {
        {
          auto lock = make();
          for (long i = 0; i < ops / clients; ++i) {
            lock->lock();
            lock->unlock();
          }
        }
        ::_exit(0);
      }
    }
    for (const pid_t k : kids) {
      int status = 0;
      ::waitpid(k, &status, 0);
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) state.SkipWithError("a client failed");
    }
    state.SetIterationTime(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  state.SetItemsProcessed(state.iterations() * (ops / clients) * clients);
}

struct pg_lock {
  pg::session s;
  pg::mutex m;
  explicit pg_lock(const std::string& conninfo, const std::string& name) : s(conninfo), m(s, name) {}
  void lock() { m.lock(); }
  void unlock() { m.unlock(); }
};

// The local mutex in MAP_SHARED memory (made before the fork, so shared).
procsync::mutex* local_mutex() {
  static auto* m = new (::mmap(nullptr, sizeof(procsync::mutex), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                               -1, 0)) procsync::mutex;
  return m;
}
struct local_lock {
  void lock() { local_mutex()->lock(); }
  void unlock() { local_mutex()->unlock(); }
};

// Alternates pg::mutex and the floor in each of `clients` forked clients.
void paired(benchmark::State& state, const std::string& transport, int clients) {
  const long ops = std::getenv("PROCSYNC_BENCH_PG_OPS") ? std::atol(std::getenv("PROCSYNC_BENCH_PG_OPS")) : 2000;
  struct totals { double pg_ns, floor_ns; long n; };
  auto* shared = static_cast<totals*>(::mmap(nullptr, sizeof(totals) * 8, PROT_READ | PROT_WRITE,
                                             MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  double pg_ns = 0, floor_ns = 0;
  long n = 0;
  for (auto _ : state) {
    pid_t kids[8];
    for (int k = 0; k < clients; ++k) {
      kids[k] = ::fork();
      if (kids[k] == 0) {
        pg_lock a{conninfo_for(transport), bench_name()};
        raw_lock b{conninfo_for(transport), bench_name() + "-floor"};
        totals t{0, 0, 0};
        using clock = std::chrono::steady_clock;
        for (long i = 0; i < ops / clients; ++i) {
          const bool pg_first = (i + k) % 2 == 0;  // alternate the order too
          for (int half = 0; half < 2; ++half) {
            const auto t0 = clock::now();
            if ((half == 0) == pg_first) { a.lock(); a.unlock(); } else { b.lock(); b.unlock(); }
            const double dt = std::chrono::duration<double, std::nano>(clock::now() - t0).count();
            ((half == 0) == pg_first ? t.pg_ns : t.floor_ns) += dt;
          }
          ++t.n;
        }
        shared[k] = t;
        ::_exit(0);
      }
    }
    for (int k = 0; k < clients; ++k) {
      int status = 0;
      ::waitpid(kids[k], &status, 0);
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) state.SkipWithError("a client failed");
      pg_ns += shared[k].pg_ns;
      floor_ns += shared[k].floor_ns;
      n += shared[k].n;
    }
  }
  ::munmap(shared, sizeof(totals) * 8);
  state.counters["pg_us"] = pg_ns / static_cast<double>(n) / 1000;
  state.counters["floor_us"] = floor_ns / static_cast<double>(n) / 1000;
  state.counters["ratio"] = pg_ns / floor_ns;
}

}  // namespace

int main(int argc, char** argv) {
  if (conninfo_for("unix").empty() || conninfo_for("tcp").empty()) {
    std::fprintf(stderr, "bench_pg: set PROCSYNC_PG_CONNINFO and PROCSYNC_PG_TCP_CONNINFO "
                         "(eval \"$(scripts/pg-cluster.sh start DIR)\")\n");
    return 2;
  }
  // A pg::mutex registers its name once; the floor then reuses the key.
  (void)bench_name();
  {
    pg::session s{conninfo_for("unix")};
    pg::mutex m{s, bench_name()}, f{s, bench_name() + "-floor"};
  }
  (void)local_mutex();
  benchmark::RegisterBenchmark("roundtrip/procsync_mutex/local", [](benchmark::State& st) {
    roundtrip(st, [] { return std::make_unique<local_lock>(); });
  });
  benchmark::RegisterBenchmark("contended/procsync_mutex/local/clients:4", [](benchmark::State& st) {
    contended(st, [] { return std::make_unique<local_lock>(); });
  })->UseManualTime()->Iterations(3);
  for (const std::string transport : {"unix", "tcp"}) {
    benchmark::RegisterBenchmark(("roundtrip/libpq_floor/" + transport).c_str(), [transport](benchmark::State& st) {
      roundtrip(st, [&] { return std::make_unique<raw_lock>(conninfo_for(transport), bench_name()); });
    });
    benchmark::RegisterBenchmark(("roundtrip/pg_mutex/" + transport).c_str(), [transport](benchmark::State& st) {
      roundtrip(st, [&] { return std::make_unique<pg_lock>(conninfo_for(transport), bench_name()); });
    });
    benchmark::RegisterBenchmark(("contended/libpq_floor/" + transport + "/clients:4").c_str(),
                                 [transport](benchmark::State& st) {
                                   contended(st, [&] { return std::make_unique<raw_lock>(conninfo_for(transport), bench_name()); });
                                 })->UseManualTime()->Iterations(3);
    benchmark::RegisterBenchmark(("contended/pg_mutex/" + transport + "/clients:4").c_str(),
                                 [transport](benchmark::State& st) {
                                   contended(st, [&] { return std::make_unique<pg_lock>(conninfo_for(transport), bench_name()); });
                                 })->UseManualTime()->Iterations(3);
  }
  for (const std::string transport : {"unix", "tcp"})
    for (const int clients : {1, 4})
      benchmark::RegisterBenchmark(("paired/" + transport + "/clients:" + std::to_string(clients)).c_str(),
                                   [transport, clients](benchmark::State& st) { paired(st, transport, clients); })
          ->Iterations(3)->Unit(benchmark::kMillisecond);
  return bench::run_registered(argc, argv);
}
