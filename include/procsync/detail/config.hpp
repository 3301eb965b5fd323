// procsync/detail/config.hpp — included first by every public header, so that
// a build with the wrong language standard gets one clear error instead of
// dozens from the C++20 code that follows (concepts, std::span, ...).
#pragma once

#if __cplusplus < 202002L
#error "procsync needs C++20: compile with -std=c++20 (or later)"
// #error does not stop g++ or clang++; a missing include does. Its name says
// why, so the second (and last) diagnostic points back at the first.
#include <procsync: stopped here, see the error above>
#endif
