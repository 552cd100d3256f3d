// `hpl profile --trace FILE`: the slices of the last repetition of each phase in the Chrome
// trace event format (Perfetto, chrome://tracing). One track per thread; on the thread that
// drives the forward pass a phase slice encloses layer slices which enclose op slices; worker
// threads show their op slices (matmul row ranges, per-token work), so barrier waits and load
// imbalance are the gaps between them.
#pragma once

#include <string>
#include <vector>

#include "tools/profile_run.h"

namespace hpl::cli {

// The trace JSON ({"traceEvents": [...]}) for phases; isa names the SIMD body set.
std::string chrome_trace_json(const std::vector<const PhaseRun*>& phases, const char* isa);

}  // namespace hpl::cli
