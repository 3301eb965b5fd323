// pg_ticket_sale.cpp — the ticket sale (ticket_sale.cpp) retold for buyers
// that share no memory: independent programs, each with its own connection
// to a PostgreSQL server, as if each ran on a machine of its own.
//
// Ten tickets are on sale. Five buyer programs (this executable started again
// with "buyer N") wait at the door (a pg::event), then each loops: take the box office's lock, look at what is left,
// pay (slowly), write the sale back, unlock. Buyer 3 is SIGKILLed while it
// holds the lock in the middle of a sale: the server ends its session and
// hands the lock to the next buyer, and its unfinished sale was never
// written. Exactly ten tickets are sold.
//
// The sale is written with the lock's fencing token: the box office refuses a
// write whose token is lower than the last one it accepted, so even a buyer
// that was only paused (not killed) past its session could not sell a seat twice.
//
//   pg_ticket_sale [CONNINFO]      (default: $PROCSYNC_PG_CONNINFO)
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>

#include <procsync/pg.hpp>

namespace {

constexpr int tickets_on_sale = 10;
constexpr int buyers = 5;
constexpr int doomed = 3;  // this buyer is killed mid-sale

// The box office's books: one shared_value, so a sale is committed all at once.
struct books {
  std::int32_t left;
  std::int32_t bought[buyers];
  std::uint64_t last_token;  // the highest fencing token that wrote here
};

std::chrono::milliseconds pace(int ms) {
  return std::chrono::milliseconds(std::getenv("PROCSYNC_EXAMPLE_FAST") ? ms : ms * 5);
}

// One buyer program: buy until nothing is left.
int buyer(int me, const std::string& sale, const std::string& conninfo, int report_fd) {
  procsync::pg::session s{conninfo};
  procsync::pg::mutex office{s, sale + "-office"};
  procsync::pg::shared_value<books> ledger{s, sale + "-books"};
  procsync::pg::event doors{s, sale + "-doors"};
  (void)!::write(report_fd, "r", 1);  // at the door
  doors.wait();                       // the doors open for everyone at once
  for (int sold = 0;;) {
    std::unique_lock guard(office);
    books b = ledger.load();  // 1. look
    if (b.left <= 0) return 0;
    const std::uint64_t token = office.fencing_token();
    if (me == doomed && sold == 0) {
      std::printf("buyer %d holds the lock and pays for ticket %d...\n", me, tickets_on_sale - b.left + 1);
      std::fflush(stdout);
      (void)!::write(report_fd, "k", 1);  // the coordinator kills us now
      for (;;) ::pause();
    }
    std::this_thread::sleep_for(pace(2));  // 2. pay (slow)
    // 3. take, fenced: refused if a later holder has written meanwhile.
    ledger.update([&](books now) {
      if (token < now.last_token) return now;
      --now.left;
      ++now.bought[me - 1];
      now.last_token = token;
      return now;
    });
    ++sold;
    guard.unlock();
    std::this_thread::sleep_for(pace(1));
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 6 && std::string(argv[1]) == "buyer")
    return buyer(std::atoi(argv[2]), argv[3], argv[4], std::atoi(argv[5]));

  const char* env = std::getenv("PROCSYNC_PG_CONNINFO");
  const std::string conninfo = argc > 1 ? argv[1] : env ? env : "";
  if (conninfo.empty()) {
    std::fprintf(stderr, "usage: pg_ticket_sale CONNINFO (or set PROCSYNC_PG_CONNINFO)\n");
    return 2;
  }
  ::alarm(120);  // never hang
  const std::string sale = "ticket-sale-" + std::to_string(::getpid());
  procsync::pg::session s{conninfo};
  procsync::pg::shared_value<books> ledger{s, sale + "-books", books{tickets_on_sale, {}, 0}};
  std::printf("%d buyer programs race for %d tickets through PostgreSQL\n", buyers, tickets_on_sale);
  std::fflush(stdout);

  int report[2];
  if (::pipe(report) != 0) return 1;
  pid_t pids[buyers];
  for (int b = 1; b <= buyers; ++b) {
    pids[b - 1] = ::fork();
    if (pids[b - 1] == 0) {
      ::close(report[0]);
      const std::string me = std::to_string(b), fd = std::to_string(report[1]);
      ::execl("/proc/self/exe", argv[0], "buyer", me.c_str(), sale.c_str(), conninfo.c_str(), fd.c_str(), nullptr);
      ::_exit(127);
    }
  }
  ::close(report[1]);
  char c;
  for (int ready = 0; ready < buyers && ::read(report[0], &c, 1) == 1;) ready += c == 'r';
  procsync::pg::event doors{s, sale + "-doors"};
  doors.set();
  while (::read(report[0], &c, 1) == 1 && c != 'k') {
  }
  ::kill(pids[doomed - 1], SIGKILL);

  for (int b = 1; b <= buyers; ++b) {
    int status = 0;
    ::waitpid(pids[b - 1], &status, 0);
    if (WIFSIGNALED(status))
      std::printf("buyer %d was SIGKILLed mid-sale (it held the lock); exit -%d\n", b, WTERMSIG(status));
    else if (WEXITSTATUS(status) != 0)
      std::printf("buyer %d failed: exit %d\n", b, WEXITSTATUS(status));
  }
  const books b = ledger.load();
  int sold = 0;
  std::printf("with procsync::pg::mutex:");
  for (int i = 0; i < buyers; ++i) {
    std::printf(" buyer%d=%d", i + 1, b.bought[i]);
    sold += b.bought[i];
  }
  std::printf("\n  sold %d tickets for %d seats, %d left: %s\n", sold, tickets_on_sale, b.left,
              sold == tickets_on_sale && b.left == 0 ? "correct" : "WRONG");
  return sold == tickets_on_sale && b.left == 0 ? 0 : 1;
}
