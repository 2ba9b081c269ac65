/* A host that changed its floating-point environment (flush-to-zero, denormals-are-zero, round
 * upward: common in audio and ML code) gets bitwise the same logprobs as one that did not. The
 * FP8 kernels use subnormal lanes (DAZ would zero small FP8 weights) and rounding or flushing
 * would change any kernel's bits, so the library restores the standard environment for its own
 * work. The host's environment is left as it set it. */
#define _POSIX_C_SOURCE 200809L
#include <fenv.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <xmmintrin.h>

#include "glm5.h"

static int score(const char *dir, float *lp, int n) {
    glm5_model *m = NULL;
    if (glm5_model_load(dir, NULL, &m) != GLM5_OK) { fprintf(stderr, "%s: %s\n", dir, glm5_last_error()); return 1; }
    int32_t ids[16];
    for (int i = 0; i < n; i++) ids[i] = (int32_t)((i * 37 + 11) % 100);
    glm5_status s = glm5_model_score(m, ids, (size_t)n, lp);
    glm5_model_free(m);
    if (s != GLM5_OK) { fprintf(stderr, "score: %s\n", glm5_last_error()); return 1; }
    return 0;
}

int main(int argc, char **argv) {
    int failures = 0;
    for (int a = 1; a < argc; a++) {
        float plain[16], hostile[16];
        if (score(argv[a], plain, 16)) return 1;
        unsigned before = _mm_getcsr();
        _mm_setcsr(before | 0x8040);  /* FTZ | DAZ */
        fesetround(FE_UPWARD);
        unsigned set = _mm_getcsr();
        if (score(argv[a], hostile, 16)) return 1;
        unsigned after = _mm_getcsr();
        _mm_setcsr(before);
        fesetround(FE_TONEAREST);
        if (after != set) { fprintf(stderr, "%s: the host's MXCSR was not restored (%#x, was %#x)\n", argv[a], after, set); failures++; }
        if (memcmp(plain + 1, hostile + 1, 15 * sizeof(float)) != 0 || !isnan(hostile[0])) {
            fprintf(stderr, "%s: logprobs differ under FTZ/DAZ/round-upward\n", argv[a]);
            failures++;
        }
    }
    if (failures) return 1;
    printf("test_fenv: %d models give identical logprobs under FTZ, DAZ and round-upward\n", argc - 1);
    return 0;
}
