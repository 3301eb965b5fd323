// condition_queue.cpp — producers and consumers in different processes.
//
// A queue of 4 slots lives in shared memory, guarded by a procsync::mutex.
// Two procsync::condition_variable objects say when it is worth looking again:
// consumers wait on `not_empty`, producers on `not_full`. Two producer
// processes each make 10 items; two consumer processes take them until they
// find a "closed" queue that is empty. Every item must be consumed exactly once.
//
// The Python original, in outline:
//
//   from multiprocessing import Process, Condition
//
//   def produce(cond, queue):
//       with cond:
//           cond.wait_for(lambda: len(queue) < 4)
//           queue.append(item)
//           cond.notify_all()
//
//   def consume(cond, queue):
//       with cond:
//           cond.wait_for(lambda: len(queue) > 0)
//           item = queue.pop(0)
//           cond.notify_all()
#include <cstdio>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include <procsync/condition_variable.hpp>
#include <procsync/mutex.hpp>
#include <procsync/process.hpp>
#include <procsync/segment.hpp>

namespace {

constexpr int capacity = 4;
constexpr int producers = 2, consumers = 2, items_each = 10;
constexpr int total_items = producers * items_each;

struct queue {
  procsync::mutex lock;
  procsync::condition_variable not_empty, not_full;
  int slots[capacity] = {};
  int head = 0, size = 0;
  int producers_left = producers;  // the queue is closed when this reaches 0
  int times_consumed[total_items] = {};  // bookkeeping for the final check
};

void put(queue& q, int item) {
  std::unique_lock guard(q.lock);
  // wait() unlocks while sleeping and relocks before returning; the predicate
  // is re-checked because another process may have filled the slot first.
  q.not_full.wait(guard, [&] { return q.size < capacity; });
  q.slots[(q.head + q.size) % capacity] = item;
  ++q.size;
  q.not_empty.notify_one();
}

// Returns -1 once the queue is closed and empty.
int take(queue& q) {
  std::unique_lock guard(q.lock);
  q.not_empty.wait(guard, [&] { return q.size > 0 || q.producers_left == 0; });
  if (q.size == 0) return -1;
  const int item = q.slots[q.head];
  q.head = (q.head + 1) % capacity;
  --q.size;
  ++q.times_consumed[item];
  q.not_full.notify_one();
  return item;
}

int producer(queue& q, int me) {
  for (int i = 0; i < items_each; ++i) put(q, me * items_each + i);
  std::printf("producer %d made %d items\n", me + 1, items_each);
  std::lock_guard guard(q.lock);
  if (--q.producers_left == 0) q.not_empty.notify_all();  // wake consumers to see "closed"
  return 0;
}

int consumer(queue& q, int me) {
  int count = 0;
  for (int item; (item = take(q)) >= 0;) ++count;
  std::printf("consumer %d took %d items\n", me + 1, count);
  return 0;
}

}  // namespace

int main() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  auto q = procsync::make_anonymous<queue>();
  std::vector<std::unique_ptr<procsync::process>> team;
  for (int c = 0; c < consumers; ++c) team.push_back(std::make_unique<procsync::process>(consumer, std::ref(*q), c));
  for (int p = 0; p < producers; ++p) team.push_back(std::make_unique<procsync::process>(producer, std::ref(*q), p));
  for (auto& member : team) member->start();
  for (auto& member : team) member->join();

  int once = 0, lost = 0, twice = 0;
  for (int c : q->times_consumed) (c == 1 ? once : c == 0 ? lost : twice)++;
  std::printf("%d items: %d consumed exactly once, %d lost, %d consumed twice\n", total_items, once, lost, twice);
  return 0;
}
