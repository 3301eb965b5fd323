#define BOOST_TEST_MODULE procsync mutex
#include <boost/test/unit_test.hpp>
#include <procsync/mutex.hpp>
#include <procsync/segment.hpp>
#include "child.hpp"
#include <mutex>
using namespace procsync_test;
struct counter_block { procsync::mutex m; long count = 0; };
BOOST_AUTO_TEST_CASE(locked_increments_are_exact) {
  auto block = procsync::make_anonymous<counter_block>();
  constexpr int procs = 4, iters = 20000;
  std::vector<pid_t> kids;
  for (int i = 0; i < procs; ++i)
    kids.push_back(fork_child([&] { for (int j = 0; j < iters; ++j) { std::lock_guard g(block->m); ++block->count; } return 0; }));
  for (pid_t k : kids) BOOST_TEST(wait_exit_code(k) == 0);
  BOOST_TEST(block->count == procs * iters);
}
