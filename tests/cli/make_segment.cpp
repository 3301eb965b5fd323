// Test helper for procsync-shm: creates the named segment NAME (mode 0600).
//   make_segment NAME          create it and exit (the segment is then dead)
//   make_segment NAME --hold   create it, print "ready", keep it mapped until
//                              stdin is closed (the segment is in use meanwhile)
#include <cstdio>
#include <cstring>

#include "procsync/segment.hpp"

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3 || (argc == 3 && std::strcmp(argv[2], "--hold") != 0)) {
    std::fprintf(stderr, "usage: make_segment NAME [--hold]\n");
    return 2;
  }
  procsync::named_segment seg(procsync::create_only, argv[1], 64 * 1024);
  if (argc == 3) {
    std::printf("ready\n");
    std::fflush(stdout);
    while (std::getchar() != EOF) {
    }
  }
  return 0;
}
