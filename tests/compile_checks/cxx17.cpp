// Must not compile with -std=c++17, with one clear error.
#include <procsync/procsync.hpp>

int main() {}
