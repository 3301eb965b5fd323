// Must not compile: a locked view of a lock-free value.
#include <procsync/shared_value.hpp>

int main() {
  procsync::shared_value<long> v;
  auto view = v.lock();
  (void)view;
}
