#include "cli/profile_plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "cli/svg_writer.h"

namespace hpl::cli {

namespace {

// One colour per op kind (ProfOp order).
const char* colour(ProfOp op) {
  static const char* c[] = {"#1f77b4", "#aec7e8", "#6baed6", "#08519c", "#ff7f0e", "#ffbb78",
                            "#d62728", "#9467bd", "#2ca02c", "#98df8a", "#8c564b", "#e377c2",
                            "#f7b6d2", "#7f7f7f", "#bcbd22", "#17becf", "#c49c94", "#c7c7c7"};
  const int i = static_cast<int>(op);
  return c[i % static_cast<int>(sizeof c / sizeof c[0])];
}

std::string si(double v) {
  char buf[32];
  if (v >= 100) {
    std::snprintf(buf, sizeof buf, "%.0f", v);
  } else if (v >= 1) {
    std::snprintf(buf, sizeof buf, "%.3g", v);
  } else {
    std::snprintf(buf, sizeof buf, "%.2g", v);
  }
  return buf;
}

}  // namespace

std::string profile_plot_svg(const std::vector<PlotPhase>& phases, const Roofline& roof,
                             const std::string& title) {
  const double W = 980, H = 480;
  SvgWriter svg(W, H);
  svg.text(W / 2, 22, title, 14, "middle");

  // --- roofline panel: x = ops/byte, y = GOP/s, both log10 ---
  const double px0 = 70, py0 = 50, pw = 520, ph = 360;
  double xmin = 1e30, xmax = 0, ymin = 1e30, ymax = 0;
  for (const PlotPhase& p : phases)
    for (const PlotOp& o : p.ops) {
      if (o.cost.bytes <= 0 || o.cost.ops <= 0 || o.seconds <= 0) continue;
      xmin = std::min(xmin, o.cost.ops / o.cost.bytes);
      xmax = std::max(xmax, o.cost.ops / o.cost.bytes);
      ymin = std::min(ymin, o.cost.ops / o.seconds / 1e9);
      ymax = std::max(ymax, o.cost.ops / o.seconds / 1e9);
    }
  const double peak = std::max(roof.int8_ops_per_s, roof.f32_ops_per_s) / 1e9;
  const double bw = roof.read_bytes_per_s / 1e9;
  if (xmax <= 0) xmin = 0.1, xmax = 10, ymin = 0.1, ymax = 10;
  if (bw > 0 && peak > 0) xmax = std::max(xmax, peak / bw * 4);  // show the ridge
  ymax = std::max(ymax, peak);
  const double lx0 = std::floor(std::log10(xmin)), lx1 = std::ceil(std::log10(xmax));
  const double ly0 = std::floor(std::log10(ymin)), ly1 = std::ceil(std::log10(ymax * 1.5));
  auto X = [&](double ai) { return px0 + (std::log10(ai) - lx0) / (lx1 - lx0) * pw; };
  auto Y = [&](double g) { return py0 + ph - (std::log10(g) - ly0) / (ly1 - ly0) * ph; };
  svg.rect(px0, py0, pw, ph, "none", "#888");
  for (double d = lx0; d <= lx1; ++d) {
    svg.line(X(std::pow(10, d)), py0, X(std::pow(10, d)), py0 + ph, "#eee");
    svg.text(X(std::pow(10, d)), py0 + ph + 16, si(std::pow(10, d)), 10, "middle");
  }
  for (double d = ly0; d <= ly1; ++d) {
    svg.line(px0, Y(std::pow(10, d)), px0 + pw, Y(std::pow(10, d)), "#eee");
    svg.text(px0 - 6, Y(std::pow(10, d)) + 4, si(std::pow(10, d)), 10, "end");
  }
  svg.text(px0 + pw / 2, py0 + ph + 34, "arithmetic intensity (ops / byte, modelled)", 11,
           "middle");
  svg.text(px0 - 48, py0 + ph / 2, "achieved GOP/s", 11, "middle", -90);
  // Roofs: bandwidth slope up to each peak, then flat.
  auto roof_line = [&](double peak_g, const char* name, const char* dash) {
    if (bw <= 0 || peak_g <= 0) return;
    const double ridge = peak_g / bw;
    const double a0 = std::pow(10, lx0), a1 = std::pow(10, lx1);
    const double s0 = std::max(a0, std::pow(10, ly0) / bw);
    if (ridge > s0)
      svg.line(X(s0), Y(bw * s0), X(std::min(ridge, a1)), Y(bw * std::min(ridge, a1)), "#444", 1.5,
               dash);
    if (ridge < a1)
      svg.line(X(std::max(ridge, a0)), Y(peak_g), X(a1), Y(peak_g), "#444", 1.5, dash);
    svg.text(X(a1) - 4, Y(peak_g) - 5, std::string(name) + " " + si(peak_g) + " GOP/s", 10, "end");
  };
  roof_line(roof.int8_ops_per_s / 1e9, "int8 peak", "");
  roof_line(roof.f32_ops_per_s / 1e9, "f32 peak", "6,3");
  if (bw > 0) {
    const double a = std::max(std::pow(10, lx0 + 0.3), std::pow(10, ly0 + 0.3) / bw);
    svg.text(X(a), Y(bw * a) - 6, "read " + si(bw) + " GB/s", 10, "start", 0, "#444");
  }
  // Points: filled for the first phase, hollow for the others.
  for (size_t pi = 0; pi < phases.size(); ++pi) {
    for (const PlotOp& o : phases[pi].ops) {
      if (o.cost.bytes <= 0 || o.cost.ops <= 0 || o.seconds <= 0) continue;
      const double x = X(o.cost.ops / o.cost.bytes), y = Y(o.cost.ops / o.seconds / 1e9);
      if (pi == 0) {
        svg.circle(x, y, 4.5, colour(o.op), "#222");
      } else {
        svg.circle(x, y, 4.5, "white", colour(o.op));
        svg.circle(x, y, 2, colour(o.op));
      }
      if (prof_op_is_matmul(o.op) || o.op == ProfOp::kAttention)
        svg.text(x + 6, y - 4, prof_op_name(o.op), 9, "start", 0, "#555");
    }
  }
  std::string key = "filled: " + (phases.empty() ? std::string("-") : phases[0].name);
  if (phases.size() > 1) key += "; hollow: " + phases[1].name;
  svg.text(px0 + 6, py0 + 14, key, 10);

  // --- stacked bars: share of each phase's time by op kind ---
  const double bx0 = 650, bw_ = 60, gap = 40, by0 = py0, bh = ph;
  for (size_t pi = 0; pi < phases.size() && pi < 3; ++pi) {
    double total = 0;
    for (const PlotOp& o : phases[pi].ops) total += o.seconds;
    const double x = bx0 + pi * (bw_ + gap);
    double y = by0 + bh;
    for (const PlotOp& o : phases[pi].ops) {
      if (total <= 0) break;
      const double h = bh * o.seconds / total;
      y -= h;
      svg.rect(x, y, bw_, h, colour(o.op), "white");
    }
    svg.text(x + bw_ / 2, by0 + bh + 16, phases[pi].name, 10, "middle");
  }
  svg.text(bx0 - 8, by0 + bh / 2, "share of time", 11, "middle", -90);
  // Legend: every op kind present.
  double ly = by0;
  const double lx = bx0 + std::min<size_t>(phases.size(), 3) * (bw_ + gap);
  for (int i = 0; i < kProfOpCount; ++i) {
    const auto op = static_cast<ProfOp>(i);
    bool present = false;
    for (const PlotPhase& p : phases)
      for (const PlotOp& o : p.ops) present |= o.op == op && o.seconds > 0;
    if (!present) continue;
    svg.rect(lx, ly, 10, 10, colour(op));
    svg.text(lx + 14, ly + 9, prof_op_name(op), 10);
    ly += 15;
  }
  return svg.finish();
}

}  // namespace hpl::cli
