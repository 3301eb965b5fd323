// procsync/detail/inspect_dot.hpp — a deadlock_snapshot as a Graphviz
// digraph: the text procsync::to_dot() (procsync/inspect.hpp) returns.
#pragma once

#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>

#include "inspect_types.hpp"

namespace procsync {

namespace detail::inspect {

inline std::string dot_quote(std::string_view s) {
  std::string q = "\"";
  for (const char c : s) {
    if (c == '"' || c == '\\') q += '\\';
    if (c == '\n') {
      q += "\\n";
      continue;
    }
    q += c;
  }
  return q + "\"";
}

inline std::string who(std::int32_t pid, std::string_view label) {
  std::string s = std::to_string(pid);
  if (!label.empty()) {
    s += ' ';
    s += label;
  }
  return s;
}

/// The text of to_dot(d) (see procsync/inspect.hpp).
inline std::string dot_of(const deadlock_snapshot& d) {
  std::string o = "digraph procsync_deadlock {\n";
  o += "  graph [fontname=\"Helvetica\", fontsize=11, rankdir=LR, labelloc=t, label=" +
       dot_quote("procsync deadlock registry '" + d.object + "' in segment '" + d.segment + "'") + "];\n";
  o += "  node [fontname=\"Helvetica\", fontsize=10];\n  edge [fontname=\"Helvetica\", fontsize=9];\n";
  const report_snapshot* last_violation = nullptr;
  const report_snapshot* last_deadlock = nullptr;
  for (const auto& r : d.reports) (r.type == "deadlock" ? last_deadlock : last_violation) = &r;
  if (!d.classes.empty()) {
    o += "  subgraph cluster_orders {\n    label=\"lock classes and recorded orders\"; color=gray60;\n";
    for (const auto& c : d.classes) {
      std::string label = c.name;
      if (c.rank != 0) label += "\nrank " + std::to_string(c.rank);
      if (c.nestable) label += "\nnestable";
      o += "    c" + std::to_string(c.id) + " [shape=box, style=rounded, label=" + dot_quote(label) + "];\n";
    }
    for (const auto& e : d.orders)
      o += "    c" + std::to_string(e.from) + " -> c" + std::to_string(e.to) +
           " [label=" + dot_quote("first: " + who(e.pid, e.label)) + "];\n";
    if (last_violation != nullptr && last_violation->steps.size() >= 2) {
      // steps[0] -> steps[1] is the refused acquisition.
      const auto id_of = [&](const std::string& name) -> std::string {
        for (const auto& c : d.classes)
          if (c.name == name) return "c" + std::to_string(c.id);
        return {};
      };
      const std::string a = id_of(last_violation->steps[0].lock), b = id_of(last_violation->steps[1].lock);
      if (!a.empty() && !b.empty())
        o += "    " + a + " -> " + b + " [color=red, fontcolor=red, style=dashed, label=" +
             dot_quote("refused (report #" + std::to_string(last_violation->number) + "): " +
                       who(last_violation->pid, last_violation->label)) +
             "];\n";
    }
    o += "  }\n";
  }
  if (!d.waits.empty()) {
    o += "  subgraph cluster_waits {\n    label=\"wait-for graph now\"; color=gray60;\n";
    std::set<std::uint32_t> nodes;
    const auto node = [&](const thread_info& t, std::string_view label, bool red) {
      if (t.tid == 0 || !nodes.insert(t.tid).second) return;
      o += "    t" + std::to_string(t.tid) + " [shape=ellipse" + std::string(red ? ", color=red" : "") + ", label=" +
           dot_quote(who(t.pid, label.empty() ? std::string_view(t.name) : label) + "\ntid " + std::to_string(t.tid)) +
           "];\n";
    };
    for (const auto& w : d.waits) node(w.waiter, w.label, w.in_cycle);
    for (const auto& w : d.waits) node(w.holder, {}, w.in_cycle);
    for (const auto& w : d.waits)
      if (w.holder.tid != 0)
        o += "    t" + std::to_string(w.waiter.tid) + " -> t" + std::to_string(w.holder.tid) +
             " [label=" + dot_quote("waits for " + w.kind + (w.lock.empty() ? "" : " '" + w.lock + "'")) +
             (w.in_cycle ? ", color=red, fontcolor=red" : "") + "];\n";
    o += "  }\n";
  }
  if (last_deadlock != nullptr && !last_deadlock->steps.empty()) {
    const auto& r = *last_deadlock;
    const std::string n = std::to_string(r.number);
    o += "  subgraph cluster_deadlock {\n    label=" +
         dot_quote("last deadlock (report #" + n + " of " + std::to_string(d.reports_total) +
                   "): every process waits for the next") +
         "; color=red; fontcolor=red;\n";
    for (std::size_t i = 0; i < r.steps.size(); ++i) {
      const auto& st = r.steps[i];
      const bool victim = st.tid == r.tid;
      o += "    d" + n + "_" + std::to_string(i) + " [shape=ellipse, color=red" +
           std::string(victim ? ", style=bold" : "") + ", label=" +
           dot_quote(who(st.pid, st.label) + (victim ? "\n(victim)" : "")) + "];\n";
    }
    const bool whole = r.steps.size() == r.cycle_length;
    for (std::size_t i = 0; i < r.steps.size(); ++i) {
      if (i + 1 == r.steps.size() && !whole) break;
      const std::size_t j = (i + 1) % r.steps.size();
      o += "    d" + n + "_" + std::to_string(i) + " -> d" + n + "_" + std::to_string(j) +
           " [color=red, fontcolor=red, label=" + dot_quote("waits for " + r.steps[i].lock) + "];\n";
    }
    o += "  }\n";
  }
  o += "}\n";
  return o;
}

}  // namespace detail::inspect

}  // namespace procsync
