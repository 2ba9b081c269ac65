/* Checks CGLM5Kernels' vector expf (exp.c: glm5k_exp) against libm's expf on every one of the
 * 2^32 float bit patterns (NaNs compare as NaN). About 25 s on one core.
 *
 *   K=Sources/CGLM5Kernels
 *   cc -O2 -march=x86-64-v3 -ffp-contract=off -I$K/include -I$K tools/bench/expf_exhaustive.c $K/exp.c -lm -o /tmp/expf_exhaustive
 *   /tmp/expf_exhaustive          # prints the count that differ; exit status 1 if any
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "glm5_kernels.h"

enum { B = 1 << 16 };

int main(void) {
  static float x[B], y[B];
  uint64_t u = 0, n = 0, bad = 0;
  while (u <= 0xffffffffull) {
    int k = 0;
    for (; k < B && u <= 0xffffffffull; k++, u++) {
      const uint32_t v = (uint32_t)u;
      memcpy(&x[k], &v, 4);
    }
    glm5k_exp(x, y, k);
    for (int i = 0; i < k; i++, n++) {
      const float a = expf(x[i]);
      if (memcmp(&a, &y[i], 4) != 0 && !(isnan(a) && isnan(y[i]))) {
        if (bad < 5) printf("expf(%a): libm %a, glm5k_exp %a\n", x[i], a, y[i]);
        bad++;
      }
    }
  }
  printf("%llu floats: %llu differ from libm's expf\n", (unsigned long long)n, (unsigned long long)bad);
  return bad != 0;
}
