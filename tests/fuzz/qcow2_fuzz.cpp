// libFuzzer target for qcow2 parsing: the header, its extensions and the backing name (pure
// parsers over byte spans), then the whole image through qcow2::Image over an in-memory file:
// open, read, block status, and writes on a copy. Any crash, sanitizer report, hang or runaway
// allocation is a bug: a malformed image must be refused or give errors.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "blockcore/drivers/qcow2/format.h"
#include "blockcore/drivers/qcow2/image.h"

namespace {

using namespace chainfs;
using namespace chainfs::qcow2;

void parse_only(std::span<const std::byte> bytes) {
  auto header = parse_header_cluster(bytes);
  if (!header.ok()) return;
  auto geo = validate_header(*header, bytes.size());
  // Whatever parses must serialize and parse back to the same backing reference.
  auto again = serialize_header_cluster(*header);
  if (again.ok()) {
    auto reparsed = parse_header_cluster(*again);
    if (!reparsed.ok() || reparsed->backing_file.value_or("") != header->backing_file.value_or(""))
      __builtin_trap();
  }
  if (!geo.ok()) return;
  // Every 16-byte window as an L2 entry and every 8 bytes as L1/refcount-table entries.
  for (size_t at = 0; at + 16 <= bytes.size() && at < 4096; at += 8) {
    L2Entry e{load_be64(bytes.data() + at), load_be64(bytes.data() + at + 8)};
    auto d = decode_l2_entry(*geo, e, bytes.size());
    if (d.ok())
      for (uint32_t sc = 0; sc < geo->subclusters; ++sc) (void)subcluster_state(*geo, *d, sc);
    (void)decode_l1_entry(*geo, e.word, bytes.size());
    (void)decode_reftable_entry(*geo, e.word, bytes.size());
  }
}

void exercise_image(const std::vector<std::byte>& bytes, bool writable) {
  NoBackingReader backing;
  MemoryHostFile file(bytes, 32ull << 20);
  auto opened = Image::open(file, backing, {!writable, 256 << 10});
  if (!opened.ok()) return;
  Image& image = **opened;
  const uint64_t span = std::min<uint64_t>(image.size(), 2ull << 20);
  std::vector<std::byte> buf(65536);
  for (uint64_t off = 0; off < span; off += buf.size())
    (void)image.read(off, {buf.data(), std::min<uint64_t>(buf.size(), span - off)});
  for (uint64_t off = 0, steps = 0; off < image.size() && steps < 64; ++steps) {
    auto st = image.block_status(off, image.size() - off);
    if (!st.ok() || st->length == 0) break;
    off += st->length;
  }
  (void)image.allocated_bytes();
  if (!writable) return;
  std::vector<std::byte> data(10000, std::byte{0xa5});
  for (uint64_t off : {uint64_t{0}, uint64_t{70000}, span / 2})
    if (off + data.size() <= image.size()) (void)image.write(off, data);
  if (image.size() >= 140000) {
    (void)image.write_zeroes(65536, 70000);
    (void)image.discard(0, 131072);
  }
  (void)image.flush();
  (void)image.truncate(image.size() + 65536);
  (void)image.close();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > (4u << 20)) return 0;
  std::vector<std::byte> bytes(size);
  if (size) std::memcpy(bytes.data(), data, size);
  parse_only(bytes);
  exercise_image(bytes, false);
  exercise_image(bytes, true);
  return 0;
}
