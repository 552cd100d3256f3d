// Measured compute ceilings for the roofline of `hpl profile`: the best matmul body of this
// build on cache-resident data (a gemm of 32 tokens over weights that fit in L2), on every
// thread of the pool at once. int8: Q8_0 weights x Q8_0 activations (the integer dot path of
// every quantized type); f32: F32 weights x f32 activations. This is what our kernels reach
// when memory is not the limit, not the datasheet peak of the core.
#pragma once

#include "kernel/thread_pool.h"

namespace hpl {

struct ComputePeak {
  double int8_ops_per_s = 0;  // multiply-add = 2 ops
  double f32_ops_per_s = 0;
};

// Best of `reps` timed passes of about `seconds` each per format.
ComputePeak measure_compute_peak(kernel::ThreadPool& pool, double seconds = 0.05, int reps = 3);

}  // namespace hpl
