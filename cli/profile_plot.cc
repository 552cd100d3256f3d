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

// The roofline panel's box and log10 axes: x = ops/byte, y = achieved GOP/s.
struct LogAxes {
  double px0 = 70, py0 = 50, pw = 520, ph = 360;
  double lx0 = 0, lx1 = 1, ly0 = 0, ly1 = 1;  // decades shown
  double X(double ai) const { return px0 + (std::log10(ai) - lx0) / (lx1 - lx0) * pw; }
  double Y(double g) const { return py0 + ph - (std::log10(g) - ly0) / (ly1 - ly0) * ph; }
};

bool plottable(const PlotOp& o) {
  return o.cost.bytes > 0 && o.cost.ops > 0 && o.seconds > 0;
}

// Axes wide enough for every point, both peaks and the ridge between bandwidth and peak.
LogAxes roofline_axes(const std::vector<PlotPhase>& phases, const Roofline& roof) {
  double xmin = 1e30, xmax = 0, ymin = 1e30, ymax = 0;
  for (const PlotPhase& p : phases)
    for (const PlotOp& o : p.ops) {
      if (!plottable(o)) continue;
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
  LogAxes ax;
  ax.lx0 = std::floor(std::log10(xmin));
  ax.lx1 = std::ceil(std::log10(xmax));
  ax.ly0 = std::floor(std::log10(ymin));
  ax.ly1 = std::ceil(std::log10(ymax * 1.5));
  return ax;
}

void draw_grid(SvgWriter& svg, const LogAxes& ax) {
  svg.rect(ax.px0, ax.py0, ax.pw, ax.ph, "none", "#888");
  for (double d = ax.lx0; d <= ax.lx1; ++d) {
    const double x = ax.X(std::pow(10, d));
    svg.line(x, ax.py0, x, ax.py0 + ax.ph, "#eee");
    svg.text(x, ax.py0 + ax.ph + 16, si(std::pow(10, d)), 10, "middle");
  }
  for (double d = ax.ly0; d <= ax.ly1; ++d) {
    const double y = ax.Y(std::pow(10, d));
    svg.line(ax.px0, y, ax.px0 + ax.pw, y, "#eee");
    svg.text(ax.px0 - 6, y + 4, si(std::pow(10, d)), 10, "end");
  }
  svg.text(ax.px0 + ax.pw / 2, ax.py0 + ax.ph + 34, "arithmetic intensity (ops / byte, modelled)",
           11, "middle");
  svg.text(ax.px0 - 48, ax.py0 + ax.ph / 2, "achieved GOP/s", 11, "middle", -90);
}

// Roofs: the bandwidth slope up to each peak, then flat.
void draw_roofs(SvgWriter& svg, const LogAxes& ax, const Roofline& roof) {
  const double bw = roof.read_bytes_per_s / 1e9;
  auto roof_line = [&](double peak_g, const char* name, const char* dash) {
    if (bw <= 0 || peak_g <= 0) return;
    const double ridge = peak_g / bw;
    const double a0 = std::pow(10, ax.lx0), a1 = std::pow(10, ax.lx1);
    const double s0 = std::max(a0, std::pow(10, ax.ly0) / bw);
    if (ridge > s0)
      svg.line(ax.X(s0), ax.Y(bw * s0), ax.X(std::min(ridge, a1)), ax.Y(bw * std::min(ridge, a1)),
               "#444", 1.5, dash);
    if (ridge < a1)
      svg.line(ax.X(std::max(ridge, a0)), ax.Y(peak_g), ax.X(a1), ax.Y(peak_g), "#444", 1.5, dash);
    svg.text(ax.X(a1) - 4, ax.Y(peak_g) - 5, std::string(name) + " " + si(peak_g) + " GOP/s", 10,
             "end");
  };
  roof_line(roof.int8_ops_per_s / 1e9, "int8 peak", "");
  roof_line(roof.f32_ops_per_s / 1e9, "f32 peak", "6,3");
  if (bw > 0) {
    const double a = std::max(std::pow(10, ax.lx0 + 0.3), std::pow(10, ax.ly0 + 0.3) / bw);
    svg.text(ax.X(a), ax.Y(bw * a) - 6, "read " + si(bw) + " GB/s", 10, "start", 0, "#444");
  }
}

// A point per op kind: filled for the first phase, hollow for the others.
void draw_points(SvgWriter& svg, const LogAxes& ax, const std::vector<PlotPhase>& phases) {
  for (size_t pi = 0; pi < phases.size(); ++pi) {
    for (const PlotOp& o : phases[pi].ops) {
      if (!plottable(o)) continue;
      const double x = ax.X(o.cost.ops / o.cost.bytes), y = ax.Y(o.cost.ops / o.seconds / 1e9);
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
  svg.text(ax.px0 + 6, ax.py0 + 14, key, 10);
}

// Stacked bars of each phase's time by op kind (at most 3 phases), then a legend of the op
// kinds present. by0, bh: the bars' top and height.
void draw_time_shares(SvgWriter& svg, const std::vector<PlotPhase>& phases, double by0, double bh) {
  const double bx0 = 650, bar_w = 60, gap = 40;
  const size_t n_bars = std::min<size_t>(phases.size(), 3);
  for (size_t pi = 0; pi < n_bars; ++pi) {
    double total = 0;
    for (const PlotOp& o : phases[pi].ops) total += o.seconds;
    const double x = bx0 + pi * (bar_w + gap);
    double y = by0 + bh;
    for (const PlotOp& o : phases[pi].ops) {
      if (total <= 0) break;
      const double h = bh * o.seconds / total;
      y -= h;
      svg.rect(x, y, bar_w, h, colour(o.op), "white");
    }
    svg.text(x + bar_w / 2, by0 + bh + 16, phases[pi].name, 10, "middle");
  }
  svg.text(bx0 - 8, by0 + bh / 2, "share of time", 11, "middle", -90);
  double ly = by0;
  const double lx = bx0 + n_bars * (bar_w + gap);
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
}

}  // namespace

std::string profile_plot_svg(const std::vector<PlotPhase>& phases, const Roofline& roof,
                             const std::string& title) {
  const double W = 980, H = 480;
  SvgWriter svg(W, H);
  svg.text(W / 2, 22, title, 14, "middle");
  const LogAxes ax = roofline_axes(phases, roof);
  draw_grid(svg, ax);
  draw_roofs(svg, ax, roof);
  draw_points(svg, ax, phases);
  draw_time_shares(svg, phases, ax.py0, ax.ph);
  return svg.finish();
}

}  // namespace hpl::cli
