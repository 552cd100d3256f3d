#include "engine/profiler.h"

namespace hpl {

const char* prof_op_name(ProfOp op) {
  switch (op) {
    case ProfOp::kAttnQ:
      return "attn_q";
    case ProfOp::kAttnK:
      return "attn_k";
    case ProfOp::kAttnV:
      return "attn_v";
    case ProfOp::kAttnOutput:
      return "attn_output";
    case ProfOp::kFfnGate:
      return "ffn_gate";
    case ProfOp::kFfnUp:
      return "ffn_up";
    case ProfOp::kFfnDown:
      return "ffn_down";
    case ProfOp::kOutput:
      return "output";
    case ProfOp::kAttention:
      return "attention";
    case ProfOp::kNorm:
      return "norm";
    case ProfOp::kRope:
      return "rope";
    case ProfOp::kActivation:
      return "activation";
    case ProfOp::kQuantizeAct:
      return "quantize_act";
    case ProfOp::kKvStore:
      return "kv_store";
    case ProfOp::kAdd:
      return "add";
    case ProfOp::kEmbedding:
      return "embedding";
    case ProfOp::kSampling:
      return "sampling";
    case ProfOp::kOther:
      return "other";
    case ProfOp::kCount:
      break;
  }
  return "?";
}

bool prof_op_is_matmul(ProfOp op) {
  return static_cast<int>(op) <= static_cast<int>(ProfOp::kOutput);
}

int prof_thread_id() {
  static std::atomic<int> next{0};
  thread_local const int id = next.fetch_add(1, std::memory_order_relaxed);
  return id;
}

int64_t prof_now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             Profiler::clock::now().time_since_epoch())
      .count();
}

void Profiler::add(ProfOp op, double seconds) {
  s_[static_cast<size_t>(op)] += seconds;
  if (layer_ < 0) return;
  if (by_layer_.size() <= static_cast<size_t>(layer_)) by_layer_.resize(layer_ + 1, {});
  by_layer_[static_cast<size_t>(layer_)][static_cast<size_t>(op)] += seconds;
}

void Profiler::clear() {
  s_.fill(0.0);
  by_layer_.clear();
  slices_.clear();
  layer_ = -1;
}

void Profiler::record(const ProfSlice& s) {
  std::lock_guard<std::mutex> lock(mu_);
  slices_.push_back(s);
}

ProfLayer::~ProfLayer() {
  if (!p_) return;
  if (p_->tracing())
    p_->record({ProfOp::kOther, il_, true, prof_thread_id(), t0_, prof_now_ns(), {}});
  p_->set_layer(-1);
}

ProfScope::~ProfScope() {
  if (!p_) return;
  const auto t1 = Profiler::clock::now();
  p_->add(op_, std::chrono::duration<double>(t1 - t0_).count());
  if (p_->tracing()) {
    const int64_t ns1 = prof_now_ns();
    const int64_t ns0 =
        ns1 - std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0_).count();
    p_->record({op_, p_->layer(), false, prof_thread_id(), ns0, ns1, {}});
  }
}

double Profiler::total() const {
  double t = 0.0;
  for (double s : s_) t += s;
  return t;
}

ProfSection::~ProfSection() {
  if (!p_) return;
  const double wall = std::chrono::duration<double>(Profiler::clock::now() - t0_).count();
  int64_t sum = 0;
  for (const auto& n : ns_) sum += n.load(std::memory_order_relaxed);
  if (sum <= 0) {
    p_->add(ProfOp::kOther, wall);
    return;
  }
  for (int i = 0; i < kProfOpCount; ++i) {
    const int64_t n = ns_[static_cast<size_t>(i)].load(std::memory_order_relaxed);
    if (n > 0) p_->add(static_cast<ProfOp>(i), wall * static_cast<double>(n) / sum);
  }
}

}  // namespace hpl
