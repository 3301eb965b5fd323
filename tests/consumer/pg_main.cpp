// A consumer of an installed procsync::pg: links libpq through the package
// files. With PROCSYNC_PG_CONNINFO set it also takes and releases a lock on
// that server; without it, building and linking is the check.
#include <procsync/pg.hpp>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>

int main() {
  const char* conninfo = std::getenv("PROCSYNC_PG_CONNINFO");
  if (conninfo == nullptr) {
    std::printf("procsync-pg consumer: built and linked (no server given)\n");
    return 0;
  }
  procsync::pg::session s{conninfo};
  procsync::pg::mutex m{s, "consumer-" + std::to_string(::getpid())};
  std::lock_guard g(m);
  std::printf("procsync-pg consumer: locked, fencing token %llu\n",
              static_cast<unsigned long long>(m.fencing_token()));
  return 0;
}
