// Must not compile: std::string is not trivially copyable.
#include <procsync/shared_value.hpp>

#include <string>

int main() {
  procsync::shared_array<std::string, 4> a;
  (void)a;
}
