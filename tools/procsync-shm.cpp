// procsync-shm — list and remove procsync named segments in /dev/shm.
//
// A conventional Unix tool: --help and --version on stdout with exit 0,
// errors on stderr as "procsync-shm: ..." with exit 1 (operation failed) or 2
// (bad usage). Arguments are parsed with Boost.Program_options: global options,
// then a command (ls, rm) whose own options are parsed from what is left.
#include <grp.h>
#include <pwd.h>
#include <sys/types.h>

#include <boost/program_options.hpp>
#include <cstdio>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include "procsync/cleanup.hpp"
#include "procsync/segment.hpp"

#ifndef PROCSYNC_VERSION
#define PROCSYNC_VERSION "unknown"
#endif

namespace po = boost::program_options;

namespace {

constexpr int exit_ok = 0;
constexpr int exit_failed = 1;
constexpr int exit_usage = 2;

constexpr const char* help_text =
    "usage: procsync-shm [-h|--help] [--version]\n"
    "       procsync-shm ls [PREFIX]\n"
    "       procsync-shm rm [-n|--dry-run] --dead [PREFIX]\n"
    "       procsync-shm rm [-n|--dry-run] [-f|--force] NAME...\n"
    "\n"
    "List and remove procsync named segments in /dev/shm.\n"
    "\n"
    "commands:\n"
    "  ls [PREFIX]        list the segments whose name starts with PREFIX: size, owner,\n"
    "                     mode, state, creator pid and whether it runs, in use, users.\n"
    "                     A file you may not read is listed with state 'no-permission'.\n"
    "  rm --dead [PREFIX] remove every segment whose creator and users are all dead\n"
    "  rm NAME...         remove these segments; one still in use is refused unless --force\n"
    "\n"
    "options:\n"
    "  -h, --help         print this help and exit (also after a command: rm --help)\n"
    "      --version      print the version and exit\n"
    "  -n, --dry-run      rm: print what would be removed, remove nothing\n"
    "  -f, --force        rm NAME: remove even if the segment is in use\n"
    "      --dead         rm: remove the dead segments (see above)\n"
    "\n"
    "exit status:\n"
    "  0  success (ls: also when nothing is listed)\n"
    "  1  a segment could not be removed (not found, permission denied, in use),\n"
    "     or /dev/shm could not be read\n"
    "  2  bad usage (unknown command or option, missing or extra arguments)\n";

int usage_error(const std::string& what) {
  std::cerr << "procsync-shm: " << what << "\nTry 'procsync-shm --help' for more information.\n";
  return exit_usage;
}

std::string user_name(::uid_t uid) {
  if (const passwd* pw = ::getpwuid(uid)) return pw->pw_name;
  return std::to_string(uid);
}

std::string users_of(const procsync::segment_info& s) {
  std::string u;
  for (const auto pid : s.users) {
    if (!u.empty()) u += ',';
    u += std::to_string(pid);  // appended, not "," + str: g++ 12 -O3 misreports that (-Wrestrict)
  }
  return u.empty() ? "-" : u;
}

void print_header() {
  std::printf("%-40s %12s %-10s %4s %-13s %8s %-5s %-5s %s\n", "NAME", "BYTES", "OWNER", "MODE", "STATE", "CREATOR",
              "ALIVE", "INUSE", "USERS");
}

void print(const procsync::segment_info& s) {
  const std::string owner = user_name(s.owner);
  if (!s.readable) {
    std::printf("%-40s %12llu %-10s %04o %-13s %8s %-5s %-5s %s\n", s.name.c_str(),
                static_cast<unsigned long long>(s.size), owner.c_str(), static_cast<unsigned>(s.mode), "no-permission",
                "?", "?", "?", "?");
    return;
  }
  std::printf("%-40s %12llu %-10s %04o %-13s %8d %-5s %-5s %s\n", s.name.c_str(),
              static_cast<unsigned long long>(s.size), owner.c_str(), static_cast<unsigned>(s.mode),
              s.ready ? "ready" : "init", s.creator_pid, s.creator_alive ? "yes" : "no", s.in_use() ? "yes" : "no",
              users_of(s).c_str());
}

// A failure about one segment, in the tool's words (no library prefixes).
void report(const std::string& name, const procsync::error& e) {
  const auto code = e.code();
  if (code == procsync::errc::segment_not_found || code == procsync::errc::invalid_name)
    std::cerr << "procsync-shm: " << name << ": no such procsync segment in /dev/shm\n";
  else if (code == procsync::errc::permission_denied)
    std::cerr << "procsync-shm: " << name << ": permission denied\n";
  else
    std::cerr << "procsync-shm: " << name << ": " << code.message() << '\n';
}

int cmd_ls(const std::vector<std::string>& args) {
  po::options_description opts;
  opts.add_options()("help,h", "")("prefix", po::value<std::string>()->default_value(""), "");
  po::positional_options_description pos;
  pos.add("prefix", 1);
  po::variables_map vm;
  po::store(po::command_line_parser(args).options(opts).positional(pos).run(), vm);
  if (vm.count("help") != 0) {
    std::cout << help_text;
    return exit_ok;
  }
  const auto list = procsync::list_segments(vm["prefix"].as<std::string>());
  print_header();
  for (const auto& s : list) print(s);
  return exit_ok;
}

int cmd_rm(const std::vector<std::string>& args) {
  po::options_description opts;
  opts.add_options()("help,h", "")("dry-run,n", "")("force,f", "")("dead", "")(
      "names", po::value<std::vector<std::string>>()->default_value({}, ""), "");
  po::positional_options_description pos;
  pos.add("names", -1);
  po::variables_map vm;
  po::store(po::command_line_parser(args).options(opts).positional(pos).run(), vm);
  if (vm.count("help") != 0) {
    std::cout << help_text;
    return exit_ok;
  }
  const bool dry = vm.count("dry-run") != 0;
  const bool force = vm.count("force") != 0;
  const auto& names = vm["names"].as<std::vector<std::string>>();
  const char* verb = dry ? "would remove" : "removed";

  if (vm.count("dead") != 0) {
    if (force) return usage_error("rm: --dead and --force do not go together");
    if (names.size() > 1) return usage_error("rm --dead takes at most one PREFIX");
    const auto removed = procsync::remove_dead_segments(names.empty() ? std::string() : names[0], dry);
    for (const auto& s : removed) std::printf("%s %s\n", verb, s.name.c_str());
    return exit_ok;
  }
  if (names.empty()) return usage_error("rm: no segment named (NAME..., or --dead)");

  int status = exit_ok;
  for (const auto& name : names) {
    try {
      const procsync::segment_info s = procsync::inspect_segment(name);
      if (s.in_use() && !force) {
        std::cerr << "procsync-shm: " << name << ": in use (creator " << s.creator_pid << ' '
                  << (s.creator_alive ? "alive" : "dead") << ", users " << users_of(s)
                  << "): not removed (--force removes it)\n";
        status = exit_failed;
        continue;
      }
      if (!dry && !procsync::named_segment::remove(name))
        procsync::detail::throw_error(procsync::errc::segment_not_found, name);
      std::printf("%s %s\n", verb, s.name.c_str());
    } catch (const procsync::error& e) {
      report(name, e);
      status = exit_failed;
    }
  }
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    po::options_description global;
    global.add_options()("help,h", "")("version", "")("command", po::value<std::string>(), "")(
        "args", po::value<std::vector<std::string>>(), "");
    po::positional_options_description pos;
    pos.add("command", 1).add("args", -1);
    // Everything after the command belongs to it: unknown options are kept
    // here and parsed again with the command's own description.
    const po::parsed_options parsed =
        po::command_line_parser(argc, argv).options(global).positional(pos).allow_unregistered().run();
    po::variables_map vm;
    po::store(parsed, vm);
    std::vector<std::string> rest = po::collect_unrecognized(parsed.options, po::include_positional);

    if (vm.count("command") == 0) {
      if (!rest.empty()) return usage_error("unrecognised option '" + rest.front() + "'");
      if (vm.count("help") != 0) {
        std::cout << help_text;
        return exit_ok;
      }
      if (vm.count("version") != 0) {
        std::cout << "procsync-shm " PROCSYNC_VERSION "\n";
        return exit_ok;
      }
      return usage_error("no command given (ls or rm)");
    }
    const std::string command = vm["command"].as<std::string>();
    if (rest.empty() || rest.front() != command) return usage_error("unrecognised option '" + rest.front() + "'");
    rest.erase(rest.begin());
    if (vm.count("help") != 0) rest.emplace_back("--help");  // "procsync-shm -h ls"
    if (vm.count("version") != 0) return usage_error("--version takes no command");
    if (command == "ls") return cmd_ls(rest);
    if (command == "rm") return cmd_rm(rest);
    return usage_error("unknown command '" + command + "' (ls or rm)");
  } catch (const po::error& e) {
    return usage_error(e.what());
  } catch (const procsync::error& e) {
    // A failure of /dev/shm or /proc as a whole: the library's message names
    // the call; the tool's user wants the errno text.
    std::cerr << "procsync-shm: " << e.code().message() << '\n';
    return exit_failed;
  } catch (const std::exception& e) {
    std::cerr << "procsync-shm: " << e.what() << '\n';
    return exit_failed;
  }
}
