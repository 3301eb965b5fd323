// bench/bench_main.hpp — the end of every benchmark program's main(): run
// what it registered with Google Benchmark's command line.
#pragma once

#include <benchmark/benchmark.h>

namespace bench {

/// Parses Google Benchmark's flags, runs the registered benchmarks, and
/// returns main()'s exit status (1 for an unrecognized argument).
inline int run_registered(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

}  // namespace bench
