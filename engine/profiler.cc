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
