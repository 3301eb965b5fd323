// procsync-shm — list and remove procsync named segments in /dev/shm, show
// the locks in one (who holds what, who waits) and its deadlock registry.
//
// A conventional Unix tool: --help and --version on stdout with exit 0,
// errors on stderr as "procsync-shm: ..." with exit 1 (operation failed) or 2
// (bad usage). Arguments are parsed with Boost.Program_options: global options,
// then a command (ls, rm, locks, deadlock) whose own options are parsed from
// what is left. `locks` and `deadlock` are a thin layer over
// procsync/inspect.hpp: only the formatting (text, JSON, Graphviz) is here.
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <boost/program_options.hpp>
#include <cerrno>
#include <algorithm>
#include <chrono>
#include <csignal>
#include <ctime>
#include <cstdio>
#include <optional>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include "procsync/cleanup.hpp"
#include "procsync/inspect.hpp"
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
    "       procsync-shm locks [--json] [-w|--watch [-i MS] [-c N]] SEGMENT [OBJECT]\n"
    "       procsync-shm deadlock [--json|--dot] [--registry OBJECT] SEGMENT\n"
    "       procsync-shm clear-poison SEGMENT OBJECT\n"
    "\n"
    "List and remove procsync named segments in /dev/shm; show the locks in one.\n"
    "\n"
    "commands:\n"
    "  ls [PREFIX]        list the segments whose name starts with PREFIX: size, owner,\n"
    "                     mode, state, creator pid and whether it runs, in use, users.\n"
    "                     A file you may not read is listed with state 'no-permission'.\n"
    "  rm --dead [PREFIX] remove every segment whose creator and users are all dead\n"
    "  rm NAME...         remove these segments; one still in use is refused unless --force\n"
    "  locks SEGMENT [OBJECT]\n"
    "                     one line per object of SEGMENT (or only OBJECT): name, kind,\n"
    "                     state, holder, waiters and details. State: free, held, shared\n"
    "                     (readers only), inconsistent (its holder died), poisoned (not\n"
    "                     recoverable); available or exhausted (semaphore); set or clear\n"
    "                     (event); idle, waiting or broken (barrier); empty, nonempty, full\n"
    "                     or closed (queue, message_queue); initializing; - (not a lock).\n"
    "                     Holder: pid:tid (process name); a message_queue's: of its index\n"
    "                     lock. Waiters: a count, or \"1+\" where the lock word only says\n"
    "                     someone may sleep. Details: a semaphore's value/max and, in undo\n"
    "                     mode, who holds how many permits; an event's mode; a barrier's\n"
    "                     parties waiting; a shared_mutex's readers; a checked_mutex's lock\n"
    "                     class; a deadlock registry's classes, orders, blocked threads and\n"
    "                     reports; a queue's fill level (items/capacity; a message_queue's\n"
    "                     longest message), whether it is closed, consumers and producers\n"
    "                     asleep, and each slot a push, send or pop_into under way holds\n"
    "                     (writing, reserved, handing_off) with its thread.\n"
    "                     Read-only: the segment is mapped read-only, no lock is taken,\n"
    "                     nothing blocks; a segment being created shows as initializing.\n"
    "  deadlock SEGMENT   the segment's deadlock registry: lock classes (with ranks), the\n"
    "                     recorded orders and the process (pid, label) that first took\n"
    "                     each, the wait-for graph now with its cycles, and the newest\n"
    "                     deadlock and order-violation reports (a bounded history: the\n"
    "                     output says how many were made and how many are kept)\n"
    "  clear-poison SEGMENT OBJECT\n"
    "                     make the poisoned (not recoverable) mutex, recursive_mutex,\n"
    "                     shared_mutex or checked_mutex OBJECT usable again: free and\n"
    "                     consistent. Do it only once you know its data is sound. Refused\n"
    "                     (exit 1) when the lock is not poisoned: held, free, or merely\n"
    "                     inconsistent (its next holder repairs that)\n"
    "\n"
    "options:\n"
    "  -h, --help         print this help and exit (also after a command: rm --help)\n"
    "      --version      print the version and exit\n"
    "  -n, --dry-run      rm: print what would be removed, remove nothing\n"
    "  -f, --force        rm NAME: remove even if the segment is in use\n"
    "      --dead         rm: remove the dead segments (see above)\n"
    "      --json         locks, deadlock: print JSON (schemas procsync-locks/2 and\n"
    "                     procsync-deadlock/1, documented in docs/inspect.md)\n"
    "      --dot          deadlock: print a Graphviz digraph (render it with dot -Tsvg)\n"
    "      --registry OBJECT\n"
    "                     deadlock: the registry object to show (default: the first)\n"
    "  -w, --watch        locks: redraw like top (clears the screen with ANSI codes) every\n"
    "                     --interval; with --json, one JSON document per line instead.\n"
    "                     Stops on SIGINT (exit 0), after --count frames, or at end of\n"
    "                     input when standard input is a terminal or a pipe\n"
    "  -i, --interval MS  locks --watch: milliseconds between frames (default 1000)\n"
    "  -c, --count N      locks --watch: stop after N frames (default: no limit)\n"
    "\n"
    "exit status:\n"
    "  0  success (ls: also when nothing is listed)\n"
    "  1  a segment could not be removed (not found, permission denied, in use),\n"
    "     or /dev/shm could not be read; locks, deadlock: the segment, the object\n"
    "     or the registry does not exist or cannot be read; clear-poison: the object\n"
    "     is missing, not a lock, or not poisoned\n"
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

// ---- locks and deadlock ---------------------------------------------------------

std::string thread_text(const procsync::thread_info& t) {
  if (t.tid == 0) return "-";
  std::string s = (t.pid != 0 ? std::to_string(t.pid) : std::string("?")) + ":" + std::to_string(t.tid);
  s += t.alive ? " (" + t.name + ")" : std::string(" (gone)");
  return s;
}

std::string waiters_text(const procsync::object_snapshot& o) {
  if (!o.waiters) return "-";
  if (!o.waiters_exact) return *o.waiters != 0 ? "1+" : "0";
  return std::to_string(*o.waiters);
}

std::string details_text(const procsync::object_snapshot& o) {
  std::string d;
  const auto add = [&](const std::string& part) {
    if (!d.empty()) d += ", ";
    d += part;
  };
  if (!o.lock_class.empty()) add("class " + o.lock_class);
  if (!o.readers.empty()) {
    std::string r = std::to_string(o.readers.size()) + (o.readers.size() == 1 ? " reader:" : " readers:");
    for (const auto& t : o.readers) r += " " + thread_text(t);
    add(r);
  }
  if (o.reserved_for) add("reserved for " + thread_text(*o.reserved_for));
  if (o.value) add("value " + std::to_string(*o.value) + "/" + (o.max ? std::to_string(*o.max) : std::string("?")));
  if (o.short_kind == "semaphore" && o.undo) {
    std::string u = "undo (" + std::to_string(o.undo_slots) + " slots):";
    if (o.permit_holders.empty()) u += " none";
    for (const auto& h : o.permit_holders)
      u += " " + std::to_string(h.pid) + " (" + (h.alive ? h.name : std::string("dead")) + ") " +
           std::to_string(h.permits);
    add(u);
  }
  if (!o.mode.empty()) add(o.mode + " reset");
  if (o.parties) add(std::to_string(o.arrived.value_or(0)) + "/" + std::to_string(*o.parties) + " parties waiting");
  if (o.classes) add(std::to_string(*o.classes) + " classes");
  if (o.orders) add(std::to_string(*o.orders) + " orders");
  if (o.blocked) add(std::to_string(*o.blocked) + " blocked");
  if (o.reports) add(std::to_string(*o.reports) + " reports");
  if (o.short_kind == "queue" || o.short_kind == "message_queue") {
    const char* what = o.short_kind == "queue" ? " items" : " messages";
    add((o.items ? std::to_string(*o.items) : std::string("?")) + "/" +
        (o.capacity ? std::to_string(*o.capacity) : std::string("?")) + what +
        (o.max_message_bytes ? " of up to " + std::to_string(*o.max_message_bytes) + " bytes" : std::string()));
    if (o.closed.value_or(false)) add("closed");
    const auto sleeping = [&](const std::optional<std::uint32_t>& n, const char* one, const char* many) {
      if (n.value_or(0) != 0) add(std::to_string(*n) + (*n == 1 ? one : many) + " waiting");
    };
    const bool q = o.short_kind == "queue";
    sleeping(o.consumers_waiting, q ? " consumer" : " receiver", q ? " consumers" : " receivers");
    sleeping(o.producers_waiting, q ? " producer" : " sender", q ? " producers" : " senders");
    for (const auto& h : o.held_slots)
      add("slot " + std::to_string(h.slot) + " " + h.phase + " by " + thread_text(h.thread) +
          (h.skipped ? " (skipped)" : ""));
  }
  if (o.short_kind == "data" || o.short_kind == "shared_value" || o.short_kind == "shared_array")
    add(std::to_string(o.bytes) + " bytes");
  if (!o.note.empty()) add(o.note);
  return d;
}

std::string locks_text(const procsync::segment_snapshot& s, const std::string& only) {
  std::string out;
  char line[512];
  std::snprintf(line, sizeof line, "segment %s: %llu bytes, %s, creator %d (%s)", s.name.c_str(),
                static_cast<unsigned long long>(s.bytes), s.ready ? "ready" : "initializing", s.creator_pid,
                s.creator_pid == 0 ? "not recorded" : s.creator_alive ? "alive" : "dead");
  out += line;
  if (s.corrupt) out += ", CORRUPT (a process died inside its allocator)";
  if (s.guard_holder) out += ", allocator guard held by " + thread_text(*s.guard_holder);
  out += '\n';
  if (!s.ready) return out;
  if (s.allocator_busy) return out + "objects not listed: a process is inside the segment's allocator\n";
  std::snprintf(line, sizeof line, "%-20s %-18s %-12s %-28s %7s  %s\n", "NAME", "KIND", "STATE", "HOLDER", "WAITERS",
                "DETAILS");
  out += line;
  for (const auto& o : s.objects) {
    if (!only.empty() && o.name != only) continue;
    const std::string holder = o.holder ? thread_text(*o.holder) : "-";
    std::snprintf(line, sizeof line, "%-20s %-18s %-12s %-28s %7s  ", o.name.c_str(), o.short_kind.c_str(),
                  procsync::to_string(o.state), holder.c_str(), waiters_text(o).c_str());
    out += line;
    out += details_text(o);
    out += '\n';
  }
  return out;
}

// JSON: strings escaped per RFC 8259; absent values are null.
std::string js(std::string_view v) {
  std::string q = "\"";
  for (const char c : v) {
    switch (c) {
      case '"': q += "\\\""; break;
      case '\\': q += "\\\\"; break;
      case '\n': q += "\\n"; break;
      case '\t': q += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char u[8];
          std::snprintf(u, sizeof u, "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(c)));
          q += u;
        } else {
          q += c;
        }
    }
  }
  return q + "\"";
}
const char* jb(bool b) { return b ? "true" : "false"; }
template <class T>
std::string jn(const std::optional<T>& v) {
  return v ? std::to_string(*v) : "null";
}
std::string jthread(const procsync::thread_info& t) {
  return "{\"tid\":" + std::to_string(t.tid) + ",\"pid\":" + std::to_string(t.pid) + ",\"name\":" + js(t.name) +
         ",\"alive\":" + jb(t.alive) + "}";
}
std::string jthread(const std::optional<procsync::thread_info>& t) { return t ? jthread(*t) : "null"; }
std::string jstr_or_null(const std::string& s) { return s.empty() ? "null" : js(s); }

long long unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string locks_json(const procsync::segment_snapshot& s, const std::string& only) {
  std::string o = "{\"schema\":\"procsync-locks/2\",\"time_unix_ms\":" + std::to_string(unix_ms()) +
                  ",\"segment\":{\"name\":" + js(s.name) + ",\"bytes\":" + std::to_string(s.bytes) +
                  ",\"ready\":" + jb(s.ready) + ",\"creator_pid\":" + std::to_string(s.creator_pid) +
                  ",\"creator_alive\":" + jb(s.creator_alive) + ",\"corrupt\":" + jb(s.corrupt) +
                  ",\"allocator_busy\":" + jb(s.allocator_busy) + ",\"guard_holder\":" + jthread(s.guard_holder) +
                  "},\"objects\":[";
  bool first = true;
  for (const auto& x : s.objects) {
    if (!only.empty() && x.name != only) continue;
    if (!first) o += ',';
    first = false;
    o += "{\"name\":" + js(x.name) + ",\"kind\":" + js(x.kind) + ",\"type\":" + js(x.short_kind) +
         ",\"layout_version\":" + std::to_string(x.layout_version) + ",\"bytes\":" + std::to_string(x.bytes) +
         ",\"state\":" + js(procsync::to_string(x.state)) + ",\"holder\":" + jthread(x.holder) +
         ",\"waiters\":" + jn(x.waiters) + ",\"waiters_exact\":" + jb(x.waiters_exact) +
         ",\"reserved_for\":" + jthread(x.reserved_for) + ",\"readers\":[";
    for (std::size_t i = 0; i < x.readers.size(); ++i) o += (i ? "," : "") + jthread(x.readers[i]);
    o += "],\"lock_class\":" + jstr_or_null(x.lock_class) + ",\"value\":" + jn(x.value) + ",\"max\":" + jn(x.max) +
         ",\"undo\":" + jb(x.undo) + ",\"undo_slots\":" + std::to_string(x.undo_slots) + ",\"permit_holders\":[";
    for (std::size_t i = 0; i < x.permit_holders.size(); ++i) {
      const auto& h = x.permit_holders[i];
      o += std::string(i ? "," : "") + "{\"pid\":" + std::to_string(h.pid) + ",\"name\":" + js(h.name) +
           ",\"alive\":" + jb(h.alive) + ",\"permits\":" + std::to_string(h.permits) + "}";
    }
    o += "],\"flag\":" + (x.flag ? std::string(jb(*x.flag)) : std::string("null")) +
         ",\"mode\":" + jstr_or_null(x.mode) + ",\"parties\":" + jn(x.parties) + ",\"arrived\":" + jn(x.arrived) +
         ",\"classes\":" + jn(x.classes) + ",\"orders\":" + jn(x.orders) + ",\"blocked\":" + jn(x.blocked) +
         ",\"reports\":" + jn(x.reports) + ",\"items\":" + jn(x.items) + ",\"capacity\":" + jn(x.capacity) +
         ",\"max_message_bytes\":" + jn(x.max_message_bytes) +
         ",\"closed\":" + (x.closed ? std::string(jb(*x.closed)) : std::string("null")) +
         ",\"consumers_waiting\":" + jn(x.consumers_waiting) + ",\"producers_waiting\":" + jn(x.producers_waiting) +
         ",\"held_slots\":[";
    for (std::size_t i = 0; i < x.held_slots.size(); ++i) {
      const auto& h = x.held_slots[i];
      o += std::string(i ? "," : "") + "{\"slot\":" + std::to_string(h.slot) + ",\"phase\":" + js(h.phase) +
           ",\"thread\":" + jthread(h.thread) + ",\"skipped\":" + jb(h.skipped) + "}";
    }
    o += "],\"note\":" + jstr_or_null(x.note) + "}";
  }
  return o + "]}\n";
}

volatile std::sig_atomic_t interrupted = 0;
extern "C" void on_sigint(int) { interrupted = 1; }

/// Sleeps `ms` or until SIGINT; false once the watch should stop (SIGINT, or
/// end of input on a terminal or pipe).
bool pause_watch(long ms, bool watch_stdin) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (interrupted == 0) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
    if (left.count() <= 0) return true;
    pollfd p{0, POLLIN, 0};
    const int r = ::poll(&p, watch_stdin ? 1 : 0, static_cast<int>(left.count()));
    if (r > 0 && (p.revents & (POLLIN | POLLHUP)) != 0) {
      char buf[256];
      const ssize_t n = ::read(0, buf, sizeof buf);
      if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) return false;  // end of input
    }
  }
  return false;
}

int cmd_locks(const std::vector<std::string>& args) {
  po::options_description opts;
  opts.add_options()("help,h", "")("json", "")("watch,w", "")("interval,i", po::value<long>()->default_value(1000), "")(
      "count,c", po::value<long>()->default_value(0), "")("segment", po::value<std::string>(), "")(
      "object", po::value<std::string>()->default_value(""), "");
  po::positional_options_description pos;
  pos.add("segment", 1).add("object", 1);
  po::variables_map vm;
  po::store(po::command_line_parser(args).options(opts).positional(pos).run(), vm);
  if (vm.count("help") != 0) {
    std::cout << help_text;
    return exit_ok;
  }
  if (vm.count("segment") == 0) return usage_error("locks: no SEGMENT named");
  const bool json = vm.count("json") != 0, watch = vm.count("watch") != 0;
  const long interval = vm["interval"].as<long>(), count = vm["count"].as<long>();
  if (interval < 1) return usage_error("locks: --interval must be at least 1 ms");
  if (count < 0) return usage_error("locks: --count must not be negative");
  if (!watch && (!vm["interval"].defaulted() || !vm["count"].defaulted()))
    return usage_error("locks: --interval and --count go with --watch");
  const std::string segment = vm["segment"].as<std::string>(), only = vm["object"].as<std::string>();
  const std::optional<procsync::segment_inspector> in = [&]() -> std::optional<procsync::segment_inspector> {
    try {
      return procsync::segment_inspector(segment);
    } catch (const procsync::error& e) {
      report(segment, e);
      return std::nullopt;
    }
  }();
  if (!in) return exit_failed;
  const auto frame = [&]() -> bool {
    const procsync::segment_snapshot s = in->snapshot();
    if (!only.empty() && s.ready && !s.allocator_busy &&
        std::none_of(s.objects.begin(), s.objects.end(), [&](const auto& o) { return o.name == only; })) {
      std::cerr << "procsync-shm: " << segment << ": no object '" << only << "'\n";
      return false;
    }
    const std::string text = json ? locks_json(s, only) : locks_text(s, only);
    if (watch && !json) std::fputs("\033[H\033[2J", stdout);
    std::fputs(text.c_str(), stdout);
    std::fflush(stdout);
    return true;
  };
  if (!watch) return frame() ? exit_ok : exit_failed;
  struct sigaction sa {};
  sa.sa_handler = on_sigint;
  ::sigaction(SIGINT, &sa, nullptr);  // no SA_RESTART: poll returns at once
  struct stat st {};
  const bool watch_stdin = ::fstat(0, &st) == 0 && (::isatty(0) || S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode));
  for (long n = 1;; ++n) {
    if (!frame()) return exit_failed;
    if (count != 0 && n >= count) return exit_ok;
    if (!pause_watch(interval, watch_stdin)) return exit_ok;
  }
}

std::string deadlock_text(const procsync::deadlock_snapshot& d) {
  std::string o = "deadlock registry '" + d.object + "' in segment " + d.segment + ": timeout " +
                  std::to_string(d.timeout.count() / 1000000) + " ms, order policy " + d.policy + "\n";
  o += "\nclasses (" + std::to_string(d.classes.size()) + "):\n";
  for (const auto& c : d.classes)
    o += "  " + c.name + (c.rank != 0 ? "  rank " + std::to_string(c.rank) : std::string()) +
         (c.nestable ? "  nestable" : "") + "\n";
  o += "\norders (" + std::to_string(d.orders.size()) + "), each with the process that first took it:\n";
  for (const auto& e : d.orders)
    o += "  " + e.from_name + " -> " + e.to_name + "  by " + std::to_string(e.pid) +
         (e.tid != 0 && static_cast<std::int32_t>(e.tid) != e.pid ? ":" + std::to_string(e.tid) : std::string()) +
         (e.label.empty() ? std::string() : " (" + e.label + ")") + (e.alive ? "" : " [exited]") + "\n";
  o += "\nwait-for graph now (" + std::to_string(d.waits.size()) + " waiting):\n";
  for (const auto& w : d.waits)
    o += "  " + thread_text(w.waiter) + (w.label.empty() ? "" : " [" + w.label + "]") + " waits for " + w.kind +
         (w.lock.empty() ? std::string() : " '" + w.lock + "'") + " held by " + thread_text(w.holder) +
         (w.stale ? "  (stale: the waiter is gone)" : "") + (w.in_cycle ? "  IN CYCLE" : "") + "\n";
  o += "cycles now: " + std::to_string(d.cycles.size()) + "\n";
  for (const auto& c : d.cycles) {
    o += "  ";
    for (const auto t : c) o += std::to_string(t) + " -> ";
    o += std::to_string(c.front()) + "\n";
  }
  o += "\nreports: " + std::to_string(d.reports_total) + " made, the newest " + std::to_string(d.report_capacity) +
       " are kept; " + std::to_string(d.reports.size()) + " shown\n";
  for (const auto& r : d.reports) {
    const std::time_t secs = static_cast<std::time_t>(r.unix_ns / 1000000000);
    char when[32] = "?";
    if (std::tm tm{}; ::localtime_r(&secs, &tm) != nullptr) std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
    o += "  #" + std::to_string(r.number) + " " + r.type + " at " + when + " by " + std::to_string(r.pid) +
         (r.label.empty() ? std::string() : " (" + r.label + ")") + ":\n    ";
    for (const char c : r.text) {
      o += c;
      if (c == '\n') o += "    ";
    }
    o += "\n";
  }
  return o;
}

std::string deadlock_json(const procsync::deadlock_snapshot& d) {
  std::string o = "{\"schema\":\"procsync-deadlock/1\",\"time_unix_ms\":" + std::to_string(unix_ms()) +
                  ",\"segment\":" + js(d.segment) + ",\"registry\":" + js(d.object) +
                  ",\"timeout_ns\":" + std::to_string(d.timeout.count()) + ",\"policy\":" + js(d.policy) +
                  ",\"classes\":[";
  for (std::size_t i = 0; i < d.classes.size(); ++i) {
    const auto& c = d.classes[i];
    o += std::string(i ? "," : "") + "{\"id\":" + std::to_string(c.id) + ",\"name\":" + js(c.name) +
         ",\"rank\":" + std::to_string(c.rank) + ",\"nestable\":" + jb(c.nestable) + "}";
  }
  o += "],\"orders\":[";
  for (std::size_t i = 0; i < d.orders.size(); ++i) {
    const auto& e = d.orders[i];
    o += std::string(i ? "," : "") + "{\"from\":" + js(e.from_name) + ",\"to\":" + js(e.to_name) +
         ",\"pid\":" + std::to_string(e.pid) + ",\"tid\":" + std::to_string(e.tid) + ",\"label\":" + js(e.label) +
         ",\"alive\":" + jb(e.alive) + "}";
  }
  o += "],\"waits\":[";
  for (std::size_t i = 0; i < d.waits.size(); ++i) {
    const auto& w = d.waits[i];
    o += std::string(i ? "," : "") + "{\"waiter\":" + jthread(w.waiter) + ",\"label\":" + js(w.label) +
         ",\"lock\":" + js(w.lock) + ",\"kind\":" + js(w.kind) + ",\"holder\":" + jthread(w.holder) +
         ",\"stale\":" + jb(w.stale) + ",\"in_cycle\":" + jb(w.in_cycle) + "}";
  }
  o += "],\"cycles\":[";
  for (std::size_t i = 0; i < d.cycles.size(); ++i) {
    o += i ? ",[" : "[";
    for (std::size_t j = 0; j < d.cycles[i].size(); ++j) o += (j ? "," : "") + std::to_string(d.cycles[i][j]);
    o += "]";
  }
  o += "],\"reports_total\":" + std::to_string(d.reports_total) +
       ",\"report_capacity\":" + std::to_string(d.report_capacity) + ",\"reports\":[";
  for (std::size_t i = 0; i < d.reports.size(); ++i) {
    const auto& r = d.reports[i];
    o += std::string(i ? "," : "") + "{\"number\":" + std::to_string(r.number) + ",\"type\":" + js(r.type) +
         ",\"unix_ns\":" + std::to_string(r.unix_ns) + ",\"pid\":" + std::to_string(r.pid) +
         ",\"tid\":" + std::to_string(r.tid) + ",\"label\":" + js(r.label) +
         ",\"cycle_length\":" + std::to_string(r.cycle_length) + ",\"steps\":[";
    for (std::size_t j = 0; j < r.steps.size(); ++j) {
      const auto& st = r.steps[j];
      o += std::string(j ? "," : "") + "{\"pid\":" + std::to_string(st.pid) + ",\"tid\":" + std::to_string(st.tid) +
           ",\"label\":" + js(st.label) + ",\"lock\":" + js(st.lock) + "}";
    }
    o += "],\"text\":" + js(r.text) + "}";
  }
  return o + "]}\n";
}

// Clears a poisoned lock by object name: typed lookup by the recorded kind.
template <class Lock>
bool clear_poison_as(procsync::named_segment& seg, const std::string& object) {
  return seg.find<Lock>(object).clear_poison();
}

int cmd_clear_poison(const std::vector<std::string>& args) {
  po::options_description opts;
  opts.add_options()("help,h", "")("names", po::value<std::vector<std::string>>()->default_value({}, ""), "");
  po::positional_options_description pos;
  pos.add("names", -1);
  po::variables_map vm;
  po::store(po::command_line_parser(args).options(opts).positional(pos).run(), vm);
  if (vm.count("help") != 0) {
    std::cout << help_text;
    return exit_ok;
  }
  const auto& names = vm["names"].as<std::vector<std::string>>();
  if (names.size() != 2) return usage_error("clear-poison: expected SEGMENT OBJECT");
  const std::string& segment = names[0];
  const std::string& object = names[1];
  try {
    const auto seen = procsync::segment_inspector(segment).object(object);
    if (!seen) {
      std::cerr << "procsync-shm: " << segment << ": no object '" << object << "'\n";
      return exit_failed;
    }
    procsync::named_segment seg(procsync::open_only, segment);
    bool cleared = false;
    if (seen->short_kind == "mutex")
      cleared = clear_poison_as<procsync::mutex>(seg, object);
    else if (seen->short_kind == "recursive_mutex")
      cleared = clear_poison_as<procsync::recursive_mutex>(seg, object);
    else if (seen->short_kind == "shared_mutex")
      cleared = clear_poison_as<procsync::shared_mutex>(seg, object);
    else if (seen->short_kind == "checked_mutex")
      cleared = clear_poison_as<procsync::checked_mutex>(seg, object);
    else {
      std::cerr << "procsync-shm: " << segment << ": '" << object << "' is a " << seen->short_kind
                << ", not a lock that can be poisoned\n";
      return exit_failed;
    }
    if (!cleared) {
      std::cerr << "procsync-shm: " << segment << ": '" << object << "' is not poisoned ("
                << procsync::to_string(seen->state) << "): left as it is\n";
      return exit_failed;
    }
    std::printf("cleared %s %s\n", segment.c_str(), object.c_str());
    return exit_ok;
  } catch (const procsync::error& e) {
    report(segment, e);
    return exit_failed;
  }
}

int cmd_deadlock(const std::vector<std::string>& args) {
  po::options_description opts;
  opts.add_options()("help,h", "")("json", "")("dot", "")("registry", po::value<std::string>()->default_value(""), "")(
      "segment", po::value<std::string>(), "");
  po::positional_options_description pos;
  pos.add("segment", 1);
  po::variables_map vm;
  po::store(po::command_line_parser(args).options(opts).positional(pos).run(), vm);
  if (vm.count("help") != 0) {
    std::cout << help_text;
    return exit_ok;
  }
  if (vm.count("segment") == 0) return usage_error("deadlock: no SEGMENT named");
  if (vm.count("json") != 0 && vm.count("dot") != 0) return usage_error("deadlock: --json and --dot do not go together");
  const std::string segment = vm["segment"].as<std::string>();
  try {
    const procsync::deadlock_snapshot d =
        procsync::segment_inspector(segment).deadlock(vm["registry"].as<std::string>());
    const std::string out = vm.count("dot") != 0    ? procsync::to_dot(d)
                            : vm.count("json") != 0 ? deadlock_json(d)
                                                    : deadlock_text(d);
    std::fputs(out.c_str(), stdout);
    return exit_ok;
  } catch (const procsync::error& e) {
    const auto code = e.code();
    if (code == procsync::errc::object_not_found || code == procsync::errc::wrong_object_kind ||
        code == procsync::errc::layout_mismatch) {
      const std::string& reg = vm["registry"].as<std::string>();
      std::cerr << "procsync-shm: " << segment << ": "
                << (code == procsync::errc::object_not_found
                        ? (reg.empty() ? std::string("no deadlock registry in it") : "no object '" + reg + "'")
                    : code == procsync::errc::wrong_object_kind ? "'" + reg + "' is not a deadlock registry"
                                                                : std::string("a deadlock registry of another layout version"))
                << '\n';
    } else if (code == procsync::errc::corrupt_segment) {
      std::cerr << "procsync-shm: " << segment << ": not readable now (initializing, or busy, or not a procsync segment)\n";
    } else {
      report(segment, e);
    }
    return exit_failed;
  }
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
      return usage_error("no command given (ls, rm, locks, deadlock or clear-poison)");
    }
    const std::string command = vm["command"].as<std::string>();
    if (rest.empty() || rest.front() != command) return usage_error("unrecognised option '" + rest.front() + "'");
    rest.erase(rest.begin());
    if (vm.count("help") != 0) rest.emplace_back("--help");  // "procsync-shm -h ls"
    if (vm.count("version") != 0) return usage_error("--version takes no command");
    if (command == "ls") return cmd_ls(rest);
    if (command == "rm") return cmd_rm(rest);
    if (command == "locks") return cmd_locks(rest);
    if (command == "deadlock") return cmd_deadlock(rest);
    if (command == "clear-poison") return cmd_clear_poison(rest);
    return usage_error("unknown command '" + command + "' (ls, rm, locks, deadlock or clear-poison)");
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
