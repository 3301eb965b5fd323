// Must not compile: std::string is not trivially copyable.
#include <procsync/shared_value.hpp>

#include <string>

int main() {
  procsync::shared_value<std::string> v;
  (void)v;
}
