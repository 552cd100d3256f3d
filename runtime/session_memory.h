// What a model file and one session with these options would take in memory, before loading
// anything (engine/memory_estimate.h), for the runtime's callers (C API, bindings).
#pragma once

#include <string>

#include "engine/memory_estimate.h"
#include "runtime/session.h"

namespace hpl {

// Throws RuntimeError: kModel for a bad or unsupported file, or options the model cannot
// take (e.g. a quantized KV cache with a head_dim that is not a multiple of 32).
MemoryEstimate estimate_session_memory(const std::string& path, const SessionOptions& opt);

// The KV cache type of a name ("f16", "f32", "q8_0", "q4_0"; "" is f16). Throws RuntimeError
// kInvalidArgument naming the value otherwise.
DType cache_type_from_name(const std::string& name);

}  // namespace hpl
