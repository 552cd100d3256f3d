// Measured main-memory read bandwidth, the ceiling for decode: every thread of the pool sums
// its slice of a buffer far larger than the caches, as a gemv streams weight rows.
#pragma once

#include <cstddef>

#include "kernel/thread_pool.h"

namespace hpl {

// Best of `reps` passes over a `bytes` buffer (rounded to 4 KiB), in bytes per second.
double measure_read_bandwidth(kernel::ThreadPool& pool, size_t bytes = size_t{512} << 20,
                              int reps = 5);

}  // namespace hpl
