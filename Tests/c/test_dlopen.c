/* libglm5.so as a plugin: loaded with dlopen, used (which starts its worker threads), unloaded
 * with dlclose, and loaded again, three times. The library is linked -z nodelete so that its
 * threads never outlive its code; a host must be able to do this without crashing. */
#define _POSIX_C_SOURCE 200809L
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "glm5.h"

typedef glm5_status (*load_fn)(const char *, const glm5_model_params *, glm5_model **);
typedef glm5_status (*score_fn)(const glm5_model *, const int32_t *, size_t, float *);
typedef void (*free_fn)(glm5_model *);
typedef uint32_t (*abi_fn)(void);

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s <libglm5.so> <model-folder>\n", argv[0]);
        return 2;
    }
    float first[8];
    for (int round = 0; round < 3; round++) {
        void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
        if (!lib) { fprintf(stderr, "dlopen: %s\n", dlerror()); return 1; }
        abi_fn abi = (abi_fn)(uintptr_t)dlsym(lib, "glm5_abi_version");
        load_fn load = (load_fn)(uintptr_t)dlsym(lib, "glm5_model_load");
        score_fn score = (score_fn)(uintptr_t)dlsym(lib, "glm5_model_score");
        free_fn mfree = (free_fn)(uintptr_t)dlsym(lib, "glm5_model_free");
        if (!abi || !load || !score || !mfree) { fprintf(stderr, "dlsym failed\n"); return 1; }
        if (abi() != GLM5_ABI_VERSION) { fprintf(stderr, "ABI %u, header %u\n", abi(), GLM5_ABI_VERSION); return 1; }
        glm5_model_params mp;
        glm5_model_params_init(&mp);
        mp.n_threads = 2;
        glm5_model *m = NULL;
        if (load(argv[2], &mp, &m) != GLM5_OK) { fprintf(stderr, "load failed\n"); return 1; }
        int32_t ids[8] = {1, 2, 3, 4, 5, 6, 7, 8};
        float lp[8];
        if (score(m, ids, 8, lp) != GLM5_OK) { fprintf(stderr, "score failed\n"); return 1; }
        mfree(m);
        for (int i = 1; i < 8; i++) {
            if (round == 0) first[i] = lp[i];
            else if (lp[i] != first[i]) { fprintf(stderr, "round %d differs at %d\n", round, i); return 1; }
        }
        if (!isnan(lp[0])) { fprintf(stderr, "first logprob is not NaN\n"); return 1; }
        if (dlclose(lib) != 0) { fprintf(stderr, "dlclose: %s\n", dlerror()); return 1; }
    }
    printf("test_dlopen: 3 rounds of dlopen, score, dlclose: ok\n");
    return 0;
}
