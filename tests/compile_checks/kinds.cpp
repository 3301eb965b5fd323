// Compiles with every compiler and prints the kinds procsync records, so that
// run.sh can check that g++ and clang++ builds name types identically.
#include <procsync/procsync.hpp>

#include <array>
#include <cstdint>
#include <cstdio>
#include <utility>

namespace {
struct point {
  static constexpr const char* kind_name = "kinds::point";
  int x, y;
};
enum class colour : unsigned char { red };
}  // namespace

template <>
struct procsync::kind_name_of<colour> {
  static constexpr const char* value = "kinds::colour";
};

template <class T>
void print() {
  std::printf("%s\n", procsync::detail::kind_of<T>().c_str());
}

int main() {
  print<bool>();
  print<char>();
  print<signed char>();
  print<unsigned char>();
  print<short>();
  print<unsigned short>();
  print<int>();
  print<unsigned>();
  print<long>();
  print<unsigned long>();
  print<long long>();
  print<unsigned long long>();
  print<std::int64_t>();
  print<std::size_t>();
  print<float>();
  print<double>();
  print<long double>();
  print<wchar_t>();
  print<char8_t>();
  print<char16_t>();
  print<char32_t>();
  print<std::byte>();
  print<colour>();
  print<int[4]>();
  print<std::array<unsigned long, 4>>();
  print<std::pair<int, double>>();
  print<procsync::shared_value<long>>();
  print<procsync::shared_value<double>>();
  print<procsync::shared_value<point>>();
  print<procsync::shared_value<colour>>();
  print<procsync::shared_array<std::size_t, 8>>();
  print<procsync::shared_array<std::array<float, 3>, 2>>();
  print<procsync::counting_semaphore<4>>();
  print<procsync::mutex>();
  // procsync/inspect.hpp reads a queue's N and element size from these.
  print<procsync::queue<long, 8>>();
  print<procsync::queue<point, 4>>();
  print<procsync::queue<std::array<float, 3>, 2>>();
  print<procsync::message_queue<256, 64>>();
}
