// join_many.cpp — start ten children at once, then wait for all of them.
//
// The classic e-mail story: ten children each "send the first e-mail" (after a
// short delay, to look busy). They run concurrently, so the whole batch takes
// about as long as one of them. The parent sends "the second e-mail" only
// after join() has returned for every child: join() is what makes it wait.
//
// The Python original, in outline:
//
//   from multiprocessing import Process
//   import time
//
//   def send_first_email(i):
//       time.sleep(1)
//       print("first e-mail sent by", i)
//
//   if __name__ == "__main__":
//       children = [Process(target=send_first_email, args=(i,)) for i in range(10)]
//       for c in children: c.start()
//       for c in children: c.join()
//       print("second e-mail")
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <thread>
#include <vector>

#include <procsync/process.hpp>

namespace {

int send_first_email(int i, std::chrono::milliseconds delay) {
  std::this_thread::sleep_for(delay);
  std::printf("child %d (pid %d): first e-mail sent: dear leader, are you there?\n", i, ::getpid());
  return 0;
}

}  // namespace

int main() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  const bool fast = std::getenv("PROCSYNC_EXAMPLE_FAST") != nullptr;
  const auto delay = std::chrono::milliseconds(fast ? 100 : 1000);

  const auto start = std::chrono::steady_clock::now();
  std::vector<std::unique_ptr<procsync::process>> children;
  for (int i = 1; i <= 10; ++i) {
    // process objects can neither be copied nor moved: keep them in unique_ptrs.
    children.push_back(std::make_unique<procsync::process>(send_first_email, i, delay));
    children.back()->start();  // start them all first ...
  }
  for (auto& child : children) child->join();  // ... then wait for them all
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("parent: all 10 children joined after %.2f s (each took %.2f s: they ran concurrently)\n", seconds,
              std::chrono::duration<double>(delay).count());
  std::printf("parent: second e-mail sent: please raise my salary to 60,000 a month.\n");
  return 0;
}
