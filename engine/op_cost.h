// Bytes moved and operations per op kind of the forward pass, computed from the model's
// shapes and weight types (not measured), for `hpl profile`'s roofline. The counts follow
// what forward.cc does for one eval of ntok tokens at positions pos0.. in micro-batches:
//   matmul W (rows, cols) over a micro-batch of b tokens: weights rows * row_stride once,
//     activations b rows in (f32 or the quantized vec_dot format) and b * rows f32 out;
//     2 * rows * cols * b ops (a multiply-add is 2).
//   attention: K and V cache rows of the positions the micro-batch sees (f16) once per layer,
//     q in and out f32; per token and head 4 * head_dim ops per attended key (q.k and p.v).
//   element-wise ops (norm, rope, activation, add, kv_store, quantize_act, embedding): every
//     element read and written once; ops are the nominal arithmetic per element (see .cc).
// Caches are not modelled: these are the bytes an op touches, the DRAM traffic when nothing
// is reused (the decode case, where weights dominate).
#pragma once

#include <array>
#include <cstdint>

#include "engine/model.h"
#include "engine/profiler.h"

namespace hpl {

struct OpCost {
  double bytes = 0;   // read + written
  double ops = 0;     // arithmetic operations (multiply-add = 2)
  bool int8 = false;  // matmul with quantized (int8 dot) activations; else f32 compute
};
using OpCosts = std::array<OpCost, kProfOpCount>;

// Adds the cost of Forward::eval(ids (ntok,), ...) at positions pos0.. with micro-batch n_ubatch
// and logits for the last n_out tokens (1: last token only, ntok: all) into c.
void add_eval_cost(const Model& m, int64_t ntok, int64_t pos0, int64_t n_ubatch, int64_t n_out,
                   OpCosts& c);

}  // namespace hpl
