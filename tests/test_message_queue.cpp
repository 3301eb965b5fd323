#define BOOST_TEST_MODULE procsync message_queue
#include <boost/test/unit_test.hpp>

#include <signal.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <procsync/message_queue.hpp>
#include <procsync/segment.hpp>

#include "child.hpp"
#include "errors.hpp"

using namespace procsync_test;
using namespace std::chrono_literals;
using clk = std::chrono::steady_clock;

namespace {

std::span<const std::byte> bytes_of(std::string_view s) { return std::as_bytes(std::span(s.data(), s.size())); }

template <std::size_t N>
std::string text_of(const std::array<std::byte, N>& buf, std::size_t n) {
  return std::string(reinterpret_cast<const char*>(buf.data()), n);
}

}  // namespace

BOOST_AUTO_TEST_CASE(highest_priority_first_fifo_within_a_priority) {
  auto mq = procsync::make_anonymous<procsync::message_queue<16, 8>>();
  static_assert(procsync::message_queue<16, 8>::capacity() == 8);
  static_assert(std::is_trivially_destructible_v<procsync::message_queue<16, 8>>);
  mq->send(bytes_of("low-a"), 1);
  mq->send(bytes_of("high-a"), 7);
  mq->send(bytes_of("low-b"), 1);
  mq->send(bytes_of("max"), UINT_MAX);
  mq->send(bytes_of("high-b"), 7);
  mq->send(bytes_of(""), 0);  // zero-length
  mq->send(bytes_of("zero"), 0);
  BOOST_TEST(mq->size() == 7u);
  std::array<std::byte, 16> buf{};
  const std::vector<std::pair<std::string, unsigned>> expected = {
      {"max", UINT_MAX}, {"high-a", 7}, {"high-b", 7}, {"low-a", 1}, {"low-b", 1}, {"", 0}, {"zero", 0}};
  for (const auto& [text, prio] : expected) {
    const auto got = mq->receive(buf);
    BOOST_TEST(text_of(buf, got.size) == text);
    BOOST_TEST(got.priority == prio);
  }
  BOOST_TEST(!mq->try_receive(buf).has_value());
  BOOST_TEST(mq->size() == 0u);
}

BOOST_AUTO_TEST_CASE(many_laps_keep_the_order) {
  auto mq = procsync::make_anonymous<procsync::message_queue<8, 3>>();
  std::array<std::byte, 8> buf{};
  for (std::uint64_t i = 0; i < 2000; ++i) {
    mq->send(std::as_bytes(std::span(&i, 1)), unsigned(i % 3));
    if (i % 3 == 2) {
      for (unsigned p = 3; p-- > 0;) {
        const auto got = mq->receive(buf);
        std::uint64_t v = 0;
        std::memcpy(&v, buf.data(), sizeof v);
        BOOST_TEST(got.priority == p);
        BOOST_TEST(v == i - 2 + p);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(too_large_and_too_small_are_errors_that_say_what) {
  auto mq = procsync::make_anonymous<procsync::message_queue<8, 2>>();
  const std::string nine(9, 'x');
  std::string what;
  BOOST_TEST((error_of([&] { mq->send(bytes_of(nine)); }, &what) == procsync::errc::message_too_large));
  BOOST_TEST(what.find("expected a message of at most 8 bytes, got 9") != std::string::npos);
  BOOST_TEST((error_of([&] { (void)mq->try_send(bytes_of(nine)); }) == procsync::errc::message_too_large));
  BOOST_TEST((error_of([&] { (void)mq->try_send_for(bytes_of(nine), 0, 1s); }) == procsync::errc::message_too_large));
  BOOST_TEST((error_of([&] { (void)mq->try_send_until(bytes_of(nine), 0, clk::now() + 1s); }) ==
              procsync::errc::message_too_large));
  BOOST_TEST(mq->size() == 0u);
  mq->send(bytes_of("12345678"));
  std::array<std::byte, 7> small{};
  BOOST_TEST((error_of([&] { (void)mq->receive(small); }, &what) == procsync::errc::buffer_too_small));
  BOOST_TEST(what.find("expected a buffer of at least 8 bytes for the next message, got 7") != std::string::npos);
  BOOST_TEST((error_of([&] { (void)mq->try_receive(small); }) == procsync::errc::buffer_too_small));
  BOOST_TEST((error_of([&] { (void)mq->try_receive_for(small, 1s); }) == procsync::errc::buffer_too_small));
  BOOST_TEST(mq->size() == 1u);  // it stays queued
  std::array<std::byte, 8> exact{};
  BOOST_TEST(mq->receive(exact).size == 8u);
  BOOST_TEST(text_of(exact, 8) == "12345678");
  // A short buffer is fine for a short message (unlike Boost's, which wants MaxMessageBytes).
  mq->send(bytes_of("hi"));
  std::array<std::byte, 2> two{};
  BOOST_TEST(mq->receive(two).size == 2u);
  // Zero-length message into an empty buffer.
  mq->send({});
  BOOST_TEST(mq->receive(std::span<std::byte>{}).size == 0u);
}

BOOST_AUTO_TEST_CASE(full_queue_try_send_is_false_and_blocked_send_is_woken) {
  auto mq = procsync::make_anonymous<procsync::message_queue<8, 2>>();
  BOOST_TEST(mq->try_send(bytes_of("a")));
  BOOST_TEST(mq->try_send(bytes_of("b")));
  BOOST_TEST(!mq->try_send(bytes_of("c")));
  const pid_t sender = fork_child([&] {
    mq->send(bytes_of("c"), 9);
    return 0;
  });
  BOOST_REQUIRE(eventually([&] { return blocked_in_futex(sender); }));
  std::array<std::byte, 8> buf{};
  BOOST_TEST(text_of(buf, mq->receive(buf).size) == "a");
  BOOST_TEST(wait_exit_code(sender) == 0);
  BOOST_TEST(text_of(buf, mq->receive(buf).size) == "c");  // priority 9
  BOOST_TEST(text_of(buf, mq->receive(buf).size) == "b");
}

BOOST_AUTO_TEST_CASE(blocked_receive_is_woken_by_a_send_from_another_process) {
  struct block {
    procsync::message_queue<32, 4> mq;
    std::array<std::byte, 32> buf{};
    std::atomic<std::size_t> size{0};
  };
  auto b = procsync::make_anonymous<block>();
  const pid_t receiver = fork_child([&] {
    b->size.store(b->mq.receive(b->buf).size);
    return 0;
  });
  BOOST_REQUIRE(eventually([&] { return blocked_in_futex(receiver); }));
  b->mq.send(bytes_of("across processes"));
  BOOST_TEST(wait_exit_code(receiver) == 0);
  BOOST_TEST(text_of(b->buf, b->size.load()) == "across processes");
}

BOOST_AUTO_TEST_CASE(timed_variants_never_return_early) {
  auto mq = procsync::make_anonymous<procsync::message_queue<8, 1>>();
  std::array<std::byte, 8> buf{};
  for (auto timeout : {1ms, 20ms, 60ms}) {
    const auto t0 = clk::now();
    BOOST_TEST(!mq->try_receive_for(buf, timeout).has_value());
    BOOST_TEST((clk::now() - t0 >= timeout));
  }
  auto t0 = clk::now();
  BOOST_TEST(!mq->try_receive_until(buf, std::chrono::system_clock::now() + 30ms).has_value());
  BOOST_TEST((clk::now() - t0 >= 29ms));
  BOOST_TEST(mq->try_send_for(bytes_of("x"), 0, 0ms));
  for (auto timeout : {1ms, 20ms}) {
    t0 = clk::now();
    BOOST_TEST(!mq->try_send_for(bytes_of("y"), 0, timeout));
    BOOST_TEST((clk::now() - t0 >= timeout));
  }
  t0 = clk::now();
  BOOST_TEST(!mq->try_send_until(bytes_of("y"), 0, std::chrono::system_clock::now() + 30ms));
  BOOST_TEST((clk::now() - t0 >= 29ms));
  BOOST_TEST(mq->try_receive_for(buf, std::chrono::hours::max())->size == 1u);
}

BOOST_AUTO_TEST_CASE(close_rejects_sends_drains_then_throws_at_once) {
  auto mq = procsync::make_anonymous<procsync::message_queue<8, 4>>();
  mq->send(bytes_of("one"), 1);
  mq->send(bytes_of("two"), 2);
  mq->close();
  std::string what;
  BOOST_TEST((error_of([&] { mq->send(bytes_of("3")); }, &what) == procsync::errc::queue_closed));
  BOOST_TEST(what.find("closed") != std::string::npos);
  BOOST_TEST((error_of([&] { (void)mq->try_send(bytes_of("3")); }) == procsync::errc::queue_closed));
  BOOST_TEST((error_of([&] { (void)mq->try_send_for(bytes_of("3"), 0, 1s); }) == procsync::errc::queue_closed));
  std::array<std::byte, 8> buf{};
  BOOST_TEST(text_of(buf, mq->receive(buf).size) == "two");
  BOOST_TEST(text_of(buf, mq->try_receive(buf)->size) == "one");
  BOOST_TEST((error_of([&] { (void)mq->receive(buf); }) == procsync::errc::queue_closed));
  BOOST_TEST((error_of([&] { (void)mq->try_receive(buf); }) == procsync::errc::queue_closed));
  const auto t0 = clk::now();
  BOOST_TEST((error_of([&] { (void)mq->try_receive_for(buf, 1h); }) == procsync::errc::queue_closed));
  BOOST_TEST((error_of([&] { (void)mq->try_receive_until(buf, std::chrono::system_clock::now() + 1h); }) ==
              procsync::errc::queue_closed));
  BOOST_TEST((clk::now() - t0 < 30min));
}

BOOST_AUTO_TEST_CASE(close_wakes_blocked_receivers_and_senders) {
  auto empty = procsync::make_anonymous<procsync::message_queue<8, 1>>();
  auto full = procsync::make_anonymous<procsync::message_queue<8, 1>>();
  full->send(bytes_of("f"));
  std::vector<pid_t> kids;
  kids.push_back(fork_child([&] {
    std::array<std::byte, 8> buf{};
    return error_of([&] { (void)empty->try_receive_for(buf, 1h); }) == procsync::errc::queue_closed ? 0 : 1;
  }));
  kids.push_back(fork_child([&] {
    return error_of([&] { full->send(bytes_of("g")); }) == procsync::errc::queue_closed ? 0 : 1;
  }));
  for (pid_t k : kids) BOOST_REQUIRE(eventually([&] { return blocked_in_futex(k); }));
  empty->close();
  full->close();
  for (pid_t k : kids) BOOST_TEST(wait_exit_code(k) == 0);
}

BOOST_AUTO_TEST_CASE(senders_and_receivers_in_many_processes_exactly_once) {
  constexpr int senders = 3, receivers = 3, per_sender = 5000;
  struct block {
    procsync::message_queue<64, 8> mq;
    std::atomic<std::uint8_t> seen[senders][per_sender] = {};
    std::atomic<int> bad{0};
  };
  auto b = procsync::make_anonymous<block>();
  std::vector<pid_t> kids;
  for (int s = 0; s < senders; ++s)
    kids.push_back(fork_child([&, s] {
      for (int i = 0; i < per_sender; ++i) {
        char msg[64];
        const int n = std::snprintf(msg, sizeof msg, "%d:%d:%0*d", s, i, i % 40, 0);
        b->mq.send(std::as_bytes(std::span(msg, std::size_t(n))), unsigned(i % 4));
      }
      return 0;
    }));
  for (int r = 0; r < receivers; ++r)
    kids.push_back(fork_child([&] {
      std::array<std::byte, 64> buf{};
      for (;;) {
        const auto got = b->mq.try_receive_for(buf, 30s);
        if (!got) return 3;
        const std::string text = text_of(buf, got->size);
        if (text == "stop") return 0;
        int s = -1, i = -1;
        if (std::sscanf(text.c_str(), "%d:%d:", &s, &i) != 2 || s < 0 || s >= senders || i < 0 || i >= per_sender)
          return 1;
        char expect[64];
        const int n = std::snprintf(expect, sizeof expect, "%d:%d:%0*d", s, i, i % 40, 0);
        if (text != std::string(expect, std::size_t(n)) || got->priority != unsigned(i % 4)) return 2;  // torn
        b->seen[s][i].fetch_add(1);
      }
    }));
  for (int s = 0; s < senders; ++s) BOOST_TEST(wait_exit_code(kids[s]) == 0);
  for (int r = 0; r < receivers; ++r) b->mq.send(bytes_of("stop"), 0);
  for (int r = 0; r < receivers; ++r) BOOST_TEST(wait_exit_code(kids[senders + r]) == 0);
  int wrong = 0;
  for (auto& row : b->seen)
    for (auto& n : row) wrong += n.load() != 1;
  BOOST_TEST(wrong == 0);
}

BOOST_AUTO_TEST_CASE(lives_in_a_named_segment_and_is_typed) {
  const std::string name = unique_name("mq");
  {
    procsync::named_segment seg(procsync::create_only, name, 256 * 1024);
    auto& mq = seg.construct<procsync::message_queue<256, 8>>("inbox");
    mq.send(bytes_of("hello"), 3);
    const pid_t child = fork_child([&] {
      procsync::named_segment other(procsync::open_only, name);
      auto& omq = other.find<procsync::message_queue<256, 8>>("inbox");
      std::array<std::byte, 256> buf{};
      const auto got = omq.receive(buf);
      if (text_of(buf, got.size) != "hello" || got.priority != 3) return 1;
      std::string msg;
      if (error_of([&] { (void)other.find<procsync::message_queue<128, 8>>("inbox"); }, &msg) !=
          procsync::errc::wrong_object_kind)
        return 2;
      if (msg.find("procsync::message_queue<256,8>") == std::string::npos) return 3;
      if (error_of([&] { (void)other.find<procsync::message_queue<256, 16>>("inbox"); }) !=
          procsync::errc::wrong_object_kind)
        return 4;
      return 0;
    });
    BOOST_TEST(wait_exit_code(child) == 0);
  }
  procsync::named_segment::remove(name);
}

BOOST_AUTO_TEST_CASE(queue_error_codes_are_appended_and_say_what_they_mean) {
  using procsync::errc;
  BOOST_TEST(static_cast<int>(errc::message_too_large) == static_cast<int>(errc::not_parent) + 1);
  BOOST_TEST(static_cast<int>(errc::buffer_too_small) == static_cast<int>(errc::not_parent) + 2);
  BOOST_TEST(static_cast<int>(errc::queue_closed) == static_cast<int>(errc::not_parent) + 3);
  BOOST_TEST(procsync::make_error_code(errc::message_too_large).message() ==
             "message longer than the queue's maximum message size");
  BOOST_TEST(procsync::make_error_code(errc::buffer_too_small).message() ==
             "receive buffer shorter than the next message");
  BOOST_TEST(procsync::make_error_code(errc::queue_closed).message() == "queue closed");
}
