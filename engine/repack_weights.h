// Weights moved at load into the packed layouts the active kernel body computes fastest
// (kernel/repack.h), when it has one for their type. The packed copy lives on the heap and the
// mapped file pages it came from are released (madvise), so the model is not held twice.
// A packed file (`hpl pack`, gguf/gguf.h) holds them packed already: used in place.
#pragma once

#include <set>
#include <string>

#include "engine/model_weights.h"

namespace hpl {

// Repacks every layer matrix and the output (when tied, a packed copy of token_embd, whose
// mapped rows stay for embedding lookups) that the active body has a packed kernel for; records
// what it did in w.packed / w.packed_bytes. Matrices stored packed stay in the mapping
// (w.prepacked_bytes), or are unpacked to the heap (w.unpacked) when the body has no kernel
// for their type. HPL_REPACK=0 in the environment leaves plain weights as they are and
// unpacks packed ones (for comparisons).
void repack_weights(ModelWeights& w);

// Bytes repack_weights would move to the heap (repacked, or unpacked from a packed file) on
// the active body with the current HPL_REPACK; w as loaded (load_model_weights, count_only
// is enough). For memory estimates.
size_t heap_bytes_at_load(const ModelWeights& w);

// Names of the tensors `hpl pack` stores packed: the matmul weights repack_weights considers
// (layers and output; a tied token_embd) whose type has a packed layout, in whole groups of 8
// rows, for every body (the layouts' bytes are the same on x86 and ARM). w as loaded (plain).
std::set<std::string> packable_tensors(const ModelWeights& w);

}  // namespace hpl
