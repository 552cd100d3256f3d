#include "tools/profile_run.h"

#include <algorithm>
#include <chrono>

#include "engine/sampler.h"

namespace hpl {

namespace {

using clk = std::chrono::steady_clock;

double since(clk::time_point t0) {
  return std::chrono::duration<double>(clk::now() - t0).count();
}

// One profiled run of f (which evaluates the phase); fills the repetition's entries.
template <class F>
void timed(Forward& fwd, PhaseRun& ph, bool trace, F&& f) {
  Profiler p;
  p.set_tracing(trace);
  fwd.set_profiler(&p);
  const int64_t t0 = prof_now_ns();
  const auto c0 = clk::now();
  f(p);
  const double wall = since(c0);
  const int64_t t1 = prof_now_ns();
  fwd.set_profiler(nullptr);
  const double hooked = p.total();
  p.add(ProfOp::kOther, std::max(0.0, wall - hooked));  // timer granularity: never negative
  std::array<double, kProfOpCount> ops{};
  for (int i = 0; i < kProfOpCount; ++i) ops[i] = p.seconds(static_cast<ProfOp>(i));
  ph.wall_s.push_back(wall);
  ph.hooked_s.push_back(hooked);
  ph.op_s.push_back(ops);
  ph.layer_s.push_back(p.layers());
  if (trace) {
    ph.slices = p.slices();
    ph.t0_ns = t0;
    ph.t1_ns = t1;
    ph.thread = prof_thread_id();
  }
}

}  // namespace

Spread spread_of(std::vector<double> xs) {
  if (xs.empty()) return {};
  std::sort(xs.begin(), xs.end());
  const size_t n = xs.size();
  const double med = n % 2 ? xs[n / 2] : 0.5 * (xs[n / 2 - 1] + xs[n / 2]);
  return {med, xs.front(), xs.back()};
}

double Roofline::attainable_ops(const OpCost& c) const {
  const double peak = c.int8 ? int8_ops_per_s : f32_ops_per_s;
  if (c.bytes <= 0) return peak;
  return std::min(peak, c.ops / c.bytes * read_bytes_per_s);
}

ProfileRun profile_forward(const Model& m, const ForwardOptions& fo, const ProfileOptions& po,
                           int32_t bos) {
  ProfileRun run;
  const auto c0 = clk::now();
  Forward fwd(m, fo);
  run.setup_s = since(c0);
  const int64_t n_vocab = fwd.n_vocab();
  int64_t max_depth = 0;
  for (int64_t d : po.ctx_depths) max_depth = std::max(max_depth, d);
  // A fixed pseudo-text: BOS, then ids spread over the vocabulary (timing does not depend on
  // which tokens they are).
  std::vector<int32_t> text(static_cast<size_t>(std::max(po.n_prompt, max_depth)));
  for (size_t i = 0; i < text.size(); ++i)
    text[i] = static_cast<int32_t>((static_cast<int64_t>(i) * 7919 + 13) % n_vocab);
  if (bos >= 0 && bos < n_vocab) text[0] = bos;
  std::vector<float> logits(static_cast<size_t>(n_vocab));
  SamplerParams sp;
  sp.seed = 1;

  // Cold: the first token right after setup (page faults on the weights, pool start, cold
  // caches). Then the rest of a generation, so decode is warm too; all discarded.
  {
    Sampler s(sp, n_vocab);
    const auto t0 = clk::now();
    fwd.eval(text.data(), po.n_prompt, logits.data());
    int32_t id = s.sample(logits.data());
    run.first_token_s = since(t0);
    for (int64_t i = 0; i < po.n_gen && fwd.n_past() < fwd.n_ctx(); ++i) {
      fwd.eval(&id, 1, logits.data());
      id = s.sample(logits.data());
    }
  }

  PhaseRun& pre = run.prefill;
  pre.name = "prefill";
  pre.n_tokens = po.n_prompt;
  add_eval_cost(m, po.n_prompt, 0, fo.n_ubatch, 1, pre.cost);
  for (int r = 0; r < po.reps; ++r) {
    fwd.reset();
    Sampler s(sp, n_vocab);
    timed(fwd, pre, po.trace && r == po.reps - 1, [&](Profiler& p) {
      fwd.eval(text.data(), po.n_prompt, logits.data());
      ProfScope ps(&p, ProfOp::kSampling);
      s.sample(logits.data());
    });
  }

  for (int64_t depth : po.ctx_depths) {
    PhaseRun ph;
    ph.name = "decode";
    ph.depth = depth;
    ph.n_tokens = po.n_gen;
    ph.per = static_cast<double>(po.n_gen);
    for (int64_t i = 0; i < po.n_gen; ++i) add_eval_cost(m, 1, depth + i, fo.n_ubatch, 1, ph.cost);
    fwd.reset();
    if (depth > 0) fwd.eval(text.data(), depth, nullptr);
    for (int r = 0; r < po.reps; ++r) {
      fwd.truncate(depth);
      Sampler s(sp, n_vocab);
      int32_t id = text[static_cast<size_t>(depth) % text.size()];
      timed(fwd, ph, po.trace && r == po.reps - 1, [&](Profiler& p) {
        for (int64_t i = 0; i < po.n_gen; ++i) {
          fwd.eval(&id, 1, logits.data());
          ProfScope ps(&p, ProfOp::kSampling);
          id = s.sample(logits.data());
          s.accept(id);
        }
      });
    }
    run.decode.push_back(std::move(ph));
  }
  return run;
}

}  // namespace hpl
