// Test helper for procsync-shm locks/deadlock: builds the lock scene of
// tests/support/lock_scene.hpp in segment NAME with real processes, prints
// what is true ("key=value" lines: the children's pids), then "ready".
// Reads commands from stdin: "resume" lets the stopped deadlock child go (it
// becomes the victim; prints "resumed" once both finished). At end of input it
// kills its children and removes the segment.
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
  std::printf("holder=%d\nwaiter=%d\npermits=%d\nparty=%d\nreader=%d\ntransfer=%d\naudit=%d\ndl_high=%d\ndl_low=%d\n"
              "ready\n",
              scene.holder, scene.waiter, scene.permits, scene.party, scene.reader, scene.transfer, scene.audit,
              scene.dl_high, scene.dl_low);
  std::fflush(stdout);
  for (std::string line; std::getline(std::cin, line);) {
    if (line == "resume") {
      scene.resume_deadlock();
      std::printf("resumed\n");
      std::fflush(stdout);
    }
  }
  return 0;
}
