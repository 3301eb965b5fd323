// procsync/detail/inspect_objects.hpp — one object's snapshot for the
// inspector (procsync/inspect.hpp), by its recorded kind: the lock kinds from
// their lock word, semaphores (with their undo holders), event, barrier,
// condition_variable and a deadlock_registry's counts; queues are read by
// inspect_queues.hpp, any other kind is listed as data.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>

#include "../barrier.hpp"
#include "../checked_mutex.hpp"
#include "../condition_variable.hpp"
#include "../deadlock_registry.hpp"
#include "../event.hpp"
#include "../mutex.hpp"
#include "../recursive_mutex.hpp"
#include "../semaphore.hpp"
#include "../shared_mutex.hpp"
#include "inspect_entry.hpp"
#include "inspect_queues.hpp"
#include "inspect_read.hpp"
#include "inspect_types.hpp"
#include "object_header.hpp"
#include "process_identity.hpp"
#include "robust_list.hpp"

namespace procsync {

namespace detail::inspect {

template <class Lock>
void lock_state(const Lock& lock, object_snapshot& o) {
  const std::uint32_t word = lock.lock_word();
  if (word == detail::word_not_recoverable) {
    o.state = object_state::poisoned;
  } else {
    const std::uint32_t tid = word & detail::word_tid_mask;
    if (tid != 0) o.holder = describe_thread(tid);
    o.state = (word & detail::word_owner_died) != 0 ? object_state::inconsistent
              : tid != 0                           ? object_state::held
                                                   : object_state::free;
  }
  o.waiters = (word != detail::word_not_recoverable && (word & detail::word_waiters) != 0) ? 1u : 0u;
  o.waiters_exact = false;
  if (const std::uint32_t heir = lock.heir_tid(); heir != 0) o.reserved_for = describe_thread(heir);
}

template <std::size_t Slots>
void read_semaphore(const entry& e, object_snapshot& o) {
  // The layout of counting_semaphore<Max, Slots> does not depend on Max.
  using sem = counting_semaphore<detail::semaphore_value_max, Slots>;
  const sem* s = as<sem>(e, o);
  if (s == nullptr) return;
  o.value = s->value();
  o.state = *o.value > 0 ? object_state::available : object_state::exhausted;
  o.waiters = s->sleepers();
  o.waiters_exact = true;
  o.undo = s->undo_enabled();
  o.undo_slots = static_cast<std::uint32_t>(Slots);
  if constexpr (Slots > 0) {
    for (std::size_t i = 0; i < Slots && o.undo; ++i) {
      const auto [who, held] = s->undo_holder(i);
      if (held == 0 || who.pid == 0) continue;
      o.permit_holders.push_back(
          permit_holder{who.pid, detail::inspect::comm_of(who.pid), detail::process_alive(who), held});
    }
  }
}

template <std::size_t... I>
bool read_undo_semaphore(std::size_t slots, const entry& e, object_snapshot& o, std::index_sequence<I...>) {
  return ((slots == I + 1 ? (read_semaphore<I + 1>(e, o), true) : false) || ...);
}

inline object_snapshot read_object(const entry& e) {
  object_snapshot o;
  o.name = e.name;
  o.kind = e.header.kind_for_message();
  o.layout_version = e.header.layout_version;
  o.bytes = e.header.value_size;
  o.short_kind = "data";
  const std::string_view k = e.header.kind_prefix();
  const auto starts = [&](std::string_view p) { return k.substr(0, p.size()) == p; };
  if (starts("procsync::shared_value<")) o.short_kind = "shared_value";
  if (starts("procsync::shared_array<")) o.short_kind = "shared_array";
  if (starts("procsync::queue<")) o.short_kind = "queue";
  if (starts("procsync::message_queue<")) o.short_kind = "message_queue";
  if (e.header.magic != detail::object_magic) {
    o.state = object_state::unknown;
    o.note = "no valid object header";
    return o;
  }
  if (e.header.state != static_cast<std::uint32_t>(detail::object_state::ready)) {
    o.state = object_state::initializing;
    return o;
  }
  if (e.value == nullptr) {
    o.state = object_state::unknown;
    o.note = "bad value offset";
    return o;
  }
  if (e.header.same_kind(mutex::kind_name)) {
    o.short_kind = "mutex";
    if (const auto* m = as<mutex>(e, o)) lock_state(*m, o);
  } else if (e.header.same_kind(recursive_mutex::kind_name)) {
    o.short_kind = "recursive_mutex";
    if (const auto* m = as<recursive_mutex>(e, o)) lock_state(*m, o);
  } else if (e.header.same_kind(checked_mutex::kind_name)) {
    o.short_kind = "checked_mutex";
    if (const auto* m = as<checked_mutex>(e, o)) lock_state(*m, o);
  } else if (e.header.same_kind(shared_mutex::kind_name)) {
    o.short_kind = "shared_mutex";
    if (const auto* m = as<shared_mutex>(e, o)) {
      lock_state(*m, o);
      for (std::size_t i = 0; i < shared_mutex::reader_slots; ++i)
        if (const std::uint32_t tid = m->reader_tid(i); tid != 0) o.readers.push_back(describe_thread(tid));
      if (o.state == object_state::free && !o.readers.empty()) o.state = object_state::shared;
    }
  } else if (starts("procsync::counting_semaphore<")) {
    o.short_kind = "semaphore";
    // "procsync::counting_semaphore<MAX>" or "<MAX,undo_slots=N>"
    const std::string args(k.substr(29));
    o.max = std::strtoll(args.c_str(), nullptr, 10);
    std::size_t slots = 0;
    if (const auto at = args.find("undo_slots="); at != std::string::npos)
      slots = static_cast<std::size_t>(std::strtoull(args.c_str() + at + 11, nullptr, 10));
    if (slots == 0) {
      read_semaphore<0>(e, o);
    } else if (!read_undo_semaphore(slots, e, o, std::make_index_sequence<64>{})) {
      if (slots == 128) read_semaphore<128>(e, o);
      else if (slots == 256) read_semaphore<256>(e, o);
      else if (slots == 512) read_semaphore<512>(e, o);
      else if (slots == 1024) read_semaphore<1024>(e, o);
      else {
        o.state = object_state::unknown;
        o.note = "undo_slots=" + std::to_string(slots) + " not read by this inspector";
      }
    }
  } else if (e.header.same_kind(event::kind_name)) {
    o.short_kind = "event";
    if (const auto* ev = as<event>(e, o)) {
      o.flag = ev->is_set();
      o.state = *o.flag ? object_state::set : object_state::clear;
      o.mode = ev->mode() == event::reset_mode::manual ? "manual" : "automatic";
      o.waiters = ev->sleepers();
      o.waiters_exact = true;
    }
  } else if (e.header.same_kind(barrier::kind_name())) {
    o.short_kind = "barrier";
    if (const auto* b = as<barrier>(e, o)) {
      o.parties = static_cast<std::uint32_t>(b->parties());
      o.arrived = static_cast<std::uint32_t>(b->n_waiting());
      o.state = b->broken() ? object_state::broken : *o.arrived != 0 ? object_state::waiting : object_state::idle;
      o.waiters = b->sleepers();
      o.waiters_exact = true;
    }
  } else if (e.header.same_kind(condition_variable::kind_name)) {
    o.short_kind = "condition_variable";
    if (const auto* cv = as<condition_variable>(e, o)) {
      o.waiters = cv->sleepers();
      o.waiters_exact = true;
    }
  } else if (starts("procsync::queue<")) {
    read_queue(e, o);
  } else if (starts("procsync::message_queue<")) {
    read_message_queue(e, o);
  } else if (e.header.same_kind(deadlock_registry::kind_name)) {
    o.short_kind = "deadlock_registry";
    if (const auto* r = as<deadlock_registry>(e, o)) {
      const auto& g = detail_deadlock_access::graph_of(*r);
      o.classes = r->class_count();
      o.orders = r->order_count();
      std::uint32_t blocked = 0;
      for (const auto& w : g.waits) blocked += w.waiter.load(std::memory_order_relaxed) != 0;
      o.blocked = blocked;
      o.reports = r->report_count();
    }
  }
  return o;
}

}  // namespace detail::inspect

}  // namespace procsync
