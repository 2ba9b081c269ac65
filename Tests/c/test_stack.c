/*
 * test_stack.c — the library on a host thread with a small stack: a pthread of 128 KiB loads a
 * model, samples (with speculation when the model has an MTP layer), tokenizes nothing, frees
 * everything. Static TLS is carved out of every thread's stack, so the library must not reserve
 * much of it (the Makefile checks libglm5.so's PT_TLS); OpenBLAS's own 60 KiB of static TLS is
 * why a 64 KiB pthread cannot be created at all in a process that links it.
 *
 *   test_stack MODEL_DIR [STACK_KIB]
 */
#include <pthread.h>

#include "check.h"

static const char *dir;
static int done = 0;

static void *work(void *arg) {
    (void)arg;
    glm5_model *m = NULL;
    CHECK(glm5_model_load(dir, NULL, &m) == GLM5_OK);
    glm5_model_info info;
    glm5_model_info_init(&info);
    CHECK(glm5_model_get_info(m, &info) == GLM5_OK);
    glm5_session *s = NULL;
    CHECK(glm5_session_new(m, NULL, &s) == GLM5_OK);
    int32_t ids[40];
    for (int i = 0; i < 40; i++) ids[i] = (int32_t)((i * 37 + 5) % (int)info.vocab_size);
    CHECK(glm5_session_append(s, ids, 40, GLM5_LOGITS_LAST, NULL) == GLM5_OK);
    glm5_sampling_params p;
    glm5_sampling_params_init(&p);
    p.max_new_tokens = 16;
    p.speculative = info.has_mtp ? 2 : 0;
    int32_t toks[16];
    glm5_sample_output o;
    glm5_sample_output_init(&o);
    o.capacity = 16;
    o.tokens = toks;
    CHECK(glm5_session_sample(s, &p, &o) == GLM5_OK && o.n_tokens > 0);
    glm5_session_free(s);
    glm5_model_free(m);
    done = 1;
    return NULL;
}

int main(int argc, char **argv) {
    dir = argc > 1 ? argv[1] : "../../models/glm5-tiny";
    size_t kib = argc > 2 ? (size_t)atoi(argv[2]) : 128;
    pthread_attr_t a;
    CHECK(pthread_attr_init(&a) == 0);
    CHECK(pthread_attr_setstacksize(&a, kib * 1024) == 0);
    pthread_t t;
    CHECK(pthread_create(&t, &a, work, NULL) == 0);
    CHECK(pthread_join(t, NULL) == 0);
    CHECK(done);
    printf("test_stack: a %zu KiB thread loaded, sampled and freed (%d checks)\n", kib, n_checks);
    return 0;
}
