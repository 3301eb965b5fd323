// procsync/detail/process_registry.hpp — what a process knows about itself
// and about the children it started (Python's _children).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <mutex>
#include <string>
#include <vector>

namespace procsync {
class process;
}  // namespace procsync

namespace procsync::detail {

/// Who the calling process is, in procsync's eyes. Rewritten in a child right
/// after fork (while it has one thread), read-only otherwise.
struct process_self {
  std::string name = "MainProcess";
  std::string identity_prefix;  // "" in the main process, "3:" in its third child, "3:1:" ...
  bool daemon = false;
  pid_t parent_pid = 0;  // 0: the main process, whose parent is getppid()
  // Numbers default names; relaxed: only uniqueness matters, not ordering.
  std::atomic<unsigned> next_number{1};
};

/// Never destroyed (leaked on purpose): a process object with static storage
/// may be destroyed after any other static, and still needs this.
inline process_self& self() {
  static process_self* state = new process_self;
  return *state;
}

struct child_entry {
  process* object;
  pid_t started_by;  // only the process that started a child ever dereferences `object`
};

/// The children started by this process (Python's _children), guarded by `lock`.
/// start() holds `lock` across fork() so the child's copy is consistent.
struct process_registry {
  std::mutex lock;
  std::vector<child_entry> children;
  bool exit_handler_installed = false;  // inherited over fork along with the registration

  /// Forgets `object`'s child (takes `lock`).
  void forget(const process* object) noexcept {
    std::lock_guard guard(lock);
    for (auto it = children.begin(); it != children.end(); ++it) {
      if (it->object == object) {
        children.erase(it);
        return;
      }
    }
  }
};

inline process_registry& registry() {
  static process_registry* state = new process_registry;  // never destroyed, as above
  return *state;
}

}  // namespace procsync::detail
