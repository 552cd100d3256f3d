// hpl profile -m MODEL [options]: where the time of a prefill and of decode goes, op kind by op
// kind (matmul by tensor role, attention, norms, rope, activations, activation quantization,
// KV store, adds, embedding, sampling, other), and how far each op is from this machine's
// roofline. Warm: the first (cold) pass is reported separately and discarded, then --reps
// repetitions give a median and a min..max spread. "other" is the wall time no hook covered
// (thread-pool dispatch between ops, logits copies, loop overhead). Measurement loop:
// tools/profile_run.h; bytes and ops: engine/op_cost.h; attribution: engine/profiler.h.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "cli/cli_util.h"
#include "cli/command.h"
#include "cli/json_writer.h"
#include "cli/profile_plot.h"
#include "cli/profile_trace.h"
#include "engine/model.h"
#include "engine/vocab_loader.h"
#include "kernel/isa.h"
#include "tools/compute_peak.h"
#include "tools/memory_bandwidth.h"
#include "tools/profile_run.h"

namespace hpl::cli {
namespace {

std::vector<int64_t> parse_depths(const std::string& opt, const std::string& v) {
  std::vector<int64_t> out;
  std::stringstream ss(v);
  std::string item;
  while (std::getline(ss, item, ',')) {
    const int64_t d = to_int(opt, item);
    if (d < 0) throw std::runtime_error(opt + ": depth must be >= 0, got " + item);
    out.push_back(d);
  }
  if (out.empty()) throw std::runtime_error(opt + ": want a list like 0,512,2048");
  return out;
}

std::string op_label(ProfOp op) {
  return prof_op_is_matmul(op) ? std::string("mm ") + prof_op_name(op) : prof_op_name(op);
}

// One op kind of a phase, per phase unit (whole prefill, or one decode token).
struct OpRow {
  ProfOp op;
  Spread s;         // seconds per unit
  OpCost cost;      // per unit
  double gbps = 0;  // achieved, at the median
  double gops = 0;
  double roof = -1;  // % of attainable; -1 when there is no model of the op
  bool memory_bound = false;
};

struct PhaseView {
  const PhaseRun* run;
  Spread wall;              // seconds per unit
  double ops_sum = 0;       // sum of the op medians, per unit
  double hooked = 0;        // median share of wall seen by hooks
  std::vector<OpRow> rows;  // sorted by median, descending
};

PhaseView view(const PhaseRun& ph, const Roofline* roof) {
  PhaseView v{&ph, {}, 0, 0, {}};
  std::vector<double> wall, cov;
  for (size_t r = 0; r < ph.wall_s.size(); ++r) {
    wall.push_back(ph.wall_s[r] / ph.per);
    cov.push_back(ph.wall_s[r] > 0 ? ph.hooked_s[r] / ph.wall_s[r] : 0.0);
  }
  v.wall = spread_of(wall);
  v.hooked = spread_of(cov).median;
  for (int i = 0; i < kProfOpCount; ++i) {
    std::vector<double> xs;
    for (const auto& rep : ph.op_s) xs.push_back(rep[static_cast<size_t>(i)] / ph.per);
    OpRow row{static_cast<ProfOp>(i), spread_of(xs), ph.cost[static_cast<size_t>(i)]};
    if (row.s.max <= 0) continue;
    row.cost.bytes /= ph.per;
    row.cost.ops /= ph.per;
    if (row.s.median > 0 && row.cost.bytes > 0) {
      row.gbps = row.cost.bytes / row.s.median / 1e9;
      row.gops = row.cost.ops / row.s.median / 1e9;
      if (roof) {
        const double att = roof->attainable_ops(row.cost);
        const double peak = row.cost.int8 ? roof->int8_ops_per_s : roof->f32_ops_per_s;
        row.memory_bound = att < peak;
        row.roof = row.cost.ops > 0 ? 100.0 * row.gops * 1e9 / att
                                    : 100.0 * row.gbps * 1e9 / roof->read_bytes_per_s;
      }
    }
    v.ops_sum += row.s.median;
    v.rows.push_back(row);
  }
  std::sort(v.rows.begin(), v.rows.end(),
            [](const OpRow& a, const OpRow& b) { return a.s.median > b.s.median; });
  return v;
}

std::string phase_title(const PhaseRun& ph) {
  return ph.name == "decode" ? "decode @" + std::to_string(ph.depth) : ph.name;
}

void print_phase(const PhaseView& v, int reps) {
  const PhaseRun& ph = *v.run;
  const bool dec = ph.name == "decode";
  std::printf(
      "\n%s: %lld tokens%s, %.3f ms %s (min %.3f, max %.3f over %d reps, %.2f tok/s)\n",
      phase_title(ph).c_str(), static_cast<long long>(ph.n_tokens),
      dec ? (" at depth " + std::to_string(ph.depth)).c_str() : "", v.wall.median * 1e3,
      dec ? "per token" : "total", v.wall.min * 1e3, v.wall.max * 1e3, reps,
      v.wall.median > 0 ? (dec ? 1.0 : static_cast<double>(ph.n_tokens)) / v.wall.median : 0.0);
  std::printf("  hooks cover %.1f%% of wall; op medians sum to %.1f%% of the median wall\n",
              100.0 * v.hooked, v.wall.median > 0 ? 100.0 * v.ops_sum / v.wall.median : 0.0);
  std::printf("  %-15s %9s %9s %9s %6s %9s %8s %8s %8s %6s\n", "op", "ms", "min", "max", "%", "MB",
              "GB/s", "GOP/s", "roof%", "bound");
  for (const OpRow& r : v.rows) {
    std::printf("  %-15s %9.3f %9.3f %9.3f %5.1f%%", op_label(r.op).c_str(), r.s.median * 1e3,
                r.s.min * 1e3, r.s.max * 1e3, 100.0 * r.s.median / v.ops_sum);
    if (r.cost.bytes > 0) {
      std::printf(" %9.3f %8.2f %8.2f", r.cost.bytes / 1e6, r.gbps, r.gops);
      if (r.roof >= 0)
        std::printf(" %7.1f%% %6s", r.roof,
                    r.memory_bound ? "mem" : (r.cost.int8 ? "int8" : "f32"));
    }
    std::printf("\n");
  }
}

// Layer groups of the per-layer table.
struct Group {
  const char* name;
  std::vector<ProfOp> ops;
};
const std::vector<Group>& layer_groups() {
  static const std::vector<Group> g = {
      {"attn_mm", {ProfOp::kAttnQ, ProfOp::kAttnK, ProfOp::kAttnV, ProfOp::kAttnOutput}},
      {"attention", {ProfOp::kAttention}},
      {"ffn_mm", {ProfOp::kFfnGate, ProfOp::kFfnUp, ProfOp::kFfnDown}},
      {"rest",
       {ProfOp::kNorm, ProfOp::kRope, ProfOp::kActivation, ProfOp::kQuantizeAct, ProfOp::kKvStore,
        ProfOp::kAdd}}};
  return g;
}

// Median over repetitions of the seconds of group g in layer il, per phase unit.
double layer_group_median(const PhaseRun& ph, size_t il, const std::vector<ProfOp>& ops) {
  std::vector<double> xs;
  for (const auto& rep : ph.layer_s) {
    double s = 0;
    if (il < rep.size())
      for (ProfOp op : ops) s += rep[il][static_cast<size_t>(op)];
    xs.push_back(s / ph.per);
  }
  return spread_of(xs).median;
}

std::vector<ProfOp> all_ops() {
  std::vector<ProfOp> v;
  for (int i = 0; i < kProfOpCount; ++i) v.push_back(static_cast<ProfOp>(i));
  return v;
}

std::string layer_kind(const Model& m, int64_t il) {
  const LayerWeights& L = m.weights.layers[static_cast<size_t>(il)];
  std::string k = m.config.layer_is_swa(il) ? "swa" : "global";
  return k + " " + type_name(L.wq.type) + "/" + type_name(L.wv.type) + "/" + type_name(L.down.type);
}

void print_layers(const Model& m, const PhaseRun& ph) {
  std::printf("\n%s by layer (median ms%s; types wq/wv/ffn_down):\n", phase_title(ph).c_str(),
              ph.name == "decode" ? " per token" : "");
  std::printf("  %5s %-24s %9s", "layer", "kind", "total");
  for (const Group& g : layer_groups()) std::printf(" %9s", g.name);
  std::printf("\n");
  for (int64_t il = 0; il < m.config.n_layer; ++il) {
    std::printf("  %5lld %-24s %9.3f", static_cast<long long>(il), layer_kind(m, il).c_str(),
                layer_group_median(ph, static_cast<size_t>(il), all_ops()) * 1e3);
    for (const Group& g : layer_groups())
      std::printf(" %9.3f", layer_group_median(ph, static_cast<size_t>(il), g.ops) * 1e3);
    std::printf("\n");
  }
}

void json_phase(JsonWriter& j, const PhaseView& v, const Model& m, bool layers) {
  const PhaseRun& ph = *v.run;
  j.begin_object();
  j.key("n_tokens").num(ph.n_tokens);
  j.key("depth").num(ph.depth);
  j.key(ph.name == "decode" ? "ms_per_token" : "ms").num(v.wall.median * 1e3, 9);
  j.key("ms_min").num(v.wall.min * 1e3, 9);
  j.key("ms_max").num(v.wall.max * 1e3, 9);
  j.key("ops_sum_ms").num(v.ops_sum * 1e3, 9);
  j.key("hooked_fraction").num(v.hooked, 9);
  j.key("wall_ms_reps").begin_array();
  for (double s : ph.wall_s) j.num(s / ph.per * 1e3, 9);
  j.end_array();
  const double unit_tokens = ph.name == "decode" ? 1.0 : static_cast<double>(ph.n_tokens);
  j.key("tokens_per_s").num(v.wall.median > 0 ? unit_tokens / v.wall.median : 0.0, 9);
  j.key("ops").begin_array();
  for (const OpRow& r : v.rows) {
    j.begin_object();
    j.key("op").str(prof_op_name(r.op));
    j.key("kind").str(prof_op_is_matmul(r.op) ? "matmul" : prof_op_name(r.op));
    j.key("ms").num(r.s.median * 1e3, 9);
    j.key("ms_min").num(r.s.min * 1e3, 9);
    j.key("ms_max").num(r.s.max * 1e3, 9);
    j.key("pct").num(100.0 * r.s.median / v.ops_sum, 9);
    j.key("bytes").num(r.cost.bytes, 17);
    j.key("ops").num(r.cost.ops, 17);
    j.key("compute").str(r.cost.int8 ? "int8" : "f32");
    j.key("gbps").num(r.gbps, 9);
    j.key("gops").num(r.gops, 9);
    if (r.roof >= 0) {
      j.key("roof_pct").num(r.roof, 9);
      j.key("bound").str(r.memory_bound ? "memory" : "compute");
    }
    j.end_object();
  }
  j.end_array();
  if (layers) {
    j.key("layers").begin_array();
    for (int64_t il = 0; il < m.config.n_layer; ++il) {
      j.begin_object();
      j.key("layer").num(il);
      j.key("kind").str(layer_kind(m, il));
      j.key("ms").num(layer_group_median(ph, static_cast<size_t>(il), all_ops()) * 1e3, 9);
      for (const Group& g : layer_groups())
        j.key(g.name).num(layer_group_median(ph, static_cast<size_t>(il), g.ops) * 1e3, 9);
      j.end_object();
    }
    j.end_array();
  }
  j.end_object();
}

struct ProfileArgs {
  std::string model_path, trace_path, plot_path;
  ProfileOptions po;
  bool json = false, layers = false, roofline = true;
  ForwardOptions fo;
};

// false: --help was printed.
bool parse_profile_args(const std::vector<std::string>& args, ProfileArgs& a) {
  ProfileOptions& po = a.po;
  ThreadOptions th;
  Options o("usage: hpl profile -m MODEL.gguf [options]");
  o.text({"-m", "--model"}, "MODEL", "the GGUF model", a.model_path)
      .number({"-p", "--n-prompt"}, "N", "prompt tokens of the profiled prefill (default 128)",
              po.n_prompt)
      .number({"-n", "--n-gen"}, "N", "decode tokens per repetition (default 32)", po.n_gen)
      .number({"-r", "--reps"}, "N", "warm repetitions after the discarded cold pass (default 5)",
              po.reps)
      .value({"--ctx-depth"}, "LIST",
             "decode at these context depths, e.g. 0,512,2048\n"
             "(default: N_PROMPT, decode right after the prompt)",
             [&po](const std::string& opt, const std::string& v) {
               po.ctx_depths = parse_depths(opt, v);
             })
      .number({"--ubatch", "-ub"}, "N", "prefill micro-batch in tokens (default 256)",
              a.fo.n_ubatch)
      .flag({"--layers"}, "per-layer breakdown (median ms per op group)", a.layers)
      .text({"--trace"}, "FILE", "Chrome trace (Perfetto) of the last repetition of each phase",
            a.trace_path)
      .text({"--plot"}, "FILE.svg", "roofline with a point per op kind, and time shares by op",
            a.plot_path)
      .flag({"--no-roofline"}, "skip measuring bandwidth and compute peaks", a.roofline, false)
      .flag({"--json"}, "one JSON object on stdout instead of tables", a.json);
  th.add_to(o);
  if (!o.parse(args)) return false;
  if (a.model_path.empty()) o.fail("-m MODEL is required");
  constexpr int64_t kMax = int64_t{1} << 20;
  if (po.n_prompt < 1 || po.n_prompt > kMax) throw std::runtime_error("-p: must be >= 1");
  if (po.n_gen < 1 || po.n_gen > kMax) throw std::runtime_error("-n: must be >= 1");
  if (po.reps < 1 || po.reps > 1000) throw std::runtime_error("--reps: must be in [1, 1000]");
  if (a.fo.n_ubatch < 1) throw std::runtime_error("--ubatch: must be >= 1");
  if (po.ctx_depths.empty()) po.ctx_depths = {po.n_prompt};
  int64_t max_depth = 0;
  for (int64_t d : po.ctx_depths) {
    if (d > kMax) throw std::runtime_error("--ctx-depth: " + std::to_string(d) + " is too large");
    max_depth = std::max(max_depth, d);
  }
  po.trace = !a.trace_path.empty();
  a.fo.n_ctx = std::max(po.n_prompt + po.n_gen, max_depth + po.n_gen);
  th.apply(a.fo);
  check_ctx_threads(a.fo.n_ctx, a.fo.n_threads);
  return true;
}

// The machine's peaks, measured before the run on a pool of the same size and pinning.
Roofline measure_roofline(const ForwardOptions& fo) {
  kernel::ThreadPool pool(std::max(1, fo.n_threads), kernel::ThreadPool::kDefaultSpinUs, fo.cpus);
  warn_if_not_pinned(pool);
  Roofline roof;
  roof.read_bytes_per_s = measure_read_bandwidth(pool, size_t{256} << 20, 3);
  const ComputePeak cp = measure_compute_peak(pool);
  roof.int8_ops_per_s = cp.int8_ops_per_s;
  roof.f32_ops_per_s = cp.f32_ops_per_s;
  return roof;
}

void write_trace(const ProfileRun& run, const std::string& path) {
  std::vector<const PhaseRun*> phases = {&run.prefill};
  for (const PhaseRun& d : run.decode) phases.push_back(&d);
  std::ofstream f(path, std::ios::binary);
  f << chrome_trace_json(phases, isa_name()) << "\n";
  if (!f) throw std::runtime_error("--trace: cannot write '" + path + "'");
}

// The prefill, the first decode and the deepest decode, as an SVG roofline.
void write_plot(const ProfileArgs& a, const PhaseView& pre, const std::vector<PhaseView>& dec,
                const Roofline& roof) {
  std::vector<PlotPhase> pp;
  std::vector<const PhaseView*> shown = {&pre, &dec.front()};
  if (dec.size() > 1) shown.push_back(&dec.back());
  for (const PhaseView* v : shown) {
    PlotPhase p{phase_title(*v->run), {}};
    if (v->run->name == "decode") p.name += " (per token)";
    for (const OpRow& r : v->rows) p.ops.push_back({r.op, r.s.median, r.cost});
    pp.push_back(std::move(p));
  }
  char title[256];
  std::snprintf(title, sizeof title, "hpl profile: %s, %d threads (%s)",
                a.model_path.substr(a.model_path.find_last_of('/') + 1).c_str(), a.fo.n_threads,
                isa_name());
  std::ofstream f(a.plot_path, std::ios::binary);
  f << profile_plot_svg(pp, roof, title);
  if (!f) throw std::runtime_error("--plot: cannot write '" + a.plot_path + "'");
}

void print_profile_json(const ProfileArgs& a, const Model& model, double load_s,
                        const ProfileRun& run, const Roofline& roof, const PhaseView& pre,
                        const std::vector<PhaseView>& dec) {
  JsonWriter j;
  j.begin_object();
  j.key("model").str(a.model_path);
  j.key("arch").str(arch_name(model.config.arch));
  j.key("n_threads").num(a.fo.n_threads);
  j.key("isa").str(isa_name());
  j.key("n_prompt").num(a.po.n_prompt);
  j.key("n_gen").num(a.po.n_gen);
  j.key("reps").num(a.po.reps);
  j.key("cold").begin_object();
  j.key("load_ms").num(load_s * 1e3, 9);
  j.key("setup_ms").num(run.setup_s * 1e3, 9);
  j.key("first_token_ms").num(run.first_token_s * 1e3, 9);
  j.end_object();
  if (a.roofline) {
    j.key("machine").begin_object();
    j.key("read_gbps").num(roof.read_bytes_per_s / 1e9, 9);
    j.key("int8_gops").num(roof.int8_ops_per_s / 1e9, 9);
    j.key("f32_gops").num(roof.f32_ops_per_s / 1e9, 9);
    j.end_object();
  }
  j.key("prefill");
  json_phase(j, pre, model, a.layers);
  j.key("decode");
  json_phase(j, dec.front(), model, a.layers);
  j.key("decode_depths").begin_array();
  for (const PhaseView& d : dec) json_phase(j, d, model, a.layers);
  j.end_array();
  j.end_object();
  std::printf("%s\n", j.text().c_str());
}

void print_profile_text(const ProfileArgs& a, const Model& model, double load_s,
                        const ProfileRun& run, const Roofline& roof, const PhaseView& pre,
                        const std::vector<PhaseView>& dec) {
  std::printf("profile: %s (%s), %d threads (%s), %d warm reps\n", a.model_path.c_str(),
              arch_name(model.config.arch), a.fo.n_threads, isa_name(), a.po.reps);
  std::printf("cold: load %.1f ms, setup %.1f ms, first token (prefill %lld + sample) %.1f ms\n",
              load_s * 1e3, run.setup_s * 1e3, static_cast<long long>(a.po.n_prompt),
              run.first_token_s * 1e3);
  if (a.roofline)
    std::printf("machine: read %.2f GB/s, int8 %.1f GOP/s, f32 %.1f GOP/s (%d threads)\n",
                roof.read_bytes_per_s / 1e9, roof.int8_ops_per_s / 1e9, roof.f32_ops_per_s / 1e9,
                a.fo.n_threads);
  print_phase(pre, a.po.reps);
  for (const PhaseView& d : dec) print_phase(d, a.po.reps);
  if (a.layers) {
    print_layers(model, run.prefill);
    for (const PhaseRun& d : run.decode) print_layers(model, d);
  }
}

int run_profile(const std::vector<std::string>& args) {
  ProfileArgs a;
  if (!parse_profile_args(args, a)) return 0;
  // Cold start, reported as such: mapping the file and building the model.
  const auto t0 = std::chrono::steady_clock::now();
  auto model = Model::load(a.model_path);
  const double load_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  auto tok = load_tokenizer(*model->file);

  const Roofline roof = a.roofline ? measure_roofline(a.fo) : Roofline{};
  const ProfileRun run = profile_forward(*model, a.fo, a.po, tok->bos());
  const Roofline* rp = a.roofline ? &roof : nullptr;
  const PhaseView pre = view(run.prefill, rp);
  std::vector<PhaseView> dec;
  for (const PhaseRun& d : run.decode) dec.push_back(view(d, rp));

  if (!a.trace_path.empty()) write_trace(run, a.trace_path);
  if (!a.plot_path.empty()) write_plot(a, pre, dec, roof);
  if (a.json) {
    print_profile_json(a, *model, load_s, run, roof, pre, dec);
  } else {
    print_profile_text(a, *model, load_s, run, roof, pre, dec);
  }
  return 0;
}

}  // namespace

HPL_COMMAND("profile",
            "warm time per op kind (matmul by role, attention, ...) vs the roofline, for prefill "
            "and decode",
            run_profile);

}  // namespace hpl::cli
