// `hpl pack`: a GGUF whose matmul weights are stored already in hpl's packed layouts
// (kernel/repack.h, type ids in gguf/gguf.h), so loading maps them in place with no heap copy
// and no repack; and the inverse, back to a plain GGUF any reader takes.
//
// What is packed: every tensor engine/repack_weights.h's packable_tensors names (the layer
// matrices and the output, a tied token_embd included, of types Q4_0 Q5_0 Q8_0 Q4_K Q5_K Q6_K,
// in whole groups of 8 rows), for every body: the packed bytes are the same on x86 and ARM.
// A body without a kernel for a stored packed type unpacks it at load (engine/repack_weights.h).
// Everything else is copied byte for byte; the metadata is the input's plus hpl.packed_layout.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace hpl {

// Data-section alignment of a packed file (at least the input's): cache-line aligned tensors.
constexpr size_t kPackedAlignment = 64;

struct PackResult {
  int n_changed = 0, n_kept = 0;  // tensors (un)packed / copied unchanged
  uint64_t changed_bytes = 0;     // bytes of the (un)packed tensors
  uint64_t in_file_bytes = 0, out_file_bytes = 0;
  double seconds = 0;
};

// in_path (a plain GGUF model the engine loads) -> out_path packed (via out_path.tmp, renamed at
// the end). Throws on a file that is packed already, a model the engine cannot load, or an
// output that is the input (tools/quantize_model.h's check_output_path). log: one line per
// packed tensor (may be empty).
PackResult pack_model(const std::string& in_path, const std::string& out_path,
                      const std::function<void(const std::string&)>& log);

// A packed file -> the plain GGUF it came from (tensor bytes identical to the source; the
// hpl.packed_layout key dropped). Throws on a file that is not packed.
PackResult unpack_model(const std::string& in_path, const std::string& out_path,
                        const std::function<void(const std::string&)>& log);

}  // namespace hpl
