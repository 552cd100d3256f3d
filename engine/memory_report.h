// Where the memory goes: weights (mapped in place / converted at load), KV cache, scratch,
// and the process's peak resident set size.
#pragma once

#include <cstddef>
#include <string>

#include "engine/embedding.h"
#include "engine/forward.h"
#include "engine/model.h"

namespace hpl {

struct MemoryReport {
  size_t file_bytes = 0;               // the whole GGUF mapping
  size_t weights_mapped_bytes = 0;     // tensor bytes used in place
  size_t weights_converted_bytes = 0;  // F32 copies made at load
  size_t weights_packed_bytes = 0;     // of the mapped bytes, moved to a (re/un)packed heap copy
  size_t kv_bytes = 0;
  const char* kv_type = "f16";  // the KV cache's row type (kv_type_name)
  size_t scratch_bytes = 0;
  size_t peak_rss_bytes = 0;  // VmHWM; 0 when /proc/self/status is unavailable
};

// Peak resident set size of this process (VmHWM from /proc/self/status), 0 if unknown.
size_t peak_rss_bytes();

MemoryReport memory_report(const Model& m, const Forward& f);
// An embedding / rerank model's: an encoder has no KV cache (kv_type "none").
MemoryReport memory_report(const Model& m, const Embedder& e);
// One line per item: "weights mapped  236.2 MiB" ...
std::string format_memory_report(const MemoryReport& r);

}  // namespace hpl
