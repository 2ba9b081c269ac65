/*
 * test_threads.c — calls that race on purpose (include/glm5.h: sessions keep their model's
 * weights alive; glm5_session_cancel may be called from any thread): the model is freed while a
 * session samples on another thread, and a long sampling call is cancelled from another thread.
 * Both calls must end with GLM5_OK and the documented results.
 *
 *   test_threads MODEL_DIR
 */
#include <pthread.h>
#include <time.h>

#include "check.h"

#define LONG_RUN 3000

struct job {
    glm5_session *s;
    glm5_sampling_params p;
    glm5_sample_output out;
    int32_t tokens[LONG_RUN];
    glm5_status status;
    volatile int started;
};

static void *sample(void *arg) {
    struct job *j = arg;
    j->started = 1;
    j->status = glm5_session_sample(j->s, &j->p, &j->out);
    return NULL;
}

static void job_init(struct job *j, glm5_model *m, uint32_t n) {
    memset(j, 0, sizeof *j);
    CHECK(glm5_session_new(m, NULL, &j->s) == GLM5_OK);
    int32_t ids[8] = {5, 6, 7, 8, 9, 10, 11, 12};
    CHECK(glm5_session_append(j->s, ids, 8, GLM5_LOGITS_NONE, NULL) == GLM5_OK);
    glm5_sampling_params_init(&j->p);
    j->p.max_new_tokens = n;
    j->p.ignore_eos = 1;
    j->p.seed = 3;
    glm5_sample_output_init(&j->out);
    j->out.capacity = LONG_RUN;
    j->out.tokens = j->tokens;
}

static void pause_ms(long ms) {
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "../../models/glm5-tiny";
    static struct job a, b, ref;

    /* The reference: 200 tokens with nothing racing. */
    glm5_model *m = NULL;
    CHECK(glm5_model_load(dir, NULL, &m) == GLM5_OK);
    job_init(&ref, m, 200);
    CHECK(glm5_session_sample(ref.s, &ref.p, &ref.out) == GLM5_OK && ref.out.n_tokens == 200);

    /* 1. Free the model while a session samples on another thread. */
    job_init(&a, m, 200);
    pthread_t ta;
    CHECK(pthread_create(&ta, NULL, sample, &a) == 0);
    while (!a.started) pause_ms(1);
    glm5_model_free(m);
    CHECK(pthread_join(ta, NULL) == 0);
    CHECK(a.status == GLM5_OK && a.out.n_tokens == 200);
    CHECK(memcmp(a.tokens, ref.tokens, sizeof(int32_t) * 200) == 0);
    size_t n = 0;
    CHECK(glm5_session_n_tokens(a.s, &n) == GLM5_OK && n == 208); /* the session still works */
    glm5_session_free(a.s);
    glm5_session_free(ref.s);

    /* 2. Cancel a long call from another thread: it returns early, finish reason cancelled, and
     * every token it reported is in the session. */
    CHECK(glm5_model_load(dir, NULL, &m) == GLM5_OK);
    job_init(&b, m, LONG_RUN);
    pthread_t tb;
    CHECK(pthread_create(&tb, NULL, sample, &b) == 0);
    while (!b.started) pause_ms(1);
    pause_ms(20);
    CHECK(glm5_session_cancel(b.s) == GLM5_OK);
    CHECK(pthread_join(tb, NULL) == 0);
    CHECK(b.status == GLM5_OK && b.out.finish_reason == GLM5_FINISH_CANCELLED);
    CHECK(b.out.n_tokens < LONG_RUN);
    CHECK(glm5_session_n_tokens(b.s, &n) == GLM5_OK && n == 8 + b.out.n_tokens);
    glm5_session_free(b.s);
    glm5_model_free(m);
    printf("test_threads: %d checks passed (the cancelled call made %zu tokens)\n", n_checks, b.out.n_tokens);
    return 0;
}
