/*
 * test_oom.c — out of memory is a status, never a crash (issue 13). In child processes with a
 * shrinking address-space limit (RLIMIT_AS, soft limit only), loading, a long prefill and a big
 * batched prefill, a long recorded prefill and recorded sampling either succeed or return
 * GLM5_ERR_OUT_OF_MEMORY with a message; a failed call
 * leaves its sessions as they were; and once the limit is lifted again the same process goes on
 * using the library. The limits are scanned, not fixed, so the test does not depend on how much
 * the runtime and OpenBLAS map on this machine.
 *
 *   test_oom MODEL_DIR
 */
#define _DEFAULT_SOURCE /* fork, waitpid, setrlimit under -std=c11 */
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

#define PREFILL 3000
#define BATCH 64

static int32_t ids[PREFILL];

static void set_limit(rlim_t bytes) {
    struct rlimit r;
    CHECK(getrlimit(RLIMIT_AS, &r) == 0);
    r.rlim_cur = bytes;
    CHECK(setrlimit(RLIMIT_AS, &r) == 0);
}

static int ok_or_oom(glm5_status st) {
    return st == GLM5_OK || (st == GLM5_ERR_OUT_OF_MEMORY && glm5_last_error()[0] != 0);
}

/* The child: returns 0 when every call behaved. Exits 3 if the model could not be loaded. */
static int child(const char *dir, long mib) {
    set_limit((rlim_t)mib << 20);
    glm5_model *m = NULL;
    glm5_status st = glm5_model_load(dir, NULL, &m);
    CHECK(ok_or_oom(st));
    if (st != GLM5_OK) {
        set_limit(RLIM_INFINITY);
        CHECK(glm5_model_load(dir, NULL, &m) == GLM5_OK); /* goes on after a refused load */
        glm5_model_free(m);
        _exit(3);
    }
    glm5_session *s = NULL, *bs[BATCH];
    CHECK(ok_or_oom(st = glm5_session_new(m, NULL, &s)));
    if (st == GLM5_OK) {
        CHECK(ok_or_oom(st = glm5_session_append(s, ids, PREFILL, GLM5_LOGITS_LAST, NULL)));
        size_t n = 1;
        CHECK(glm5_session_n_tokens(s, &n) == GLM5_OK && n == (st == GLM5_OK ? PREFILL : 0));
    }
    /* A long recording: a recorded prefill, then recorded sampling; a refused call leaves the
       session and its record as they were. */
    glm5_session *rs = NULL;
    glm5_session_params rp;
    glm5_session_params_init(&rp);
    rp.record = 1;
    rp.record_max_bytes = UINT64_MAX / 4; /* the largest accepted: only memory bounds it */
    glm5_status rst = glm5_session_new(m, &rp, &rs);
    CHECK(ok_or_oom(rst));
    if (rst == GLM5_OK) {
        CHECK(ok_or_oom(rst = glm5_session_append(rs, ids, PREFILL, GLM5_LOGITS_LAST, NULL)));
        glm5_record_info ri;
        glm5_record_info_init(&ri);
        CHECK(glm5_session_get_record_info(rs, &ri) == GLM5_OK);
        CHECK(ri.recording == 1 && ri.n_tokens == (rst == GLM5_OK ? PREFILL : 0));
        if (rst == GLM5_OK) {
            glm5_sampling_params sp;
            glm5_sampling_params_init(&sp);
            sp.max_new_tokens = 64;
            sp.ignore_eos = 1;
            int32_t toks_out[64];
            float lp[64];
            glm5_sample_output out;
            glm5_sample_output_init(&out);
            out.tokens = toks_out;
            out.logprobs = lp;
            out.capacity = 64;
            CHECK(ok_or_oom(rst = glm5_session_sample(rs, &sp, &out)));
            size_t n = 0;
            CHECK(glm5_session_n_tokens(rs, &n) == GLM5_OK && n == PREFILL + (rst == GLM5_OK ? out.n_tokens : 0));
            CHECK(glm5_session_get_record_info(rs, &ri) == GLM5_OK && ri.n_tokens == n);
        }
    }
    int nb = 0;
    const int32_t *toks[BATCH];
    size_t lens[BATCH];
    while (nb < BATCH && glm5_session_new(m, NULL, &bs[nb]) == GLM5_OK) {
        toks[nb] = ids;
        lens[nb] = PREFILL / 4;
        nb++;
    }
    st = nb > 0 ? glm5_append_batch(bs, (size_t)nb, toks, lens, GLM5_LOGITS_NONE, NULL) : GLM5_ERR_OUT_OF_MEMORY;
    CHECK(ok_or_oom(st));
    for (int i = 0; i < nb; i++) {
        size_t n = 1;
        CHECK(glm5_session_n_tokens(bs[i], &n) == GLM5_OK && n == (st == GLM5_OK ? PREFILL / 4 : 0));
    }
    /* Lift the limit: the same sessions and model work. */
    set_limit(RLIM_INFINITY);
    if (st != GLM5_OK && nb > 0) CHECK(glm5_append_batch(bs, (size_t)nb, toks, lens, GLM5_LOGITS_NONE, NULL) == GLM5_OK);
    if (rs) {
        int32_t one = 5;
        CHECK(glm5_session_append(rs, &one, 1, GLM5_LOGITS_NONE, NULL) == GLM5_OK);
        glm5_session_free(rs);
    }
    if (s) {
        int32_t one = 5;
        CHECK(glm5_session_append(s, &one, 1, GLM5_LOGITS_NONE, NULL) == GLM5_OK);
        glm5_session_free(s);
    }
    for (int i = 0; i < nb; i++) glm5_session_free(bs[i]);
    glm5_model_free(m);
    printf("  %4ld MiB: loaded, batch of %d %s\n", mib, nb, st == GLM5_OK ? "ran" : "was out of memory (then ran)");
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "../../models/glm5-tiny";
    for (int i = 0; i < PREFILL; i++) ids[i] = (int32_t)((i * 31 + 7) % 4000);
    int refused = 0, loaded = 0;
    for (long mib = 64; mib <= 4096 && loaded < 3; mib += mib < 512 ? 32 : 256) {
        fflush(stdout);
        pid_t p = fork();
        CHECK(p >= 0);
        if (p == 0) _exit(child(dir, mib));
        int wst = 0;
        CHECK(waitpid(p, &wst, 0) == p);
        if (WIFSIGNALED(wst)) {
            fprintf(stderr, "test_oom: the child with %ld MiB crashed with signal %d\n", mib, WTERMSIG(wst));
            return 1;
        }
        CHECK(WIFEXITED(wst));
        if (WEXITSTATUS(wst) == 3) {
            refused++;
            continue;
        }
        CHECK(WEXITSTATUS(wst) == 0);
        loaded++;
    }
    CHECK(loaded > 0);
    printf("test_oom: %d limits refused the load with a status, %d ran; no crash\n", refused, loaded);
    return 0;
}
