// CPU feature detection and the choice of body. x86-64: cpuid for what the CPU implements,
// XGETBV for which register state the OS saves on a context switch (a CPU may report AVX-512
// or AMX that the OS has not enabled, and then the instructions fault). ARM64: the kernel's
// HWCAP bits on Linux / Android, sysctl on Apple.
#include "kernel/isa.h"

#include <cstdlib>
#include <stdexcept>

#if HPL_X86_64
#include <cpuid.h>
#endif
#if HPL_ARM64 && defined(__linux__)
#include <sys/auxv.h>
#endif
#if HPL_ARM64 && defined(__APPLE__)
#include <sys/sysctl.h>
#endif

namespace hpl::kernel {
namespace {

struct Features {
  bool avx2 = false;  // with FMA and F16C, and the OS saving YMM state
  bool avxvnni = false;
  bool avx512vnni = false;  // F, BW, VL, VNNI, and the OS saving ZMM / opmask state
  bool neon = false;
  bool dotprod = false;
  bool i8mm = false;
};

#if HPL_X86_64
uint64_t xgetbv0() {
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return static_cast<uint64_t>(hi) << 32 | lo;
}

Features detect() {
  Features f;
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool fma = c & (1u << 12), osxsave = c & (1u << 27), avx = c & (1u << 28),
             f16c = c & (1u << 29);
  if (!osxsave || !avx) return f;
  const uint64_t xcr0 = xgetbv0();
  const bool os_ymm = (xcr0 & 0x6) == 0x6;    // SSE and AVX state
  const bool os_zmm = (xcr0 & 0xe6) == 0xe6;  // + opmask, ZMM_Hi256, Hi16_ZMM
  if (!os_ymm || __get_cpuid_max(0, nullptr) < 7) return f;
  __cpuid_count(7, 0, a, b, c, d);
  const bool avx2 = b & (1u << 5), avx512f = b & (1u << 16), avx512bw = b & (1u << 30),
             avx512vl = b & (1u << 31), avx512vnni = c & (1u << 11);
  __cpuid_count(7, 1, a, b, c, d);
  const bool avxvnni = a & (1u << 4);
  f.avx2 = avx2 && fma && f16c;
  f.avxvnni = f.avx2 && avxvnni;
  f.avx512vnni = f.avx2 && os_zmm && avx512f && avx512bw && avx512vl && avx512vnni;
  return f;
}
#elif HPL_ARM64
Features detect() {
  Features f;
  f.neon = true;  // AdvSIMD is mandatory in ARMv8-A
#if defined(__linux__)
  const unsigned long hw = getauxval(AT_HWCAP), hw2 = getauxval(AT_HWCAP2);
  f.dotprod = hw & (1ul << 20);               // HWCAP_ASIMDDP
  f.i8mm = f.dotprod && (hw2 & (1ul << 13));  // HWCAP2_I8MM
#elif defined(__APPLE__)
  auto has = [](const char* name) {
    int v = 0;
    size_t len = sizeof(v);
    return sysctlbyname(name, &v, &len, nullptr, 0) == 0 && v != 0;
  };
  f.dotprod = has("hw.optional.arm.FEAT_DotProd");
  f.i8mm = f.dotprod && has("hw.optional.arm.FEAT_I8MM");
#endif
  return f;
}
#else
Features detect() {
  return {};
}
#endif

const Features& features() {
  static const Features f = detect();
  return f;
}

constexpr Isa kAll[] = {Isa::kRef,  Isa::kNeon,    Isa::kDotprod,   Isa::kI8mm,
                        Isa::kAvx2, Isa::kAvxVnni, Isa::kAvx512Vnni};

}  // namespace

Isa isa_from_env(const char* env) {
  if (env == nullptr || *env == '\0') return runnable_isas().back();
  Isa isa;
  if (!isa_from_name(env, &isa)) {
    throw std::runtime_error(std::string("HPL_ISA=") + env +
                             ": unknown (ref, neon, dotprod, i8mm, avx2, avxvnni, avx512vnni)");
  }
  if (!isa_built(isa)) {
    throw std::runtime_error(std::string("HPL_ISA=") + env +
                             ": this binary has no such body (it is for another architecture)");
  }
  if (!isa_runnable(isa)) {
    throw std::runtime_error(std::string("HPL_ISA=") + env +
                             ": this CPU lacks it (found: " + cpu_feature_names() + ")");
  }
  return isa;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kRef:
      return "ref";
    case Isa::kNeon:
      return "neon";
    case Isa::kDotprod:
      return "dotprod";
    case Isa::kI8mm:
      return "i8mm";
    case Isa::kAvx2:
      return "avx2";
    case Isa::kAvxVnni:
      return "avxvnni";
    case Isa::kAvx512Vnni:
      return "avx512vnni";
  }
  return "?";
}

bool isa_from_name(const std::string& name, Isa* isa) {
  for (Isa i : kAll) {
    if (name == isa_name(i)) {
      *isa = i;
      return true;
    }
  }
  return false;
}

bool isa_built(Isa isa) {
  switch (isa) {
    case Isa::kRef:
      return true;
    case Isa::kNeon:
    case Isa::kDotprod:
    case Isa::kI8mm:
      return HPL_ARM64;
    case Isa::kAvx2:
    case Isa::kAvxVnni:
    case Isa::kAvx512Vnni:
      return HPL_X86_64;
  }
  return false;
}

bool isa_runnable(Isa isa) {
  if (!isa_built(isa)) return false;
  const Features& f = features();
  switch (isa) {
    case Isa::kRef:
      return true;
    case Isa::kNeon:
      return f.neon;
    case Isa::kDotprod:
      return f.dotprod;
    case Isa::kI8mm:
      return f.i8mm;
    case Isa::kAvx2:
      return f.avx2;
    case Isa::kAvxVnni:
      return f.avxvnni;
    case Isa::kAvx512Vnni:
      return f.avx512vnni;
  }
  return false;
}

std::vector<Isa> runnable_isas() {
  std::vector<Isa> v;
  for (Isa i : kAll)
    if (isa_runnable(i)) v.push_back(i);
  return v;
}

Isa isa_parent(Isa isa) {
  switch (isa) {
    case Isa::kI8mm:
      return Isa::kDotprod;
    case Isa::kDotprod:
      return Isa::kNeon;
    case Isa::kAvxVnni:
    case Isa::kAvx512Vnni:
      return Isa::kAvx2;
    default:
      return Isa::kRef;
  }
}

Isa active_isa() {
  static const Isa isa = isa_from_env(std::getenv("HPL_ISA"));
  return isa;
}

std::string cpu_feature_names() {
  const Features& f = features();
  std::string s;
  auto add = [&](bool on, const char* name) {
    if (!on) return;
    if (!s.empty()) s += ' ';
    s += name;
  };
  add(f.avx2, "avx2+fma+f16c");
  add(f.avxvnni, "avxvnni");
  add(f.avx512vnni, "avx512vnni");
  add(f.neon, "neon");
  add(f.dotprod, "dotprod");
  add(f.i8mm, "i8mm");
  return s.empty() ? "none" : s;
}

}  // namespace hpl::kernel

namespace hpl {
const char* isa_name() {
  return kernel::isa_name(kernel::active_isa());
}
}  // namespace hpl
