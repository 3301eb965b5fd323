// custom_process.cpp — a process class of your own.
//
// As in Python's `class Downloader(Process)`, derive from procsync::process and
// override run(): it runs in the child when start() is called. The
// constructor takes whatever the job needs (here a URL and a size); the
// members are copied into the child along with the rest of the memory.
//
// The Python original, in outline:
//
//   from multiprocessing import Process
//
//   class Downloader(Process):
//       def __init__(self, url, size):
//           super().__init__()
//           self.url, self.size = url, size
//       def run(self):               # runs in the child
//           print("downloading", self.url)
//
//   if __name__ == "__main__":
//       d = Downloader("https://example.invalid/file", 1024)
//       d.start(); d.join()
#include <unistd.h>

#include <cstdio>
#include <string>
#include <utility>

#include <procsync/process.hpp>

namespace {

class downloader : public procsync::process {
 public:
  downloader(std::string url, int size_kb) : url_(std::move(url)), size_kb_(size_kb) {
    set_name("downloader " + url_);  // shown by current_process() in the child
  }

  int run() override {  // runs in the child
    std::printf("%s: pid %d, parent %d, downloading %s (%d KiB)\n", procsync::current_process().name.c_str(),
                ::getpid(), ::getppid(), url_.c_str(), size_kb_);
    return size_kb_ > 0 ? 0 : 2;  // exit code: 0 = success
  }

 private:
  std::string url_;
  int size_kb_;
};

}  // namespace

int main() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  downloader a{"http://example.com/a.iso", 700};
  downloader b{"http://example.com/b.txt", 0};  // nothing to download: exits with 2
  a.start();
  b.start();
  a.join();
  b.join();
  std::printf("parent %d: '%s' exited with %d, '%s' exited with %d\n", ::getpid(), a.name().c_str(),
              a.exitcode().value(), b.name().c_str(), b.exitcode().value());
  return 0;
}
