#include "runtime/session_memory.h"

#include <exception>
#include <new>

#include "engine/kv_cache.h"
#include "gguf/gguf.h"

namespace hpl {

MemoryEstimate estimate_session_memory(const std::string& path, const SessionOptions& opt) {
  try {
    return estimate_memory(*GgufFile::open(path), opt);
  } catch (const std::bad_alloc&) {
    throw;
  } catch (const RuntimeError&) {
    throw;
  } catch (const std::exception& e) {
    throw RuntimeError(Status::kModel, e.what());
  }
}

DType cache_type_from_name(const std::string& name) {
  DType t = DType::F16;
  if (!name.empty() && !kv_type_from_name(name, &t))
    throw RuntimeError(Status::kInvalidArgument,
                       "unknown KV cache type '" + name + "' (f16, f32, q8_0, q4_0)");
  return t;
}

}  // namespace hpl
