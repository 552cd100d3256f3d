// `hpl profile --plot FILE.svg`: left, the roofline (log-log: arithmetic intensity in ops per
// byte against GOP/s, the measured read bandwidth slope capped by the measured int8 and f32
// peaks) with one point per op kind and phase; right, one stacked bar per phase of its time by
// op kind (100 % = the sum of the op medians).
#pragma once

#include <string>
#include <vector>

#include "tools/profile_run.h"

namespace hpl::cli {

struct PlotOp {
  ProfOp op;
  double seconds = 0;  // median, per phase unit
  OpCost cost;         // per phase unit
};
struct PlotPhase {
  std::string name;  // "prefill", "decode @512"
  std::vector<PlotOp> ops;
};

std::string profile_plot_svg(const std::vector<PlotPhase>& phases, const Roofline& roof,
                             const std::string& title);

}  // namespace hpl::cli
