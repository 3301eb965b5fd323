// procsync/anonymous.hpp — shared memory inherited over fork().
//
// make_anonymous<T>(args...) maps MAP_SHARED|MAP_ANONYMOUS memory and
// constructs a T in it; create it before fork() and the children share it at
// the same address. Needs no Boost (named_segment.hpp is the Boost part).
//
// Objects placed in shared memory outlive any one process's handle, so their
// destructors never run: T must be trivially destructible, and must not hold
// pointers (every procsync primitive qualifies; so does any trivially
// copyable struct without pointers).
#pragma once

#include "detail/config.hpp"  // first: one clear error below C++20
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <memory>
#include <string>
#include <utility>

#include "detail/placement.hpp"
#include "error.hpp"

namespace procsync {

/// A process-local, reference-counted handle to one T in an anonymous shared
/// mapping. Copies share the mapping; it is unmapped when the last handle *in
/// this process* goes away (other processes keep theirs). After fork(), the
/// child's copies refer to the same shared T.
template <class T>
class anonymous_ptr {
 public:
  anonymous_ptr() noexcept = default;

  T* get() const noexcept { return object_.get(); }
  T& operator*() const noexcept { return *object_; }
  T* operator->() const noexcept { return object_.get(); }
  explicit operator bool() const noexcept { return object_ != nullptr; }

  /// Bytes mapped for the object (a whole number of pages).
  std::size_t mapping_size() const noexcept { return bytes_; }

 private:
  template <class U, class... Args>
  friend anonymous_ptr<U> make_anonymous(Args&&... args);

  anonymous_ptr(T* object, std::size_t bytes)
      : object_(object, [bytes](T* p) { ::munmap(static_cast<void*>(p), bytes); }), bytes_(bytes) {}

  std::shared_ptr<T> object_;
  std::size_t bytes_ = 0;
};

/// Maps fresh anonymous shared memory and constructs a T in it with `args`.
/// Create it before fork() so children share it. Throws procsync::error if the
/// mapping fails (the errno of mmap).
template <class T, class... Args>
anonymous_ptr<T> make_anonymous(Args&&... args) {
  detail::check_placeable<T>();
  const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  const std::size_t bytes = (sizeof(T) + page - 1) / page * page;
  void* memory = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (memory == MAP_FAILED)
    detail::throw_errno(errno, "procsync::make_anonymous: mmap of " + std::to_string(bytes) + " bytes failed");
  try {
    return anonymous_ptr<T>(detail::place<T>(memory, std::forward<Args>(args)...), bytes);
  } catch (...) {
    ::munmap(memory, bytes);
    throw;
  }
}

}  // namespace procsync
