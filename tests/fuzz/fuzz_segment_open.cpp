// libFuzzer target: opening a named segment whose bytes are hostile.
//
// Each input is laid over a real segment's bytes (a template made once: a
// segment holding a procsync::mutex "m" and a shared_value<int> "v"), then
// written to /dev/shm and opened with named_segment(open_only) and find<T>.
// Every outcome must be success or a procsync::error: never a crash, a
// sanitizer report, or a hang (the opening wait is 0 ms here).
//
// Input: byte 0 picks a truncation of the file; the next bytes overwrite the
// segment header up to its guard lock (magic, format version, header size,
// total size, creator identity, flags), the rest overwrite the header of
// object "m" (magic, kind, sizes, alignment, offset, layout version, state).
// Out of scope, by the trust model (docs/reliability.md): the guard lock's
// word and Boost's allocator tree. Only processes that may write the segment
// (its owner: 0600) can change them, and they can equally corrupt any lock.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "procsync/mutex.hpp"
#include "procsync/segment.hpp"
#include "procsync/shared_value.hpp"

namespace {

constexpr std::size_t kSize = 16 * 1024;

struct fuzz_template {
  std::vector<unsigned char> bytes;
  std::size_t object_header_at = 0;
  std::string name;
};

const fuzz_template& the_template() {
  static const fuzz_template t = [] {
    fuzz_template f;
    f.name = "procsync-fuzz-" + std::to_string(::getpid());
    procsync::named_segment::remove(f.name);
    {
      procsync::named_segment seg(procsync::create_only, f.name, kSize);
      auto& m = seg.construct<procsync::mutex>("m");
      (void)seg.construct<procsync::shared_value<int>>("v", 7);
      f.object_header_at = static_cast<std::size_t>(reinterpret_cast<char*>(&m) - static_cast<char*>(seg.address())) -
                           sizeof(procsync::detail::object_header);
      const auto* base = static_cast<const unsigned char*>(seg.address());
      f.bytes.assign(base, base + kSize);
    }
    procsync::named_segment::remove(f.name);
    return f;
  }();
  return t;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const fuzz_template& t = the_template();
  std::vector<unsigned char> bytes = t.bytes;
  std::size_t length = bytes.size();
  if (size > 0) {
    // 0..127: keep everything; else truncate to a size picked by the byte.
    if (data[0] >= 128) length = static_cast<std::size_t>(data[0] - 128) * (kSize / 128);
    ++data;
    --size;
  }
  constexpr std::size_t header_part = offsetof(procsync::detail::segment_header, guard);
  const std::size_t h = size < header_part ? size : header_part;
  std::memcpy(bytes.data(), data, h);
  const std::size_t o = size - h < sizeof(procsync::detail::object_header) ? size - h
                                                                             : sizeof(procsync::detail::object_header);
  std::memcpy(bytes.data() + t.object_header_at, data + h, o);

  const int fd = ::shm_open(("/" + t.name).c_str(), O_CREAT | O_TRUNC | O_RDWR, 0600);
  if (fd < 0) return 0;
  const bool written = ::write(fd, bytes.data(), length) == static_cast<ssize_t>(length);
  ::close(fd);
  if (written) {
    try {
      procsync::named_segment seg(procsync::open_only, t.name, std::chrono::milliseconds(0));
      (void)seg.free_memory();
      try {
        auto& m = seg.find<procsync::mutex>("m");
        if (m.try_lock()) m.unlock();
      } catch (const procsync::error&) {
      }
      try {
        (void)seg.find<procsync::shared_value<int>>("m");
      } catch (const procsync::error&) {
      }
      (void)seg.find<procsync::shared_value<int>>("v").load();
    } catch (const procsync::error&) {
      // The expected outcome for most inputs: a clear error.
    }
  }
  procsync::named_segment::remove(t.name);
  return 0;
}
