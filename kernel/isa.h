// Which SIMD bodies this binary holds and which one runs. Every body for the target
// architecture is compiled into the one library (x86-64: avx2, avxvnni, avx512vnni; ARM64:
// neon, dotprod, i8mm; everywhere: ref, the scalar specification); the best one the CPU and
// OS support is chosen once, at first use, unless HPL_ISA names one.
#pragma once

#include <string>
#include <vector>

#if defined(__x86_64__) || defined(_M_X64)
#define HPL_X86_64 1
#else
#define HPL_X86_64 0
#endif

#if defined(__aarch64__) && defined(__ARM_NEON)
#define HPL_ARM64 1
#else
#define HPL_ARM64 0
#endif

// The x86-64 baseline is AVX2 + FMA + F16C (the whole build's flags); the ARM64 baseline is
// ARMv8.0 NEON (Cortex-A53).
#define HPL_HAVE_AVX2 HPL_X86_64
#define HPL_HAVE_NEON HPL_ARM64

// A body above the baseline is compiled with the baseline flags and turns its extra target
// on only for its own functions (these pragmas, after every #include). Compiling the whole
// file with -mavx512f / -march=armv8.2-a would also compile the inline and template code it
// pulls from headers (std::vector, our inline helpers) with those instructions; the linker
// keeps one copy of each, possibly that one, and an older CPU would then fault outside the body.
#define HPL_PRAGMA(x) _Pragma(#x)
#if defined(__clang__)
#define HPL_TARGET_BEGIN(t) \
  HPL_PRAGMA(clang attribute push(__attribute__((target(t))), apply_to = function))
#define HPL_TARGET_END() HPL_PRAGMA(clang attribute pop)
#else
#define HPL_TARGET_BEGIN(t) HPL_PRAGMA(GCC push_options) HPL_PRAGMA(GCC target(t))
#define HPL_TARGET_END() HPL_PRAGMA(GCC pop_options)
#endif

namespace hpl::kernel {

// One body per value; kRef runs everywhere.
enum class Isa { kRef, kNeon, kDotprod, kI8mm, kAvx2, kAvxVnni, kAvx512Vnni };

// "ref", "neon", "dotprod", "i8mm", "avx2", "avxvnni", "avx512vnni".
const char* isa_name(Isa isa);
// Parses a name above; false when it is none of them.
bool isa_from_name(const std::string& name, Isa* isa);
// Whether this binary holds the body (it is for this architecture).
bool isa_built(Isa isa);
// Whether the body is built and this CPU and OS can run it.
bool isa_runnable(Isa isa);
// The bodies this machine can run, ref first, then in order of preference (best last).
std::vector<Isa> runnable_isas();
// The body HPL_ISA=value selects: value null or empty means the best runnable. Throws
// std::runtime_error naming the value when it is unknown, for another architecture, or one
// this CPU cannot run.
Isa isa_from_env(const char* value);
// The body every dispatched call uses: HPL_ISA when set, else the best runnable. Chosen once;
// an HPL_ISA the binary lacks or the CPU cannot run throws std::runtime_error saying which.
Isa active_isa();
// The body the body `isa` falls back to for ops it does not implement itself (avx512vnni ->
// avx2, i8mm -> dotprod -> neon, neon / avx2 -> ref).
Isa isa_parent(Isa isa);

// CPU features found at run time, for `hpl info`: e.g. "avx2 fma f16c avxvnni avx512vnni".
std::string cpu_feature_names();

}  // namespace hpl::kernel

namespace hpl {
// Name of the body in use (kernel::active_isa()).
const char* isa_name();
}  // namespace hpl
