// The op table of every body in this binary, and the active one.
#include <stdexcept>
#include <string>

#include "kernel/ops.h"
#include "kernel/repack.h"

namespace hpl::kernel {
namespace {

// The table of a full body (namespace ns implements every op).
#define HPL_OPS_ENTRY(f) &ns::f,
#define HPL_FULL_OPS(isa_value, body)              \
  [] {                                             \
    namespace ns = body;                           \
    return Ops{isa_value, HPL_OPS(HPL_OPS_ENTRY)}; \
  }()

// A body that brings only the matmul ops: the rest come from its parent's table (isa_parent;
// i8mm's parent dotprod has neon's non-matmul ops too).
#define HPL_MATMUL_OPS(isa_value, body, parent)   \
  [] {                                            \
    Ops o = parent;                               \
    o.isa = isa_value;                            \
    o.quantize_act_row = &body::quantize_act_row; \
    o.matmul = &body::matmul;                     \
    o.weight_kernels = &body::weight_kernels;     \
    return o;                                     \
  }()

}  // namespace

const Ops& ops(Isa isa) {
  static const Ops kRef = HPL_FULL_OPS(Isa::kRef, ref);
#if HPL_X86_64
  static const Ops kAvx2 = HPL_FULL_OPS(Isa::kAvx2, avx2);
  static const Ops kAvxVnni = HPL_MATMUL_OPS(Isa::kAvxVnni, avxvnni, kAvx2);
  static const Ops kAvx512Vnni = HPL_MATMUL_OPS(Isa::kAvx512Vnni, avx512vnni, kAvx2);
#endif
#if HPL_ARM64
  static const Ops kNeon = HPL_FULL_OPS(Isa::kNeon, neon);
  static const Ops kDotprod = HPL_MATMUL_OPS(Isa::kDotprod, dotprod, kNeon);
  static const Ops kI8mm = HPL_MATMUL_OPS(Isa::kI8mm, i8mm, kNeon);
#endif
  switch (isa) {
    case Isa::kRef:
      return kRef;
#if HPL_X86_64
    case Isa::kAvx2:
      return kAvx2;
    case Isa::kAvxVnni:
      return kAvxVnni;
    case Isa::kAvx512Vnni:
      return kAvx512Vnni;
#endif
#if HPL_ARM64
    case Isa::kNeon:
      return kNeon;
    case Isa::kDotprod:
      return kDotprod;
    case Isa::kI8mm:
      return kI8mm;
#endif
    default:
      break;
  }
  throw std::invalid_argument(std::string("kernel::ops: this binary has no ") + isa_name(isa) +
                              " body");
}

const Ops& ops() {
  static const Ops& active = ops(active_isa());
  return active;
}

std::string matmul_path(DType wt) {
  const WeightKernels* k = ops().weight_kernels(wt);
  if (k == nullptr && unpacked_type(wt) != wt) {  // stored packed, no kernel: unpacked at load
    const std::string plain = matmul_path(unpacked_type(wt));
    if (plain.empty()) return "";
    return std::string("unpacked at load to ") + type_name(unpacked_type(wt)) + ": " + plain;
  }
  if (k == nullptr) return "";
  std::string s = std::string(isa_name(active_isa())) + " (" + type_name(k->act) +
                  " activations, gemm tile " + k->gemm_tile + ")";
  const WeightKernels* p = ops().weight_kernels(packed_type(wt));
  if (p != nullptr && p != k) {
    s += ", packed at load to " + std::string(type_name(p->type)) + ": gemv and gemm tile " +
         p->gemm_tile;
  }
  return s;
}

}  // namespace hpl::kernel
