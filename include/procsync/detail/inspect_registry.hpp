// procsync/detail/inspect_registry.hpp — how the inspector
// (procsync/inspect.hpp) reads a deadlock_registry: its classes, recorded
// orders, wait-for table with the cycles in it now, and kept reports, by loads
// only; and the class name of each checked_mutex beside it.
#pragma once

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <new>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "../checked_mutex.hpp"
#include "../deadlock_registry.hpp"
#include "inspect_entry.hpp"
#include "inspect_types.hpp"
#include "process_identity.hpp"

namespace procsync {

namespace detail::inspect {

/// Gives each checked_mutex its class name from the first registry in the segment.
inline void name_checked_classes(std::vector<object_snapshot>& objects, const std::vector<entry>& found) {
  const deadlock_registry* reg = nullptr;
  for (const entry& e : found)
    if (e.value != nullptr && e.header.same_kind(deadlock_registry::kind_name) &&
        e.header.layout_version == deadlock_registry::layout_version &&
        e.header.value_size == sizeof(deadlock_registry)) {
      reg = std::launder(reinterpret_cast<const deadlock_registry*>(e.value));
      break;
    }
  if (reg == nullptr) return;
  for (std::size_t i = 0; i < objects.size() && i < found.size(); ++i) {
    if (objects[i].short_kind != "checked_mutex" || objects[i].state == object_state::unknown) continue;
    const auto* m = std::launder(reinterpret_cast<const checked_mutex*>(found[i].value));
    objects[i].lock_class = std::string(reg->class_name(m->get_class()));
  }
}

/// The registry `r`, object `object` of segment `segment`, at one moment.
inline deadlock_snapshot read_registry(const deadlock_registry& r, const std::string& segment,
                                       const std::string& object) {
  namespace dd = detail::deadlock;
  const dd::graph& g = detail_deadlock_access::graph_of(r);
  deadlock_snapshot d;
  d.segment = segment;
  d.object = object;
  d.timeout = r.deadlock_timeout();
  switch (r.policy()) {
    case order_policy::throw_error: d.policy = "throw_error"; break;
    case order_policy::report: d.policy = "report"; break;
    case order_policy::abort_process: d.policy = "abort_process"; break;
  }
  const auto text = [](const char* s, std::size_t cap) { return std::string(s, ::strnlen(s, cap)); };
  for (std::uint32_t c = 0; c < dd::class_slots; ++c) {
    const dd::class_entry& ce = g.classes[c];
    // Acquire: the name and options were written before `published`.
    if (ce.published.load(std::memory_order_acquire) == 0) continue;
    d.classes.push_back(lock_class_snapshot{c, text(ce.name, sizeof ce.name), ce.rank, ce.nestable != 0});
  }
  const std::uint32_t used = std::min(g.edge_count.load(std::memory_order_acquire), dd::max_edges);
  for (const auto& c : d.classes) {
    std::uint32_t steps = 0;
    // Acquire: a linked edge's fields were written before its link.
    for (std::uint32_t e = g.classes[c.id].first_out.load(std::memory_order_acquire); e != 0 && e <= dd::max_edges;
         e = g.edges[e - 1].next.load(std::memory_order_acquire)) {
      if (++steps > used + 1) break;
      const dd::edge_entry& edge = g.edges[e - 1];
      if (edge.to >= dd::class_slots) continue;
      lock_order_snapshot o;
      o.from = c.id;
      o.to = edge.to;
      o.from_name = c.name;
      o.to_name = text(g.classes[edge.to].name, dd::class_name_size);
      o.pid = edge.pid;
      o.tid = edge.tid;
      o.label = text(edge.label, sizeof edge.label);
      o.alive = ::kill(edge.pid, 0) == 0 || errno == EPERM;
      const bool duplicate = std::any_of(d.orders.begin(), d.orders.end(), [&](const lock_order_snapshot& x) {
        return x.from == o.from && x.to == o.to;
      });
      if (!duplicate) d.orders.push_back(std::move(o));
    }
  }
  std::sort(d.orders.begin(), d.orders.end(), [](const auto& a, const auto& b) {
    return std::pair(a.from_name, a.to_name) < std::pair(b.from_name, b.to_name);
  });
  for (std::uint32_t i = 0; i < dd::wait_slots; ++i) {
    dd::wait_view v{};
    if (!dd::read_wait(g, i, v)) continue;
    wait_snapshot w;
    w.waiter = describe_thread(v.waiter);
    w.label = text(v.label, sizeof v.label);
    w.lock = text(v.lock, sizeof v.lock);
    w.kind = text(v.kind, sizeof v.kind);
    w.holder = describe_thread(v.holder);
    w.stale = !detail::process_alive(detail::process_identity{v.pid, 0, g.waits[i].start_time});
    if (w.waiter.pid == 0) w.waiter.pid = v.pid;
    d.waits.push_back(std::move(w));
  }
  // Cycles: follow waiter -> holder among live entries.
  std::map<std::uint32_t, std::uint32_t> next;
  for (const auto& w : d.waits)
    if (!w.stale && w.holder.tid != 0) next[w.waiter.tid] = w.holder.tid;
  std::set<std::uint32_t> done;
  for (const auto& [start, unused] : next) {
    (void)unused;
    std::vector<std::uint32_t> path;
    std::uint32_t t = start;
    while (next.count(t) != 0 && done.count(t) == 0 &&
           std::find(path.begin(), path.end(), t) == path.end()) {
      path.push_back(t);
      t = next[t];
    }
    const auto at = std::find(path.begin(), path.end(), t);
    if (at != path.end()) {
      std::vector<std::uint32_t> cycle(at, path.end());
      std::rotate(cycle.begin(), std::min_element(cycle.begin(), cycle.end()), cycle.end());
      d.cycles.push_back(cycle);
    }
    done.insert(path.begin(), path.end());
  }
  for (auto& w : d.waits)
    for (const auto& c : d.cycles)
      if (std::find(c.begin(), c.end(), w.waiter.tid) != c.end()) w.in_cycle = true;
  d.reports_total = g.report_count.load(std::memory_order_acquire);
  d.report_capacity = dd::report_slots;
  for (std::uint32_t i = 0; i < dd::report_slots; ++i) {
    auto* raw = new dd::report_entry;  // 1.6 KiB: off the stack
    std::unique_ptr<dd::report_entry> copy(raw);
    if (!g.read_report(i, *copy)) continue;
    report_snapshot rs;
    rs.number = copy->number;
    rs.type = copy->type == dd::report_deadlock ? "deadlock" : "order_violation";
    rs.unix_ns = copy->unix_ns;
    rs.pid = copy->pid;
    rs.tid = copy->tid;
    rs.label = text(copy->label, sizeof copy->label);
    rs.cycle_length = copy->cycle_length;
    for (std::uint32_t j = 0; j < copy->step_count; ++j) {
      const dd::report_step& st = copy->steps[j];
      rs.steps.push_back(
          report_step_snapshot{st.pid, st.tid, text(st.label, sizeof st.label), text(st.lock, sizeof st.lock)});
    }
    rs.text = text(copy->text, sizeof copy->text);
    d.reports.push_back(std::move(rs));
  }
  std::sort(d.reports.begin(), d.reports.end(), [](const auto& a, const auto& b) { return a.number < b.number; });
  return d;
}

}  // namespace detail::inspect

}  // namespace procsync
