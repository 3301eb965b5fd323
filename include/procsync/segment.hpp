// procsync/segment.hpp — where procsync objects live: both kinds of shared
// memory. anonymous.hpp (make_anonymous, inherited over fork; no Boost) and
// named_segment.hpp (named_segment, opened by name; Boost.Interprocess). Code
// that needs only one includes that one.
#pragma once

#include "detail/config.hpp"  // first: one clear error below C++20
#include "anonymous.hpp"
#include "named_segment.hpp"
