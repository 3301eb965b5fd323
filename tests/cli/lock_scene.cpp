// Test helper for procsync-shm locks/deadlock: builds the lock scene of
// tests/support/lock_scene.hpp in segment NAME with real processes, prints
// what is true ("key=value" lines: the children's pids), then "ready".
// Reads commands from stdin: "resume" lets the stopped deadlock child go (it
// becomes the victim; prints "resumed" once both finished); "close" closes the
// scene's inbox queue from a child process (prints "closed" once the consumer
// sleeping in it woke and exited). At end of input it kills its children and
// removes the segment.
#define PROCSYNC_QUEUE_TEST_HOOK 1
#include <cstdio>
#include <iostream>
#include <string>

#include "lock_scene.hpp"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: lock_scene NAME\n");
    return 2;
  }
  procsync_test::lock_scene scene(argv[1]);
  std::printf(
      "holder=%d\nwaiter=%d\npermits=%d\nparty=%d\nreader=%d\ntransfer=%d\naudit=%d\ndl_high=%d\ndl_low=%d\n"
      "producer=%d\nconsumer=%d\npusher=%d\nsender=%d\nready\n",
      scene.holder, scene.waiter, scene.permits, scene.party, scene.reader, scene.transfer, scene.audit, scene.dl_high,
      scene.dl_low, scene.producer, scene.consumer, scene.pusher, scene.sender);
  std::fflush(stdout);
  for (std::string line; std::getline(std::cin, line);) {
    if (line == "resume") {
      scene.resume_deadlock();
      std::printf("resumed\n");
      std::fflush(stdout);
    } else if (line == "close") {
      scene.close_inbox();
      std::printf("closed\n");
      std::fflush(stdout);
    }
  }
  return 0;
}
