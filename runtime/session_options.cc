#include "runtime/session_options.h"

#include <exception>
#include <new>
#include <stdexcept>

#include "engine/kv_cache.h"
#include "gguf/gguf.h"
#include "kernel/cpu_topology.h"

namespace hpl {

SessionOptions session_options_from_text(int64_t n_ctx, int64_t n_ubatch, int n_threads,
                                         const std::string& cpus, const std::string& cache_type) {
  SessionOptions o;
  o.n_ctx = n_ctx;
  o.n_ubatch = n_ubatch;
  o.n_threads = n_threads;  // 0: the topology default, as a session's pool takes
  try {
    if (!cpus.empty()) o.cpus = kernel::parse_cpu_list(cpus);
  } catch (const std::invalid_argument& e) {
    throw RuntimeError(Status::kInvalidArgument, std::string("cpus: ") + e.what());
  }
  if (!cache_type.empty() && !kv_type_from_name(cache_type, &o.cache_type))
    throw RuntimeError(Status::kInvalidArgument, "cache_type: unknown KV cache type '" +
                                                     cache_type + "' (f16, f32, q8_0, q4_0)");
  return o;
}

MemoryEstimate estimate_session_memory(const std::string& path, const SessionOptions& opt) {
  try {
    ForwardOptions fo = opt;
    opt.spec.apply(fo);  // the rewind slack a session keeps for drafts
    MemoryEstimate e = estimate_memory(*GgufFile::open(path), fo);
    if (opt.spec.draft_path.empty()) return e;
    // A draft model: its own forward pass, and its weights unless it is the model itself.
    const MemoryEstimate d =
        estimate_memory(*GgufFile::open(opt.spec.draft_path), fo, ModelKind::kGenerate);
    if (opt.spec.draft_path != path) {
      e.file_bytes += d.file_bytes;
      e.weights_mapped_bytes += d.weights_mapped_bytes;
      e.weights_converted_bytes += d.weights_converted_bytes;
    }
    e.kv_bytes += d.kv_bytes;
    e.kv_bytes_full += d.kv_bytes_full;
    e.kv_bytes_f16 += d.kv_bytes_f16;
    e.scratch_bytes += d.scratch_bytes;
    return e;
  } catch (const std::bad_alloc&) {
    throw;
  } catch (const RuntimeError&) {
    throw;
  } catch (const std::exception& e) {
    throw RuntimeError(Status::kModel, e.what());
  }
}

}  // namespace hpl
