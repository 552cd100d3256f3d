// Weights moved at load into the packed layouts the active kernel body computes fastest
// (kernel/repack.h), when it has one for their type. The packed copy lives on the heap and the
// mapped file pages it came from are released (madvise), so the model is not held twice.
#pragma once

#include "engine/model_weights.h"

namespace hpl {

// Repacks every layer matrix and the output (when tied, a packed copy of token_embd, whose
// mapped rows stay for embedding lookups) that the active body has a packed kernel for; records
// what it did in w.packed / w.packed_bytes. HPL_REPACK=0 in the environment leaves the weights as
// they are (for comparisons).
void repack_weights(ModelWeights& w);

}  // namespace hpl
