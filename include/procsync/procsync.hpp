// procsync/procsync.hpp — the whole library in one include.
//
// Includes every public procsync header except pg.hpp (which links libpq).
// Prefer the individual headers in code that uses one or two primitives
// (faster builds); use this one in applications and examples. A new public
// header is added here (docs/architecture.md, "Adding a primitive").
#pragma once

#include "detail/config.hpp"  // first: one clear error below C++20
#include "error.hpp"
#include "lock_status.hpp"
#include "mutex.hpp"
#include "recursive_mutex.hpp"
#include "shared_mutex.hpp"
#include "condition_variable.hpp"
#include "condition_variable_any.hpp"
#include "semaphore.hpp"
#include "counting_semaphore.hpp"
#include "undo_semaphore.hpp"
#include "event.hpp"
#include "latch.hpp"
#include "barrier.hpp"
#include "shared_value.hpp"
#include "shared_array.hpp"
#include "process.hpp"
#include "segment.hpp"
#include "anonymous.hpp"
#include "named_segment.hpp"
#include "cleanup.hpp"
#include "deadlock.hpp"
#include "inspect.hpp"
#include "queue.hpp"
#include "message_queue.hpp"
