// data_isolation.cpp — each process has its own memory.
//
// A child gets a *copy* of its parent's memory: when the child increments a
// global variable, only its copy changes and the parent still sees the old
// value. To share data, put it in shared memory: here a
// procsync::shared_value<int> created with make_anonymous() before the
// children are started, so they all map the very same object.
//
// The Python original, in outline:
//
//   from multiprocessing import Process, Value
//
//   counter = 0                      # each child changes its own copy
//
//   def bump(shared):
//       global counter
//       counter += 1
//       with shared.get_lock():
//           shared.value += 1        # the shared one really changes
//
//   if __name__ == "__main__":
//       shared = Value("i", 100)
//       children = [Process(target=bump, args=(shared,)) for _ in range(10)]
//       for c in children: c.start()
//       for c in children: c.join()
//       print(counter, shared.value) # 0 110
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <vector>

#include <procsync/process.hpp>
#include <procsync/segment.hpp>
#include <procsync/shared_value.hpp>

namespace {

int total = 100;  // an ordinary global: every process has its own copy

}  // namespace

int main() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);

  procsync::process p{[] {
    total += 1;
    std::printf("child: global total = %d\n", total);
    return 0;
  }};
  p.start();
  p.join();
  std::printf("parent: global total = %d (the child changed only its own copy)\n", total);

  // The same with shared memory, incremented by ten children at once.
  auto shared_total = procsync::make_anonymous<procsync::shared_value<int>>(100);
  std::vector<std::unique_ptr<procsync::process>> children;
  for (int i = 0; i < 10; ++i) {
    children.push_back(std::make_unique<procsync::process>([shared_total] {
      shared_total->fetch_add(1);  // atomic: no update is lost
      return 0;
    }));
    children.back()->start();
  }
  for (auto& c : children) c->join();
  std::printf("parent: shared total = %d after 10 children added 1 each\n", shared_total->load());
  return 0;
}
