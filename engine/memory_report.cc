#include "engine/memory_report.h"

#include <cstdio>
#include <cstring>

namespace hpl {

size_t peak_rss_bytes() {
  FILE* f = std::fopen("/proc/self/status", "r");
  if (!f) return 0;
  char line[256];
  size_t kb = 0;
  while (std::fgets(line, sizeof line, f)) {
    if (std::strncmp(line, "VmHWM:", 6) == 0) {
      std::sscanf(line + 6, "%zu", &kb);
      break;
    }
  }
  std::fclose(f);
  return kb * 1024;
}

namespace {
MemoryReport weights_report(const Model& m) {
  MemoryReport r;
  r.file_bytes = m.file->file_size();
  r.weights_mapped_bytes = m.weights.mapped_bytes;
  r.weights_converted_bytes = m.weights.converted_bytes;
  r.weights_packed_bytes = m.weights.packed_bytes + m.weights.unpacked_bytes;
  r.peak_rss_bytes = peak_rss_bytes();
  return r;
}
}  // namespace

MemoryReport memory_report(const Model& m, const Embedder& e) {
  MemoryReport r = weights_report(m);
  r.kv_bytes = e.kv_bytes();
  if (m.config.encoder) r.kv_type = "none";
  r.scratch_bytes = e.scratch_bytes();
  return r;
}

MemoryReport memory_report(const Model& m, const Forward& f) {
  MemoryReport r = weights_report(m);
  r.kv_bytes = f.kv_bytes();
  r.kv_type = kv_type_name(f.cache().type());
  r.scratch_bytes = f.scratch_bytes();
  return r;
}

std::string format_memory_report(const MemoryReport& r) {
  auto mib = [](size_t b) { return static_cast<double>(b) / (1024.0 * 1024.0); };
  char buf[768];
  std::snprintf(
      buf, sizeof buf,
      "memory: weights mapped %.1f MiB (file %.1f MiB; %.1f MiB of it repacked or unpacked "
      "to the heap, pages released), converted to f32 at load %.1f MiB, KV cache %.1f MiB "
      "(%s), scratch %.1f MiB, peak RSS %.1f MiB\n"
      "memory bytes: weights mapped %zu, converted %zu, KV cache %zu, scratch %zu\n",
      mib(r.weights_mapped_bytes), mib(r.file_bytes), mib(r.weights_packed_bytes),
      mib(r.weights_converted_bytes), mib(r.kv_bytes), r.kv_type, mib(r.scratch_bytes),
      mib(r.peak_rss_bytes), r.weights_mapped_bytes, r.weights_converted_bytes, r.kv_bytes,
      r.scratch_bytes);
  return buf;
}

}  // namespace hpl
