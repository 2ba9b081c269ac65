// Run-time choice of instruction set for the kernels: the one place that reads the CPU's features.

#include <stdlib.h>
#include <string.h>

#include "glm5_kernels.h"

/// AVX-512 as the kernels use it: F, plus VL (128/256-bit forms on registers 16-31), BW and DQ
/// (every AVX-512 CPU since Skylake-SP has all four).
static int32_t has_avx512(void) {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") &&
                 __builtin_cpu_supports("avx512dq")
             ? 1
             : 0;
}

static int32_t default_isa(void) {
  const char *e = getenv("GLM5_ISA");
  if (e && strcmp(e, "avx2") == 0) return GLM5K_ISA_AVX2;
  return has_avx512() ? GLM5K_ISA_AVX512 : GLM5K_ISA_AVX2;
}

// -1: not yet chosen. Relaxed atomics: every thread computes the same value.
static int32_t chosen = -1;

int32_t glm5k_isa(void) {
  int32_t v = __atomic_load_n(&chosen, __ATOMIC_RELAXED);
  if (v < 0) {
    v = default_isa();
    __atomic_store_n(&chosen, v, __ATOMIC_RELAXED);
  }
  return v;
}

int32_t glm5k_set_isa(int32_t isa) {
  int32_t v = isa < 0 ? default_isa() : (isa == GLM5K_ISA_AVX512 && has_avx512() ? GLM5K_ISA_AVX512 : GLM5K_ISA_AVX2);
  __atomic_store_n(&chosen, v, __ATOMIC_RELAXED);
  return v;
}
