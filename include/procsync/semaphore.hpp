// procsync/semaphore.hpp — both semaphores: the plain counting_semaphore<Max>
// and binary_semaphore (counting_semaphore.hpp), and undo_semaphore<Max, Slots>
// with the procsync::undo tag (undo_semaphore.hpp).
#pragma once

#include "detail/config.hpp"  // first: one clear error below C++20
#include "counting_semaphore.hpp"
#include "undo_semaphore.hpp"
