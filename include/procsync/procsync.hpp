// procsync/procsync.hpp — the whole library in one include.
//
// Includes every public procsync header. Prefer the individual headers in
// code that uses one or two primitives (faster builds); use this one in
// applications and examples.
//
// Headers still being written when this file was last touched are included
// as soon as they exist (__has_include, resolved next to this file), so the
// umbrella never names a header that is not installed.
#pragma once

#include "detail/config.hpp"  // first: one clear error below C++20
#include "error.hpp"
#include "mutex.hpp"
#include "recursive_mutex.hpp"
#include "segment.hpp"
#include "cleanup.hpp"

#if __has_include("shared_mutex.hpp")
#include "shared_mutex.hpp"
#endif
#if __has_include("condition_variable.hpp")
#include "condition_variable.hpp"
#endif
#if __has_include("condition_variable_any.hpp")
#include "condition_variable_any.hpp"
#endif
#if __has_include("semaphore.hpp")
#include "semaphore.hpp"
#endif
#if __has_include("event.hpp")
#include "event.hpp"
#endif
#if __has_include("latch.hpp")
#include "latch.hpp"
#endif
#if __has_include("barrier.hpp")
#include "barrier.hpp"
#endif
#if __has_include("shared_value.hpp")
#include "shared_value.hpp"
#endif
#if __has_include("process.hpp")
#include "process.hpp"
#endif
#if __has_include("deadlock.hpp")
#include "deadlock.hpp"
#endif
#if __has_include("queue.hpp")
#include "queue.hpp"
#endif
#if __has_include("message_queue.hpp")
#include "message_queue.hpp"
#endif
