// tests/support/shared_memory.hpp — one object in fresh anonymous shared memory,
// for the mutex-family tests (kept independent of segment.hpp so that these
// tests exercise only the primitives under test).
#pragma once

#include <sys/mman.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <new>
#include <utility>

namespace procsync_test {

/// A T constructed in a MAP_SHARED|MAP_ANONYMOUS mapping: children forked
/// afterwards share it. Unmapped when the last handle in this process goes.
template <class T, class... Args>
std::shared_ptr<T> shared_new(Args&&... args) {
  void* memory = ::mmap(nullptr, sizeof(T), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (memory == MAP_FAILED) {
    std::perror("mmap");
    std::abort();
  }
  return std::shared_ptr<T>(::new (memory) T(std::forward<Args>(args)...), [](T* p) { ::munmap(p, sizeof(T)); });
}

}  // namespace procsync_test
