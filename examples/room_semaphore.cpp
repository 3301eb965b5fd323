// room_semaphore.cpp — at most three processes inside a room at once.
//
// A lock lets one process in; a semaphore lets N in. Eight visitor processes
// want to enter a room with three chairs. The room's door is a
// procsync::counting_semaphore<3> in shared memory: acquire() takes a chair
// (waiting while all three are taken), release() gives it back and lets the
// next visitor in. A shared counter records how many are inside, and the most
// ever seen at once, to show the bound holds.
//
// The Python original, in outline:
//
//   from multiprocessing import Process, Semaphore
//
//   def visit(door, i):
//       with door:                   # acquire a chair, release it on the way out
//           print(i, "is inside")
//
//   if __name__ == "__main__":
//       door = Semaphore(3)
//       visitors = [Process(target=visit, args=(door, i)) for i in range(8)]
//       for v in visitors: v.start()
//       for v in visitors: v.join()
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include <procsync/process.hpp>
#include <procsync/segment.hpp>
#include <procsync/semaphore.hpp>

namespace {

constexpr int chairs = 3;
constexpr int visitors = 8;

struct room {
  procsync::counting_semaphore<chairs> door{chairs};  // three permits
  std::atomic<int> inside{0};
  std::atomic<int> most_inside{0};
};

int visit(room& r, int me, std::chrono::milliseconds stay) {
  r.door.acquire();  // blocks while three visitors are inside
  const int now_inside = r.inside.fetch_add(1) + 1;
  int most = r.most_inside.load();
  while (now_inside > most && !r.most_inside.compare_exchange_weak(most, now_inside)) {
  }
  std::printf("visitor %d enters (%d inside)\n", me, now_inside);
  std::this_thread::sleep_for(stay);  // sit for a while
  r.inside.fetch_sub(1);
  std::printf("visitor %d leaves\n", me);
  r.door.release();  // the next waiting visitor may enter
  return 0;
}

}  // namespace

int main() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // one line at a time, even into a pipe
  const bool fast = std::getenv("PROCSYNC_EXAMPLE_FAST") != nullptr;
  const auto stay = std::chrono::milliseconds(fast ? 30 : 300);

  auto r = procsync::make_anonymous<room>();  // shared with the children
  std::printf("%d visitors, %d chairs\n", visitors, chairs);
  std::vector<std::unique_ptr<procsync::process>> people;
  for (int v = 0; v < visitors; ++v) {
    people.push_back(std::make_unique<procsync::process>(visit, std::ref(*r), v + 1, stay));
    people.back()->start();
  }
  for (auto& p : people) p->join();
  std::printf("everyone visited; at most %d were inside at once (limit %d); %ld chairs free\n",
              r->most_inside.load(), chairs, static_cast<long>(r->door.value()));
  return 0;
}
