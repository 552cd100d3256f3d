// Which SIMD bodies this build compiled in. The choice is made at compile time by target;
// the scalar reference (namespace ref) is always built and is the specification.
#pragma once

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#define HPL_HAVE_AVX2 1
#else
#define HPL_HAVE_AVX2 0
#endif

#if defined(__ARM_NEON) && defined(__aarch64__)
#define HPL_HAVE_NEON 1
#else
#define HPL_HAVE_NEON 0
#endif

#if HPL_HAVE_NEON && defined(__ARM_FEATURE_DOTPROD)
#define HPL_HAVE_DOTPROD 1
#else
#define HPL_HAVE_DOTPROD 0
#endif

#if HPL_HAVE_NEON && defined(__ARM_FEATURE_MATMUL_INT8)
#define HPL_HAVE_I8MM 1
#else
#define HPL_HAVE_I8MM 0
#endif

namespace hpl {
// Name of the best ISA compiled in: "avx2", "neon" or "scalar".
inline const char* isa_name() {
#if HPL_HAVE_AVX2
  return "avx2";
#elif HPL_HAVE_NEON
  return "neon";
#else
  return "scalar";
#endif
}
}  // namespace hpl
