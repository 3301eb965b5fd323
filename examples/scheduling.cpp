// scheduling.cpp — how an operating system could order four jobs on one CPU.
//
// A pure simulation (nothing sleeps, nothing forks): four jobs arrive at a
// single CPU and four classic policies decide who runs when.
//   FCFS  first come, first served: run each job to completion in arrival order.
//   SJF   shortest job first (non-preemptive): when the CPU frees up, pick the
//         shortest job that has arrived.
//   RR    round robin: every job runs one time slice (0.2 s), then goes to the
//         back of the queue.
//   MLFQ  multi-level feedback queue: level 1 gives each job 0.4 s, level 2
//         0.3 s, level 3 0.2 s, level 4 0.1 s (repeated until done). A job
//         that does not finish its slice drops one level, so long jobs sink
//         and short ones finish early; a lower level runs only when every
//         higher level is empty. New jobs always enter level 1.
// For each policy it prints a timeline (one character per 0.1 s) and the
// average waiting time (time spent ready but not running), turnaround time
// (finish - arrival) and response time (first run - arrival).
//
// The trade-off it shows. SJF gives the lowest average waiting time when it
// can choose, but must know every job's length in advance, and being
// non-preemptive it cannot help jobs that arrive while a long one runs. RR and MLFQ know nothing about lengths:
// by preempting they answer every job quickly (low response time) and let a
// short job that arrives behind long ones finish early. The price is paid by
// the long jobs, which are preempted again and again: in the first workload
// (mostly long jobs) RR and MLFQ have a WORSE average waiting time than FCFS.
// The second workload (one long job, then short ones, as in interactive
// systems) is where they shine: there they beat FCFS on the average as well.
// The conclusion printed at the end is computed from these numbers.
//
// All times are kept in whole milliseconds so the arithmetic is exact.
#include <cstdio>
#include <deque>
#include <string>
#include <vector>

namespace {

struct job {
  const char* name;
  int arrival_ms;
  int burst_ms;  // CPU time the job needs
};

// Workload 1: a long download job arrives first, shorter (but still long)
// jobs trickle in after it.
const std::vector<job> mostly_long = {
    {"J1", 300, 300},
    {"J2", 200, 600},
    {"J3", 100, 800},
    {"J4", 0, 1200},
};

// Workload 2: one long batch job, then three short interactive ones.
const std::vector<job> mostly_short = {
    {"J1", 0, 1600},
    {"J2", 100, 200},
    {"J3", 200, 100},
    {"J4", 300, 200},
};

struct averages {
  double waiting, turnaround, response;  // seconds
  int short_finish_ms;                   // when the shortest job finished
};

struct slice {
  int job;  // index into jobs
  int start_ms, end_ms;
};

// The averages of one schedule; with `print`, also its timeline and per-job lines.
averages report(const std::vector<job>& jobs, const char* policy, const std::vector<slice>& schedule, bool print) {
  std::vector<int> finish(jobs.size(), 0);
  std::vector<int> first_run(jobs.size(), -1);
  std::string bar;
  std::string spans;
  for (const slice& s : schedule) {
    finish[s.job] = s.end_ms;  // the last slice of a job is its finish
    if (first_run[s.job] < 0) first_run[s.job] = s.start_ms;
    // One character per 0.1 s: the job's digit ('1' for J1, ...).
    bar.append(static_cast<std::size_t>((s.end_ms - s.start_ms) / 100), jobs[s.job].name[1]);
    char span[48];
    std::snprintf(span, sizeof span, " %s[%.1f-%.1f]", jobs[s.job].name, s.start_ms / 1000.0, s.end_ms / 1000.0);
    spans += span;
  }
  int total_wait = 0, total_turnaround = 0, total_response = 0;
  std::size_t shortest = 0;
  if (print) std::printf("%s\n  timeline |%s|\n  slices  %s\n", policy, bar.c_str(), spans.c_str());
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    const int turnaround = finish[i] - jobs[i].arrival_ms;
    const int wait = turnaround - jobs[i].burst_ms;
    total_wait += wait;
    total_turnaround += turnaround;
    total_response += first_run[i] - jobs[i].arrival_ms;
    if (jobs[i].burst_ms < jobs[shortest].burst_ms) shortest = i;
    if (print)
      std::printf("  %s arrives %.1f s, needs %.1f s, finishes %.1f s: waited %.1f s, turnaround %.1f s\n",
                jobs[i].name, jobs[i].arrival_ms / 1000.0, jobs[i].burst_ms / 1000.0, finish[i] / 1000.0,
                wait / 1000.0, turnaround / 1000.0);
  }
  const double n = static_cast<double>(jobs.size());
  const averages a{total_wait / n / 1000.0, total_turnaround / n / 1000.0, total_response / n / 1000.0,
                   finish[shortest]};
  std::printf("  %s: average waiting %.3f s, average turnaround %.3f s, average response %.3f s\n%s", policy,
              a.waiting, a.turnaround, a.response, print ? "\n" : "");
  return a;
}

// Jobs sorted by arrival (stable: ties keep the list order).
std::vector<int> arrival_order(const std::vector<job>& jobs) {
  std::vector<int> order;
  for (int t = 0, left = static_cast<int>(jobs.size()); left > 0; ++t)
    for (std::size_t i = 0; i < jobs.size(); ++i)
      if (jobs[i].arrival_ms == t) order.push_back(static_cast<int>(i)), --left;
  return order;
}

std::vector<slice> fcfs(const std::vector<job>& jobs) {
  std::vector<slice> out;
  int now = 0;
  for (int i : arrival_order(jobs)) {
    if (now < jobs[i].arrival_ms) now = jobs[i].arrival_ms;  // CPU idles until it arrives
    out.push_back({i, now, now + jobs[i].burst_ms});
    now += jobs[i].burst_ms;
  }
  return out;
}

std::vector<slice> sjf(const std::vector<job>& jobs) {
  std::vector<slice> out;
  std::vector<bool> done(jobs.size(), false);
  int now = 0;
  for (std::size_t finished = 0; finished < jobs.size(); ++finished) {
    int best = -1;
    for (std::size_t i = 0; i < jobs.size(); ++i)
      if (!done[i] && jobs[i].arrival_ms <= now && (best < 0 || jobs[i].burst_ms < jobs[best].burst_ms))
        best = static_cast<int>(i);
    if (best < 0) {  // nothing has arrived yet: jump to the next arrival
      --finished;
      now += 100;
      continue;
    }
    out.push_back({best, now, now + jobs[best].burst_ms});
    now += jobs[best].burst_ms;
    done[best] = true;
  }
  return out;
}

// Round robin and MLFQ share this engine: `slices[level]` is the time slice of
// each queue level; a job that uses up its slice moves one level down (the last
// level keeps it). Round robin is MLFQ with a single level.
std::vector<slice> feedback_queues(const std::vector<job>& jobs, const std::vector<int>& slices) {
  std::vector<slice> out;
  std::vector<std::deque<int>> level(slices.size());
  std::vector<int> left(jobs.size());
  for (std::size_t i = 0; i < jobs.size(); ++i) left[i] = jobs[i].burst_ms;
  const std::vector<int> order = arrival_order(jobs);
  std::size_t next_arrival = 0;
  auto admit_until = [&](int t) {  // new arrivals enter the top level
    while (next_arrival < order.size() && jobs[order[next_arrival]].arrival_ms <= t)
      level[0].push_back(order[next_arrival++]);
  };
  int now = 0;
  std::size_t finished = 0;
  while (finished < jobs.size()) {
    admit_until(now);
    std::size_t l = 0;
    while (l < level.size() && level[l].empty()) ++l;
    if (l == level.size()) {  // idle until the next job arrives
      now = jobs[order[next_arrival]].arrival_ms;
      continue;
    }
    const int j = level[l].front();
    level[l].pop_front();
    const int run = left[j] < slices[l] ? left[j] : slices[l];
    out.push_back({j, now, now + run});
    now += run;
    left[j] -= run;
    admit_until(now);  // jobs that arrived during the slice queue up before it
    if (left[j] == 0)
      ++finished;
    else
      level[l + 1 < level.size() ? l + 1 : l].push_back(j);
  }
  return out;
}

struct results {
  averages fcfs, sjf, rr, mlfq;
};

results run_all(const std::vector<job>& jobs, bool print) {
  std::printf("Four jobs on one CPU (all times in seconds):\n");
  for (const job& j : jobs)
    std::printf("  %s arrives at %.1f and needs %.1f of CPU\n", j.name, j.arrival_ms / 1000.0, j.burst_ms / 1000.0);
  std::printf("\n");
  results r{};
  r.fcfs = report(jobs, "FCFS (first come, first served)", fcfs(jobs), print);
  r.sjf = report(jobs, "SJF (shortest job first)", sjf(jobs), print);
  r.rr = report(jobs, "RR (round robin, 0.2 s slice)", feedback_queues(jobs, {200}), print);
  r.mlfq = report(jobs, "MLFQ (multi-level feedback queue, slices 0.4/0.3/0.2/0.1 s)",
                  feedback_queues(jobs, {400, 300, 200, 100}), print);
  return r;
}

const char* than(double a, double b) { return a < b ? "better than" : a > b ? "worse than" : "the same as"; }

}  // namespace

int main() {
  std::printf("== Workload 1: mostly long jobs\n");
  const results a = run_all(mostly_long, true);
  std::printf("== Workload 2: one long job, then three short ones (averages only)\n");
  const results b = run_all(mostly_short, false);

  std::printf("\nWhat it shows:\n");
  std::printf("- Knowing every job's length in advance, SJF has the lowest average waiting\n"
              "  in workload 1 (%.3f s); a real scheduler does not know them. Not preemptive,\n"
              "  it barely helps in workload 2 (%.3f s against %.3f s for FCFS): the long job\n"
              "  is already running when the short ones arrive.\n",
              a.sjf.waiting, b.sjf.waiting, b.fcfs.waiting);
  std::printf("- RR and MLFQ do not need the lengths. They answer every job sooner: average\n"
              "  response %.3f s (RR) and %.3f s (MLFQ) against %.3f s for FCFS in workload 1.\n",
              a.rr.response, a.mlfq.response, a.fcfs.response);
  std::printf("- The price is paid by long jobs, preempted again and again. In workload 1,\n"
              "  mostly long jobs, RR's average waiting (%.3f s) is %s FCFS's (%.3f s),\n"
              "  and MLFQ's (%.3f s) is %s it; the short J1 still finishes at %.1f s (RR)\n"
              "  and %.1f s (MLFQ) instead of %.1f s.\n",
              a.rr.waiting, than(a.rr.waiting, a.fcfs.waiting), a.fcfs.waiting, a.mlfq.waiting,
              than(a.mlfq.waiting, a.fcfs.waiting), a.rr.short_finish_ms / 1000.0, a.mlfq.short_finish_ms / 1000.0,
              a.fcfs.short_finish_ms / 1000.0);
  std::printf("- In workload 2, short jobs stuck behind a long one, RR's average waiting\n"
              "  (%.3f s) is %s FCFS's (%.3f s), and MLFQ's (%.3f s) is %s it:\n"
              "  preemption pays off when most jobs are short, as in interactive systems.\n",
              b.rr.waiting, than(b.rr.waiting, b.fcfs.waiting), b.fcfs.waiting, b.mlfq.waiting,
              than(b.mlfq.waiting, b.fcfs.waiting));
  return 0;
}
