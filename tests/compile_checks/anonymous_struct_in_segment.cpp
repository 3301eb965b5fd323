// Must not compile: a struct without kind_name (here in an anonymous
// namespace, which g++ and clang++ spell differently) in a named segment.
#include <procsync/segment.hpp>

namespace {
struct point {
  int x, y;
};
}  // namespace

int main() {
  procsync::named_segment seg(procsync::open_only, "never-opened");
  return seg.find<point>("p").x;
}
