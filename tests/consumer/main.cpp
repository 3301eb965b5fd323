// A consumer of an installed procsync: two processes increment a counter
// under a procsync::mutex in anonymous shared memory. Exits 0 on success.
#include <procsync/mutex.hpp>
#include <procsync/segment.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <mutex>

struct shared_counter {
  procsync::mutex m;
  long value = 0;
};

int main() {
  auto counter = procsync::make_anonymous<shared_counter>();
  constexpr int iters = 10000;
  const pid_t child = ::fork();
  if (child < 0) return 2;
  for (int i = 0; i < iters; ++i) {
    std::lock_guard lock(counter->m);
    ++counter->value;
  }
  if (child == 0) ::_exit(0);
  int status = 0;
  if (::waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return 3;
  std::printf("procsync consumer: counter = %ld\n", counter->value);
  return counter->value == 2 * iters ? 0 : 1;
}
