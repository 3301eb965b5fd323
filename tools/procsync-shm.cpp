// procsync-shm — list and remove procsync named segments in /dev/shm.
//
//   procsync-shm ls [PREFIX]            list procsync segments, their creator and users
//   procsync-shm rm --dead [PREFIX]     remove every segment whose creator and users are all dead
//   procsync-shm rm [--force] NAME...   remove these segments (refused while in use, unless --force)
//   add -n (--dry-run) to rm to only print what it would remove
// Exit status: 0 on success, 1 if something could not be removed, 2 on bad usage.
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "procsync/cleanup.hpp"
#include "procsync/segment.hpp"

namespace {

int usage() {
  std::fprintf(stderr,
               "usage: procsync-shm ls [PREFIX]\n"
               "       procsync-shm rm [-n|--dry-run] --dead [PREFIX]\n"
               "       procsync-shm rm [-n|--dry-run] [--force] NAME...\n");
  return 2;
}

std::string users_of(const procsync::segment_info& s) {
  std::string u;
  for (const auto pid : s.users) {
    if (!u.empty()) u += ',';
    u += std::to_string(pid);  // appended, not "," + str: g++ 12 -O3 misreports that (-Wrestrict)
  }
  return u.empty() ? "-" : u;
}

void print(const procsync::segment_info& s) {
  std::printf("%-40s %12llu %5u %04o %-6s %8d %-5s %-5s %s\n", s.name.c_str(), static_cast<unsigned long long>(s.size),
              static_cast<unsigned>(s.owner), static_cast<unsigned>(s.mode), s.ready ? "ready" : "init",
              s.creator_pid, s.creator_alive ? "yes" : "no", s.in_use() ? "yes" : "no", users_of(s).c_str());
}

void header() {
  std::printf("%-40s %12s %5s %4s %-6s %8s %-5s %-5s %s\n", "NAME", "BYTES", "UID", "MODE", "STATE", "CREATOR",
              "ALIVE", "INUSE", "USERS");
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string_view> args(argv + 1, argv + argc);
  if (args.empty()) return usage();
  try {
    if (args[0] == "ls") {
      if (args.size() > 2) return usage();
      header();
      for (const auto& s : procsync::list_segments(args.size() == 2 ? args[1] : std::string_view{})) print(s);
      return 0;
    }
    if (args[0] != "rm") return usage();
    bool dry = false, force = false, dead = false;
    std::vector<std::string_view> names;
    for (std::size_t i = 1; i < args.size(); ++i) {
      if (args[i] == "-n" || args[i] == "--dry-run") dry = true;
      else if (args[i] == "--force") force = true;
      else if (args[i] == "--dead") dead = true;
      else if (!args[i].empty() && args[i][0] == '-') return usage();
      else names.push_back(args[i]);
    }
    if (dead) {
      if (force || names.size() > 1) return usage();
      const auto removed = procsync::remove_dead_segments(names.empty() ? std::string_view{} : names[0], dry);
      for (const auto& s : removed) std::printf("%s %s\n", dry ? "would remove" : "removed", s.name.c_str());
      return 0;
    }
    if (names.empty()) return usage();
    int status = 0;
    for (const auto name : names) {
      try {
        const procsync::segment_info s = procsync::inspect_segment(name);
        if (s.in_use() && !force) {
          std::fprintf(stderr, "procsync-shm: %s is in use (creator %d %s, users %s): not removed (--force)\n",
                       s.name.c_str(), s.creator_pid, s.creator_alive ? "alive" : "dead", users_of(s).c_str());
          status = 1;
          continue;
        }
        if (!dry) procsync::named_segment::remove(name);
        std::printf("%s %s\n", dry ? "would remove" : "removed", s.name.c_str());
      } catch (const procsync::error& e) {
        std::fprintf(stderr, "procsync-shm: %s\n", e.what());
        status = 1;
      }
    }
    return status;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "procsync-shm: %s\n", e.what());
    return 1;
  }
}
