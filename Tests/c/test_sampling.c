/*
 * test_sampling.c — checks the sampling, fork, cancel, batch and scaled-scoring functions of
 * libglm5.so against include/glm5.h (the "Sampling" block and the functions after
 * glm5_session_truncate).
 *
 *   usage: test_sampling [fixtures-dir]   (default ../Fixtures; uses its tiny-dsa subfolder, or
 *                                          the folder itself if it holds config.json)
 *
 * Plain C11 + POSIX (pthreads, C11 atomics, mkdtemp, symlink). A failed CHECK prints file:line,
 * the case being run and the last error, and the run goes on; a failed REQUIRE (a setup step
 * without which the rest means nothing) stops it. On success prints "test_sampling: N checks
 * passed"; otherwise "F of N checks FAILED" and exits 1.
 *
 * The fixture tiny-dsa has vocab 320, max_position_embeddings 256 and eos id 1.
 *
 * What it checks, section by section:
 *   1. defaults: glm5_sampling_params_init / glm5_sample_output_init, pinned enum values;
 *      glm5_model_eos_token_ids (two-call pattern, {1}; generation_config.json's list wins over
 *      config.json's, config.json's list when generation_config.json has none); NULL params
 *      means the defaults.
 *   2. temperature 0 = glm5_session_generate: tokens and raw logprobs bitwise, scaled == raw,
 *      processed == 0, top-1 alternative == the token (filters are ignored at temperature 0);
 *      nothing written past n_tokens.
 *   3. a sampled run's raw and scaled logprobs are bitwise glm5_model_score /
 *      glm5_model_score_scaled of prompt + tokens and glm5_session_append_scaled of them (in one
 *      call and in pieces); raw == scaled at temperature 1; top alternatives in rank order.
 *   4. fork: continues exactly as the original, at the start and midway; sampling 5 + 7 tokens
 *      equals sampling 12; fork is independent, has the original's max_tokens, no kept logits;
 *      fork of an empty session; fork/cancel/sample of a freed session are refused.
 *   5. glm5_sample_batch of 6 sessions (prompt lengths 1..20, greedy and sampled, all filters,
 *      stop ids, defaults, some output arrays NULL) equals each run alone bitwise, in two orders,
 *      with 1, 2 and 3 compute threads, caches included (the next greedy tokens agree); NULL
 *      params array; glm5_append_batch equals per-session glm5_session_append (logprobs, kept
 *      logits, then the next sample).
 *   6. bad input: every out-of-range field, NULL pointer, struct_size, capacity, empty session;
 *      batch-level errors (same session twice, two models, NULL arrays, n 0 / 4097) and one bad
 *      session among four: each returns the right status with a message naming the field (and
 *      the index), leaves every output array untouched and every session unchanged (tokens, kept
 *      logits, and the next sample equals that of an untouched session); larger struct_size
 *      accepted and its tail left alone; the same for append_batch, append_scaled and
 *      score_scaled.
 *   7. threads: while a 200-token sample runs, other calls on the session get GLM5_ERR_BUSY (at
 *      least one append is refused) and the sampled tokens are those of an undisturbed run;
 *      glm5_session_cancel from another thread stops a single sample and one session of a batch
 *      (CANCELLED, the tokens so far are a prefix of the undisturbed run, n_tokens consistent,
 *      the next sample continues it); a pending cancel makes the next sample return 0 tokens
 *      (also after an append, also inside a batch; a call with max_new_tokens 0 leaves it
 *      pending) and the one after run normally; three threads
 *      running batches on one shared model get the alone results.
 *   8. stopping: a stop id that the run produces at step 3 gives STOP after 3 tokens with the
 *      token kept and the session 3 longer, and the next call continues the same sequence; the
 *      model's eos stops unless ignore_eos; stop_token_ids {eos} stops even with ignore_eos.
 *   9. a reference sampler written from the header's text (double-precision softmax, rank order,
 *      top-k, top-p, min-p, Philox4x32-10 checked against Random123's known answers) picks the
 *      same token at every step of several runs, the same top alternatives, and the same scaled
 *      and processed logprobs (to 1e-5).
 */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE

#include "glm5.h"

#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int n_checks = 0, n_failed = 0;
static const char *g_case = ""; /* what is being checked, printed with a failure */

#define CHECK(cond)                                                                                   \
    do {                                                                                              \
        n_checks++;                                                                                   \
        if (!(cond)) {                                                                                \
            n_failed++;                                                                               \
            fprintf(stderr, "%s:%d: CHECK failed [%s]: %s\n  last error: \"%s\"\n", __FILE__, __LINE__, \
                    g_case, #cond, glm5_last_error());                                                \
        }                                                                                             \
    } while (0)

#define REQUIRE(cond)                                                                                 \
    do {                                                                                              \
        n_checks++;                                                                                   \
        if (!(cond)) {                                                                                \
            fprintf(stderr, "%s:%d: REQUIRE failed [%s]: %s\n  last error: \"%s\"\n", __FILE__,        \
                    __LINE__, g_case, #cond, glm5_last_error());                                      \
            fprintf(stderr, "test_sampling: stopped; %d of %d checks failed before\n", n_failed,      \
                    n_checks);                                                                        \
            exit(1);                                                                                  \
        }                                                                                             \
    } while (0)

/* The last error contains `needle`. */
#define CHECK_MSG(needle) CHECK(strstr(glm5_last_error(), (needle)) != NULL)

/* A status and a non-empty message that contains `needle`. */
#define CHECK_FAIL(expr, status, needle)  \
    do {                                  \
        CHECK((expr) == (status));        \
        CHECK(glm5_last_error()[0] != 0); \
        CHECK_MSG(needle);                \
    } while (0)

/* n elements of a and b are the same bits. */
#define SAME(a, b, n) (memcmp((a), (b), (size_t)(n) * sizeof *(a)) == 0)

static void *xmalloc(size_t size) {
    void *p = malloc(size ? size : 1);
    if (!p) {
        fprintf(stderr, "test_sampling: out of memory (%zu bytes)\n", size);
        exit(1);
    }
    return p;
}

/* The message names index i in one of the usual spellings. */
static int msg_names_index(size_t i) {
    char a[48], b[48], c[48];
    snprintf(a, sizeof a, "index %zu", i);
    snprintf(b, sizeof b, "[%zu]", i);
    snprintf(c, sizeof c, "session %zu", i);
    const char *m = glm5_last_error();
    return strstr(m, a) || strstr(m, b) || strstr(m, c);
}

/* Deterministic token ids in [0, V): (i * a + b) % V. */
static void make_ids(int32_t *ids, size_t n, int a, int b, uint32_t V) {
    for (size_t i = 0; i < n; i++) ids[i] = (int32_t)(((long long)i * a + b) % (long long)V);
}

/* ---------------------------------------------------------------------------------------------
 * Models and sessions
 * --------------------------------------------------------------------------------------------- */

static glm5_model *load_model(const char *dir, int32_t threads) {
    glm5_model_params mp;
    glm5_model_params_init(&mp);
    mp.n_threads = threads;
    glm5_model *model = NULL;
    REQUIRE(glm5_model_load(dir, &mp, &model) == GLM5_OK);
    return model;
}

static uint32_t vocab_size(const glm5_model *model) {
    glm5_model_info info;
    glm5_model_info_init(&info);
    REQUIRE(glm5_model_get_info(model, &info) == GLM5_OK);
    return info.vocab_size;
}

static glm5_session *new_session(glm5_model *model, uint32_t max_tokens) {
    glm5_session_params sp;
    glm5_session_params_init(&sp);
    sp.max_tokens = max_tokens;
    glm5_session *s = NULL;
    REQUIRE(glm5_session_new(model, &sp, &s) == GLM5_OK);
    REQUIRE(s != NULL);
    return s;
}

/* A session holding `prompt`. */
static glm5_session *prompt_session(glm5_model *model, const int32_t *prompt, size_t n, uint32_t max_tokens,
                                    glm5_logits keep) {
    glm5_session *s = new_session(model, max_tokens);
    if (n) REQUIRE(glm5_session_append(s, prompt, n, keep, NULL) == GLM5_OK);
    return s;
}

static size_t sess_n_tokens(glm5_session *s) {
    size_t n = (size_t)-1;
    REQUIRE(glm5_session_n_tokens(s, &n) == GLM5_OK);
    return n;
}

static int32_t *sess_tokens(glm5_session *s, size_t *n) {
    size_t count = (size_t)-1;
    glm5_status st = glm5_session_get_tokens(s, NULL, 0, &count);
    REQUIRE(st == GLM5_OK || st == GLM5_ERR_BUFFER_TOO_SMALL);
    int32_t *out = xmalloc(count * sizeof(int32_t));
    REQUIRE(glm5_session_get_tokens(s, out, count, &count) == GLM5_OK);
    *n = count;
    return out;
}

static float *sess_logits(glm5_session *s, size_t *rows, size_t *n_floats) {
    size_t r = (size_t)-1, nf = (size_t)-1;
    glm5_status st = glm5_session_get_logits(s, NULL, 0, &r, &nf);
    REQUIRE(st == GLM5_OK || st == GLM5_ERR_BUFFER_TOO_SMALL);
    float *out = xmalloc(nf * sizeof(float));
    REQUIRE(glm5_session_get_logits(s, out, nf, &r, &nf) == GLM5_OK);
    *rows = r;
    *n_floats = nf;
    return out;
}

/* Everything a host can observe of a session without changing it: its tokens and kept logits. */
struct snapshot {
    size_t n_tokens, rows, n_floats;
    int32_t *tokens;
    float *logits;
};

static struct snapshot take_snapshot(glm5_session *s) {
    struct snapshot sn;
    sn.tokens = sess_tokens(s, &sn.n_tokens);
    sn.logits = sess_logits(s, &sn.rows, &sn.n_floats);
    return sn;
}

static void free_snapshot(struct snapshot *sn) {
    free(sn->tokens);
    free(sn->logits);
}

static int same_snapshot(glm5_session *s, const struct snapshot *sn) {
    struct snapshot now = take_snapshot(s);
    int same = now.n_tokens == sn->n_tokens && SAME(now.tokens, sn->tokens, now.n_tokens) &&
               now.rows == sn->rows && now.n_floats == sn->n_floats && SAME(now.logits, sn->logits, now.n_floats);
    free_snapshot(&now);
    return same && sess_n_tokens(s) == sn->n_tokens;
}

/* ---------------------------------------------------------------------------------------------
 * Sampling runs: a glm5_sample_output with its arrays, filled with a sentinel byte so that
 * writes past n_tokens (or any write by a failed call) show.
 * --------------------------------------------------------------------------------------------- */

enum { WANT_LP = 1, WANT_SLP = 2, WANT_PLP = 4, WANT_TOP = 8, WANT_ALL = 15 };
#define SENTINEL_BYTE 0xA5
#define SENTINEL_N ((size_t)777)
#define SENTINEL_FINISH 77
#define SENTINEL_STOP 55

struct run {
    glm5_sample_output out;
    size_t cap, n_top;
    int32_t *tokens, *top_ids;
    float *lp, *slp, *plp, *top_lp;
};

static void *sentinel_array(size_t bytes) {
    void *p = xmalloc(bytes);
    memset(p, SENTINEL_BYTE, bytes ? bytes : 1);
    return p;
}

/* Arrays for cap tokens and n_top alternatives; `want` says which optional arrays exist. */
static void run_init(struct run *r, size_t cap, size_t n_top, int want) {
    memset(r, 0, sizeof *r);
    r->cap = cap;
    r->n_top = n_top;
    r->tokens = sentinel_array(cap * sizeof(int32_t));
    if (want & WANT_LP) r->lp = sentinel_array(cap * sizeof(float));
    if (want & WANT_SLP) r->slp = sentinel_array(cap * sizeof(float));
    if (want & WANT_PLP) r->plp = sentinel_array(cap * sizeof(float));
    if ((want & WANT_TOP) && n_top) {
        r->top_ids = sentinel_array(cap * n_top * sizeof(int32_t));
        r->top_lp = sentinel_array(cap * n_top * sizeof(float));
    }
    glm5_sample_output_init(&r->out);
    r->out.capacity = cap;
    r->out.tokens = r->tokens;
    r->out.logprobs = r->lp;
    r->out.scaled_logprobs = r->slp;
    r->out.processed_logprobs = r->plp;
    r->out.top_ids = r->top_ids;
    r->out.top_logprobs = r->top_lp;
}

static void run_free(struct run *r) {
    free(r->tokens);
    free(r->lp);
    free(r->slp);
    free(r->plp);
    free(r->top_ids);
    free(r->top_lp);
    memset(r, 0, sizeof *r);
}

/* Set the OUT fields to sentinels (to see whether a failed call wrote them). */
static void run_mark(struct run *r) {
    r->out.finish_reason = SENTINEL_FINISH;
    r->out.n_tokens = SENTINEL_N;
    r->out.stop_token_id = SENTINEL_STOP;
}

static int bytes_are_sentinel(const void *p, size_t bytes) {
    const unsigned char *b = p;
    for (size_t i = 0; i < bytes; i++)
        if (b[i] != SENTINEL_BYTE) return 0;
    return 1;
}

/* No array entry at or after `from` (tokens) was written. */
static int run_untouched_from(const struct run *r, size_t from) {
    if (from > r->cap) return 0;
    size_t rest = r->cap - from;
    int ok = bytes_are_sentinel(r->tokens + from, rest * sizeof(int32_t));
    if (r->lp) ok &= bytes_are_sentinel(r->lp + from, rest * sizeof(float));
    if (r->slp) ok &= bytes_are_sentinel(r->slp + from, rest * sizeof(float));
    if (r->plp) ok &= bytes_are_sentinel(r->plp + from, rest * sizeof(float));
    if (r->top_ids) ok &= bytes_are_sentinel(r->top_ids + from * r->n_top, rest * r->n_top * sizeof(int32_t));
    if (r->top_lp) ok &= bytes_are_sentinel(r->top_lp + from * r->n_top, rest * r->n_top * sizeof(float));
    return ok;
}

/* Two runs agree bitwise in everything both recorded; prints the first difference. */
static int same_run(const struct run *a, const struct run *b) {
    const glm5_sample_output *x = &a->out, *y = &b->out;
    if (x->n_tokens != y->n_tokens || x->finish_reason != y->finish_reason || x->stop_token_id != y->stop_token_id) {
        fprintf(stderr, "  [%s] runs differ: n_tokens %zu vs %zu, finish %d vs %d, stop id %d vs %d\n", g_case,
                x->n_tokens, y->n_tokens, (int)x->finish_reason, (int)y->finish_reason, (int)x->stop_token_id,
                (int)y->stop_token_id);
        return 0;
    }
    size_t n = x->n_tokens;
    if (n > a->cap || n > b->cap) return 0;
    const char *what = NULL;
    if (!SAME(a->tokens, b->tokens, n)) what = "tokens";
    else if (a->lp && b->lp && !SAME(a->lp, b->lp, n)) what = "logprobs";
    else if (a->slp && b->slp && !SAME(a->slp, b->slp, n)) what = "scaled_logprobs";
    else if (a->plp && b->plp && !SAME(a->plp, b->plp, n)) what = "processed_logprobs";
    else if (a->top_ids && b->top_ids && a->n_top == b->n_top && !SAME(a->top_ids, b->top_ids, n * a->n_top))
        what = "top_ids";
    else if (a->top_lp && b->top_lp && a->n_top == b->n_top && !SAME(a->top_lp, b->top_lp, n * a->n_top))
        what = "top_logprobs";
    if (what) {
        size_t i = 0;
        while (i < n && a->tokens[i] == b->tokens[i]) i++;
        fprintf(stderr, "  [%s] runs differ in %s (%zu tokens; first token difference at %zu)\n", g_case, what, n, i);
        return 0;
    }
    return 1;
}

/* b's first n tokens (and logprobs) are a's tokens [from, from + n). */
static int run_matches_at(const struct run *a, size_t from, const struct run *b, size_t n) {
    if (from + n > a->out.n_tokens || n > b->out.n_tokens) return 0;
    int ok = SAME(a->tokens + from, b->tokens, n);
    if (a->lp && b->lp) ok &= SAME(a->lp + from, b->lp, n);
    if (a->slp && b->slp) ok &= SAME(a->slp + from, b->slp, n);
    if (a->plp && b->plp) ok &= SAME(a->plp + from, b->plp, n);
    if (!ok) fprintf(stderr, "  [%s] %zu tokens differ from the reference at offset %zu\n", g_case, n, from);
    return ok;
}

/* Sampling parameters for the tests: everything explicit, ignore_eos on (so that lengths do not
 * depend on whether the eos id comes up) unless a test switches it off. */
static glm5_sampling_params sp_make(float temperature, int32_t top_k, float top_p, float min_p, uint32_t max_new,
                                    uint64_t seed, uint32_t n_top) {
    glm5_sampling_params p;
    glm5_sampling_params_init(&p);
    p.temperature = temperature;
    p.top_k = top_k;
    p.top_p = top_p;
    p.min_p = min_p;
    p.max_new_tokens = max_new;
    p.seed = seed;
    p.n_top_logprobs = n_top;
    p.ignore_eos = 1;
    return p;
}

/* A run of p on a fresh session holding prompt (the reference "alone" result). */
static void sample_fresh(glm5_model *m, const int32_t *prompt, size_t n_prompt, const glm5_sampling_params *p,
                         struct run *r, size_t cap, size_t n_top, int want) {
    glm5_session *s = prompt_session(m, prompt, n_prompt, 0, GLM5_LOGITS_NONE);
    run_init(r, cap, n_top, want);
    REQUIRE(glm5_session_sample(s, p, &r->out) == GLM5_OK);
    glm5_session_free(s);
}

/* ---------------------------------------------------------------------------------------------
 * Reference sampler, from the text of the "Sampling" block
 * --------------------------------------------------------------------------------------------- */

static void philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3], k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; round++) {
        if (round > 0) {
            k0 += 0x9E3779B9u;
            k1 += 0xBB67AE85u;
        }
        uint64_t p0 = (uint64_t)0xD2511F53u * c0, p1 = (uint64_t)0xCD9E8D57u * c2;
        uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0, hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
        uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
        c0 = n0;
        c1 = lo1;
        c2 = n2;
        c3 = lo0;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

/* u in [0, 1) for (seed, pos). */
static double draw_u(uint64_t seed, uint64_t pos) {
    uint32_t ctr[4] = {(uint32_t)pos, (uint32_t)(pos >> 32), 0, 0}, key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    uint32_t x[4];
    philox4x32_10(ctr, key, x);
    uint64_t bits = (((uint64_t)x[1] << 32) | x[0]) >> 11;
    return (double)bits * 0x1p-53;
}

static void test_philox_known_answers(void) {
    /* Random123's kat_vectors for philox4x32 10 rounds. */
    static const uint32_t kat[3][10] = {
        {0, 0, 0, 0, 0, 0, 0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u},
        {0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0x408f276du, 0x41c83b0eu,
         0xa20bc7c6u, 0x6d5451fdu},
        {0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u, 0xa4093822u, 0x299f31d0u, 0xd16cfe09u, 0x94fdccebu,
         0x5001e420u, 0x24126ea1u},
    };
    g_case = "reference Philox4x32-10 known answers";
    for (int i = 0; i < 3; i++) {
        uint32_t out[4];
        philox4x32_10(&kat[i][0], &kat[i][4], out);
        REQUIRE(out[0] == kat[i][6] && out[1] == kat[i][7] && out[2] == kat[i][8] && out[3] == kat[i][9]);
    }
}

/* Rank order: logit descending, equal logits lower id first, NaN last. */
static const float *g_rank_logits;
static int rank_cmp(const void *pa, const void *pb) {
    int32_t a = *(const int32_t *)pa, b = *(const int32_t *)pb;
    float la = g_rank_logits[a], lb = g_rank_logits[b];
    int na = isnan(la), nb = isnan(lb);
    if (na != nb) return na - nb;
    if (!na && la != lb) return la > lb ? -1 : 1;
    return (a > b) - (a < b);
}

struct ref_step {
    int32_t token;
    float scaled, processed;
    int32_t top[GLM5_MAX_TOP_LOGPROBS];
};

/* One draw from logits l[0..V) at absolute position pos, as the header specifies. */
static void ref_sample(const float *l, size_t V, const glm5_sampling_params *p, uint64_t pos, struct ref_step *out) {
    int32_t *rank = xmalloc(V * sizeof(int32_t));
    for (size_t i = 0; i < V; i++) rank[i] = (int32_t)i;
    g_rank_logits = l;
    qsort(rank, V, sizeof(int32_t), rank_cmp);
    for (size_t j = 0; j < GLM5_MAX_TOP_LOGPROBS && j < V; j++) out->top[j] = rank[j];

    double T = p->temperature == 0 ? 1.0 : (double)p->temperature;
    double *s = xmalloc(V * sizeof(double)), *w = xmalloc(V * sizeof(double));
    double m = -INFINITY;
    for (size_t i = 0; i < V; i++) {
        s[i] = (double)l[i] / T;
        if (!isnan(s[i]) && s[i] > m) m = s[i];
    }
    double Z = 0;
    for (size_t i = 0; i < V; i++) {
        w[i] = isnan(s[i]) ? 0.0 : exp(s[i] - m);
        Z += w[i];
    }
    if (p->temperature == 0) {
        out->token = rank[0];
        out->scaled = (float)(s[rank[0]] - (m + log(Z)));
        out->processed = 0;
        free(rank);
        free(s);
        free(w);
        return;
    }
    size_t kk = V;
    if (p->top_k > 0 && (size_t)p->top_k < kk) kk = (size_t)p->top_k;
    if (p->top_p < 1.0f) {
        double before = 0;
        size_t count = 0;
        while (count < V && before < (double)p->top_p) {
            before += w[rank[count]] / Z;
            count++;
        }
        if (count < kk) kk = count;
    }
    if (p->min_p > 0.0f) {
        size_t count = 0;
        while (count < V && w[rank[count]] >= (double)p->min_p) count++;
        if (count < kk) kk = count;
    }
    unsigned char *kept = xmalloc(V);
    memset(kept, 0, V);
    for (size_t j = 0; j < kk; j++) kept[rank[j]] = 1;
    double W = 0;
    for (size_t i = 0; i < V; i++)
        if (kept[i]) W += w[i];
    double target = draw_u(p->seed, pos) * W, c = 0;
    int32_t token = -1, last = -1;
    for (size_t i = 0; i < V; i++) {
        if (!kept[i]) continue;
        c += w[i];
        if (w[i] > 0) last = (int32_t)i;
        if (c > target) {
            token = (int32_t)i;
            break;
        }
    }
    if (token < 0) token = last;
    out->token = token;
    out->scaled = (float)(s[token] - (m + log(Z)));
    out->processed = (float)((s[token] - m) - log(W));
    free(kept);
    free(rank);
    free(s);
    free(w);
}

/* ---------------------------------------------------------------------------------------------
 * 1. Defaults, enum values, end-of-sequence ids
 * --------------------------------------------------------------------------------------------- */

static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, len = 0, got;
    char *buf = xmalloc(cap);
    while ((got = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += got;
        if (len + 1 == cap) {
            char *bigger = realloc(buf, cap * 2);
            REQUIRE(bigger != NULL);
            buf = bigger;
            cap *= 2;
        }
    }
    fclose(f);
    buf[len] = 0;
    return buf;
}

static void write_text(const char *dir, const char *name, const char *text) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    REQUIRE(f != NULL);
    REQUIRE(fwrite(text, 1, strlen(text), f) == strlen(text));
    REQUIRE(fclose(f) == 0);
}

/* `text` with the first occurrence of `from` replaced by `to` (a new string). */
static char *replace_once(const char *text, const char *from, const char *to) {
    const char *at = strstr(text, from);
    REQUIRE(at != NULL);
    size_t head = (size_t)(at - text), n = strlen(text) - strlen(from) + strlen(to);
    char *out = xmalloc(n + 1);
    memcpy(out, text, head);
    strcpy(out + head, to);
    strcat(out, at + strlen(from));
    return out;
}

/* The model's eos ids (two-call pattern), into ids[0..cap); returns the count. */
static size_t eos_ids(const glm5_model *m, int32_t *ids, size_t cap) {
    size_t n = (size_t)-1;
    glm5_status st = glm5_model_eos_token_ids(m, NULL, 0, &n);
    CHECK(st == GLM5_ERR_BUFFER_TOO_SMALL || (st == GLM5_OK && n == 0));
    REQUIRE(n <= cap);
    size_t n2 = (size_t)-1;
    REQUIRE(glm5_model_eos_token_ids(m, ids, cap, &n2) == GLM5_OK);
    CHECK(n2 == n);
    return n;
}

/* A copy of the fixture with other config.json / generation_config.json texts (the weights are
 * a symlink). gen == NULL: no generation_config.json. */
static glm5_model *load_variant(const char *fixture, const char *config, const char *gen, char *dir_out,
                                size_t dir_size) {
    snprintf(dir_out, dir_size, "/tmp/glm5-test-sampling-XXXXXX");
    REQUIRE(mkdtemp(dir_out) != NULL);
    char src[4096], dst[4096], abs_src[4096];
    snprintf(src, sizeof src, "%s/model.safetensors", fixture);
    REQUIRE(realpath(src, abs_src) != NULL);
    snprintf(dst, sizeof dst, "%s/model.safetensors", dir_out);
    REQUIRE(symlink(abs_src, dst) == 0);
    write_text(dir_out, "config.json", config);
    if (gen) write_text(dir_out, "generation_config.json", gen);
    return load_model(dir_out, 1);
}

static void remove_variant(const char *dir) {
    const char *names[] = {"model.safetensors", "config.json", "generation_config.json"};
    char path[4096];
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
}

static void test_defaults(const char *fixture, glm5_model *m) {
    g_case = "1. glm5_sampling_params_init";
    glm5_sampling_params_init(NULL); /* ignored */
    glm5_sampling_params p;
    memset(&p, 0x5A, sizeof p);
    glm5_sampling_params_init(&p);
    CHECK(p.struct_size == sizeof(glm5_sampling_params));
    CHECK(p.temperature == 1.0f);
    CHECK(p.top_k == 0);
    CHECK(p.top_p == 1.0f);
    CHECK(p.min_p == 0.0f);
    CHECK(p.max_new_tokens == 128);
    CHECK(p.seed == 0);
    CHECK(p.stop_token_ids == NULL);
    CHECK(p.n_stop_token_ids == 0);
    CHECK(p.ignore_eos == 0);
    CHECK(p.n_top_logprobs == 0);

    g_case = "1. glm5_sample_output_init";
    glm5_sample_output_init(NULL);
    glm5_sample_output o;
    memset(&o, 0x5A, sizeof o);
    glm5_sample_output_init(&o);
    CHECK(o.struct_size == sizeof(glm5_sample_output));
    CHECK(o.finish_reason == GLM5_FINISH_NONE);
    CHECK(o.capacity == 0);
    CHECK(o.tokens == NULL && o.logprobs == NULL && o.scaled_logprobs == NULL && o.processed_logprobs == NULL);
    CHECK(o.top_ids == NULL && o.top_logprobs == NULL);
    CHECK(o.n_tokens == 0);
    CHECK(o.stop_token_id == -1);
    CHECK(o.status == GLM5_OK);

    /* Pinned values. */
    CHECK(GLM5_FINISH_NONE == 0 && GLM5_FINISH_LENGTH == 1 && GLM5_FINISH_STOP == 2 && GLM5_FINISH_CANCELLED == 3);
    CHECK(GLM5_MAX_TOP_LOGPROBS == 64);

    g_case = "1. glm5_model_eos_token_ids";
    size_t n = (size_t)-1;
    CHECK_FAIL(glm5_model_eos_token_ids(m, NULL, 0, &n), GLM5_ERR_BUFFER_TOO_SMALL, "capacity");
    CHECK(n == 1);
    int32_t ids[4] = {-9, -9, -9, -9};
    n = (size_t)-1;
    CHECK(glm5_model_eos_token_ids(m, ids, 0, &n) == GLM5_ERR_BUFFER_TOO_SMALL);
    CHECK(n == 1 && ids[0] == -9); /* nothing copied */
    n = (size_t)-1;
    CHECK(glm5_model_eos_token_ids(m, ids, 4, &n) == GLM5_OK);
    CHECK(n == 1 && ids[0] == 1 && ids[1] == -9);
    ids[0] = -9;
    CHECK(glm5_model_eos_token_ids(m, ids, 1, NULL) == GLM5_OK);
    CHECK(ids[0] == 1);
    CHECK_FAIL(glm5_model_eos_token_ids(m, NULL, 2, &n), GLM5_ERR_INVALID_ARGUMENT, "out");
    CHECK_FAIL(glm5_model_eos_token_ids(NULL, ids, 4, &n), GLM5_ERR_INVALID_ARGUMENT, "model");

    /* Where the ids come from: generation_config.json's eos_token_id (one id or a list) wins;
     * without it (no file, or a file without the key), config.json's. */
    char path[4096], dir[4096];
    snprintf(path, sizeof path, "%s/config.json", fixture);
    char *config = read_text(path);
    REQUIRE(config != NULL);
    char *config_list = replace_once(config, "\"eos_token_id\": 1", "\"eos_token_id\": [3, 1]");
    int32_t got[8];

    g_case = "1. eos ids: generation_config.json list [1, 7] over config.json 1";
    glm5_model *v = load_variant(fixture, config, "{\"bos_token_id\": 0, \"eos_token_id\": [1, 7]}", dir, sizeof dir);
    CHECK(eos_ids(v, got, 8) == 2 && got[0] == 1 && got[1] == 7);
    glm5_model_free(v);
    remove_variant(dir);

    g_case = "1. eos ids: config.json list [3, 1], no generation_config.json";
    v = load_variant(fixture, config_list, NULL, dir, sizeof dir);
    CHECK(eos_ids(v, got, 8) == 2 && got[0] == 3 && got[1] == 1);
    glm5_model_free(v);
    remove_variant(dir);

    g_case = "1. eos ids: generation_config.json without eos_token_id, config.json list [3, 1]";
    v = load_variant(fixture, config_list, "{\"bos_token_id\": 0}", dir, sizeof dir);
    CHECK(eos_ids(v, got, 8) == 2 && got[0] == 3 && got[1] == 1);
    glm5_model_free(v);
    remove_variant(dir);

    g_case = "1. eos ids: generation_config.json 5 over config.json [3, 1]";
    v = load_variant(fixture, config_list, "{\"eos_token_id\": 5}", dir, sizeof dir);
    CHECK(eos_ids(v, got, 8) == 1 && got[0] == 5);
    glm5_model_free(v);
    remove_variant(dir);
    free(config_list);
    free(config);

    /* NULL params are the defaults (temperature 1, seed 0, 128 tokens, eos stops). */
    g_case = "1. NULL params = defaults";
    const uint32_t V = vocab_size(m);
    int32_t prompt[5];
    make_ids(prompt, 5, 17, 4, V);
    glm5_sampling_params defaults;
    glm5_sampling_params_init(&defaults);
    struct run a, b;
    sample_fresh(m, prompt, 5, NULL, &a, 128, 0, WANT_ALL);
    sample_fresh(m, prompt, 5, &defaults, &b, 128, 0, WANT_ALL);
    CHECK(same_run(&a, &b));
    CHECK(a.out.finish_reason == GLM5_FINISH_LENGTH || a.out.finish_reason == GLM5_FINISH_STOP);
    if (a.out.finish_reason == GLM5_FINISH_STOP) {
        CHECK(a.out.stop_token_id == 1 && a.out.n_tokens >= 1 && a.tokens[a.out.n_tokens - 1] == 1);
        for (size_t i = 0; i + 1 < a.out.n_tokens; i++) CHECK(a.tokens[i] != 1);
    } else {
        CHECK(a.out.n_tokens == 128 && a.out.stop_token_id == -1);
    }
    /* Temperature 1: the scaled logprob is the raw one, bit for bit. */
    CHECK(SAME(a.lp, a.slp, a.out.n_tokens));
    printf("  defaults: %zu tokens, finish %d\n", a.out.n_tokens, (int)a.out.finish_reason);
    run_free(&a);
    run_free(&b);
}

/* ---------------------------------------------------------------------------------------------
 * 2. Temperature 0 is glm5_session_generate
 * --------------------------------------------------------------------------------------------- */

static void test_greedy(glm5_model *m) {
    const uint32_t V = vocab_size(m);
    int32_t prompt[5];
    make_ids(prompt, 5, 31, 7, V);
    enum { N = 16, CAP = 20, TOP = 4 };

    for (int filtered = 0; filtered < 2; filtered++) {
        g_case = filtered ? "2. temperature 0 with top_k/top_p/min_p (ignored)" : "2. temperature 0";
        glm5_session *s1 = prompt_session(m, prompt, 5, 0, GLM5_LOGITS_LAST);
        glm5_session *s2 = prompt_session(m, prompt, 5, 0, GLM5_LOGITS_LAST);
        glm5_sampling_params p = filtered ? sp_make(0.0f, 3, 0.2f, 0.5f, N, 99, TOP)
                                          : sp_make(0.0f, 0, 1.0f, 0.0f, N, 0, TOP);
        struct run r;
        run_init(&r, CAP, TOP, WANT_ALL);
        REQUIRE(glm5_session_sample(s1, &p, &r.out) == GLM5_OK);
        CHECK(r.out.n_tokens == N);
        CHECK(r.out.finish_reason == GLM5_FINISH_LENGTH);
        CHECK(r.out.stop_token_id == -1);
        CHECK(r.out.status == GLM5_OK);
        CHECK(run_untouched_from(&r, N)); /* nothing written past n_tokens */
        int32_t gen[N];
        float gen_lp[N];
        REQUIRE(glm5_session_generate(s2, N, gen, gen_lp) == GLM5_OK);
        CHECK(SAME(r.tokens, gen, N));
        CHECK(SAME(r.lp, gen_lp, N));
        CHECK(SAME(r.slp, r.lp, N)); /* scaled == raw at temperature 0 */
        int zero = 1, top_first = 1, top_desc = 1;
        for (size_t i = 0; i < N; i++) {
            zero &= r.plp[i] == 0.0f;
            top_first &= r.top_ids[i * TOP] == r.tokens[i] && SAME(&r.top_lp[i * TOP], &r.lp[i], 1);
            for (size_t j = 1; j < TOP; j++) top_desc &= r.top_lp[i * TOP + j - 1] >= r.top_lp[i * TOP + j];
        }
        CHECK(zero);
        CHECK(top_first);
        CHECK(top_desc);
        /* Both sessions hold the same tokens, and sampling cleared the kept logits. */
        struct snapshot a = take_snapshot(s1), b = take_snapshot(s2);
        CHECK(a.n_tokens == 5 + N && b.n_tokens == 5 + N && SAME(a.tokens, b.tokens, a.n_tokens));
        CHECK(a.rows == 0);
        free_snapshot(&a);
        free_snapshot(&b);
        run_free(&r);
        glm5_session_free(s1);
        glm5_session_free(s2);
    }
}

/* ---------------------------------------------------------------------------------------------
 * 3. Sampled logprobs are the scored logprobs
 * --------------------------------------------------------------------------------------------- */

/* Top alternatives of every token: distinct ids in [0, V), scaled logprobs non-increasing (the
 * exact order of near-equal logits is checked against the logits in section 9), the sampled
 * token's entry (if listed) equal to its scaled logprob, the first at least the sampled one. */
static int top_lists_ok(const struct run *r, uint32_t V) {
    size_t k = r->n_top;
    for (size_t i = 0; i < r->out.n_tokens; i++) {
        const int32_t *ids = r->top_ids + i * k;
        const float *lp = r->top_lp + i * k;
        for (size_t j = 0; j < k; j++) {
            if (ids[j] < 0 || (uint32_t)ids[j] >= V) return 0;
            for (size_t q = 0; q < j; q++)
                if (ids[q] == ids[j]) return 0;
            if (j > 0 && !(lp[j - 1] >= lp[j])) return 0;
            if (ids[j] == r->tokens[i] && r->slp && !SAME(&lp[j], &r->slp[i], 1)) return 0;
        }
        if (r->slp && !(lp[0] >= r->slp[i])) return 0;
    }
    return 1;
}

static void test_scored_equals_sampled(glm5_model *m) {
    const uint32_t V = vocab_size(m);
    enum { P = 6, N = 12, TOP = 5 };
    int32_t all[P + N];
    make_ids(all, P, 23, 9, V);
    const float T = 0.8f;

    g_case = "3. sampled (T 0.8, top_k 50, top_p 0.9, seed 7) vs glm5_model_score(_scaled)";
    glm5_session *s = prompt_session(m, all, P, 0, GLM5_LOGITS_NONE);
    glm5_sampling_params p = sp_make(T, 50, 0.9f, 0.0f, N, 7, TOP);
    struct run r;
    run_init(&r, N, TOP, WANT_ALL);
    REQUIRE(glm5_session_sample(s, &p, &r.out) == GLM5_OK);
    REQUIRE(r.out.n_tokens == N);
    CHECK(r.out.finish_reason == GLM5_FINISH_LENGTH);
    memcpy(all + P, r.tokens, N * sizeof(int32_t));
    size_t n_sess = 0;
    int32_t *held = sess_tokens(s, &n_sess);
    CHECK(n_sess == P + N && SAME(held, all, P + N));
    free(held);

    float raw[P + N], raw2[P + N], scaled[P + N], only_scaled[P + N], zero_t[P + N];
    REQUIRE(glm5_model_score(m, all, P + N, raw) == GLM5_OK);
    REQUIRE(glm5_model_score_scaled(m, all, P + N, T, raw2, scaled) == GLM5_OK);
    CHECK(SAME(r.lp, raw + P, N));
    CHECK(SAME(r.slp, scaled + P, N));
    CHECK(SAME(raw2 + 1, raw + 1, P + N - 1));
    CHECK(isnan(raw2[0]) && isnan(scaled[0]));
    REQUIRE(glm5_model_score_scaled(m, all, P + N, T, NULL, only_scaled) == GLM5_OK);
    CHECK(SAME(only_scaled + 1, scaled + 1, P + N - 1));
    REQUIRE(glm5_model_score_scaled(m, all, P + N, T, raw2, NULL) == GLM5_OK);
    CHECK(SAME(raw2 + 1, raw + 1, P + N - 1));
    REQUIRE(glm5_model_score_scaled(m, all, P + N, 0.0f, NULL, zero_t) == GLM5_OK);
    CHECK(SAME(zero_t + 1, raw + 1, P + N - 1)); /* temperature 0: raw */
    REQUIRE(glm5_model_score_scaled(m, all, P + N, 1.0f, NULL, zero_t) == GLM5_OK);
    CHECK(SAME(zero_t + 1, raw + 1, P + N - 1)); /* temperature 1: raw, bit for bit */

    /* Processed logprobs: log of a renormalised subset, so between the scaled one and 0. */
    int plp_ok = 1;
    for (size_t i = 0; i < N; i++) plp_ok &= r.plp[i] <= 0.0f && r.plp[i] >= r.slp[i] - 1e-5f;
    CHECK(plp_ok);
    CHECK(top_lists_ok(&r, V));

    g_case = "3. glm5_session_append_scaled of the same tokens, one call";
    glm5_session *t = new_session(m, 0);
    float alp[P + N], aslp[P + N];
    REQUIRE(glm5_session_append_scaled(t, all, P + N, GLM5_LOGITS_NONE, T, alp, aslp) == GLM5_OK);
    CHECK(SAME(alp + 1, raw + 1, P + N - 1));
    CHECK(SAME(aslp + 1, scaled + 1, P + N - 1));
    CHECK(isnan(alp[0]) && isnan(aslp[0]));
    glm5_session_free(t);

    g_case = "3. glm5_session_append_scaled in pieces (P, 1, rest), NULL outputs allowed";
    t = new_session(m, 0);
    REQUIRE(glm5_session_append_scaled(t, all, P, GLM5_LOGITS_LAST, T, NULL, NULL) == GLM5_OK);
    REQUIRE(glm5_session_append_scaled(t, all + P, 1, GLM5_LOGITS_NONE, T, NULL, aslp + P) == GLM5_OK);
    REQUIRE(glm5_session_append_scaled(t, all + P + 1, N - 1, GLM5_LOGITS_NONE, T, alp + P + 1, aslp + P + 1) ==
            GLM5_OK);
    CHECK(SAME(aslp + P, scaled + P, N));
    CHECK(SAME(alp + P + 1, raw + P + 1, N - 1));
    CHECK(sess_n_tokens(t) == P + N);
    glm5_session_free(t);

    g_case = "3. glm5_session_append_scaled at temperature 0 gives the raw logprobs";
    t = new_session(m, 0);
    REQUIRE(glm5_session_append_scaled(t, all, P + N, GLM5_LOGITS_NONE, 0.0f, alp, aslp) == GLM5_OK);
    CHECK(SAME(alp + 1, raw + 1, P + N - 1));
    CHECK(SAME(aslp + 1, raw + 1, P + N - 1));
    glm5_session_free(t);

    g_case = "3. top_k above the vocabulary, top_p 1 and min_p 0 are off";
    {
        struct run off, big;
        glm5_sampling_params q = sp_make(T, 0, 1.0f, 0.0f, N, 7, TOP);
        sample_fresh(m, all, P, &q, &off, N, TOP, WANT_ALL);
        q.top_k = 1000;
        sample_fresh(m, all, P, &q, &big, N, TOP, WANT_ALL);
        CHECK(same_run(&off, &big));
        /* No filter: the sampled distribution is the scaled one. */
        CHECK(SAME(off.plp, off.slp, N));
        run_free(&off);
        run_free(&big);
    }

    g_case = "3. 64 alternatives: the sampled token is in the kept set (top_k 50, top_p 0.9)";
    {
        struct run w;
        glm5_sampling_params p64 = p;
        p64.n_top_logprobs = GLM5_MAX_TOP_LOGPROBS;
        sample_fresh(m, all, P, &p64, &w, N, GLM5_MAX_TOP_LOGPROBS, WANT_ALL);
        CHECK(SAME(w.tokens, r.tokens, N)); /* the alternatives asked for change nothing */
        CHECK(SAME(w.slp, r.slp, N));
        CHECK(SAME(w.plp, r.plp, N));
        int in_kept = 1;
        for (size_t i = 0; i < N; i++) {
            const int32_t *ids = w.top_ids + i * GLM5_MAX_TOP_LOGPROBS;
            const float *lps = w.top_lp + i * GLM5_MAX_TOP_LOGPROBS;
            /* Its first TOP alternatives are those of the run with TOP. */
            in_kept &= SAME(ids, r.top_ids + i * TOP, TOP) && SAME(lps, r.top_lp + i * TOP, TOP);
            size_t rank = 0;
            double before = 0;
            while (rank < GLM5_MAX_TOP_LOGPROBS && ids[rank] != w.tokens[i]) before += exp((double)lps[rank++]);
            in_kept &= rank < 50 && before < 0.9 + 1e-5;
        }
        CHECK(in_kept);
        CHECK(top_lists_ok(&w, V));
        run_free(&w);
    }
    run_free(&r);
    glm5_session_free(s);
}

/* ---------------------------------------------------------------------------------------------
 * 4. Fork
 * --------------------------------------------------------------------------------------------- */

static void test_fork(glm5_model *m) {
    const uint32_t V = vocab_size(m);
    int32_t prompt[4];
    make_ids(prompt, 4, 41, 2, V);
    enum { N = 12, TOP = 3 };
    glm5_sampling_params p = sp_make(0.9f, 40, 0.95f, 0.0f, N, 7, TOP);

    g_case = "4. fork at the start continues as the original";
    glm5_session *base = prompt_session(m, prompt, 4, 0, GLM5_LOGITS_LAST);
    glm5_session *f = NULL;
    REQUIRE(glm5_session_fork(base, &f) == GLM5_OK);
    REQUIRE(f != NULL && f != base);
    CHECK(sess_n_tokens(f) == 4);
    struct snapshot fs = take_snapshot(f);
    CHECK(SAME(fs.tokens, prompt, 4));
    CHECK(fs.rows == 0); /* kept logits are not copied */
    free_snapshot(&fs);
    struct snapshot bs = take_snapshot(base);
    CHECK(bs.rows == 1); /* ... and the original keeps its own */
    free_snapshot(&bs);
    struct run ra, rb;
    run_init(&ra, N, TOP, WANT_ALL);
    run_init(&rb, N, TOP, WANT_ALL);
    REQUIRE(glm5_session_sample(base, &p, &ra.out) == GLM5_OK);
    REQUIRE(glm5_session_sample(f, &p, &rb.out) == GLM5_OK);
    CHECK(ra.out.n_tokens == N);
    CHECK(same_run(&ra, &rb));

    g_case = "4. the fork is independent of the original";
    size_t n_before = 0;
    int32_t *before = sess_tokens(base, &n_before);
    REQUIRE(glm5_session_truncate(f, 4) == GLM5_OK);
    glm5_sampling_params other = p;
    other.seed = 1234;
    struct run rc;
    run_init(&rc, N, TOP, WANT_ALL);
    REQUIRE(glm5_session_sample(f, &other, &rc.out) == GLM5_OK);
    size_t n_after = 0;
    int32_t *after = sess_tokens(base, &n_after);
    CHECK(n_after == n_before && SAME(after, before, n_after));
    free(before);
    free(after);
    run_free(&rc);
    glm5_session_free(f);

    g_case = "4. sampling 5 then 7 tokens = sampling 12 (the draw depends on seed and position)";
    glm5_session *s = prompt_session(m, prompt, 4, 0, GLM5_LOGITS_NONE);
    glm5_sampling_params p5 = p, p7 = p;
    p5.max_new_tokens = 5;
    p7.max_new_tokens = 7;
    struct run r5, r7, r7f;
    run_init(&r5, 5, TOP, WANT_ALL);
    run_init(&r7, 7, TOP, WANT_ALL);
    run_init(&r7f, 7, TOP, WANT_ALL);
    REQUIRE(glm5_session_sample(s, &p5, &r5.out) == GLM5_OK);
    CHECK(run_matches_at(&ra, 0, &r5, 5));
    g_case = "4. fork midway continues as the original";
    REQUIRE(glm5_session_fork(s, &f) == GLM5_OK);
    REQUIRE(glm5_session_sample(s, &p7, &r7.out) == GLM5_OK);
    REQUIRE(glm5_session_sample(f, &p7, &r7f.out) == GLM5_OK);
    CHECK(run_matches_at(&ra, 5, &r7, 7));
    CHECK(same_run(&r7, &r7f));
    CHECK(SAME(r7.top_ids, ra.top_ids + 5 * TOP, 7 * TOP) && SAME(r7.top_lp, ra.top_lp + 5 * TOP, 7 * TOP));
    run_free(&r5);
    run_free(&r7);
    run_free(&r7f);
    glm5_session_free(f);
    glm5_session_free(s);

    g_case = "4. fork of an empty session";
    glm5_session *e = new_session(m, 0), *fe = NULL;
    REQUIRE(glm5_session_fork(e, &fe) == GLM5_OK);
    CHECK(sess_n_tokens(fe) == 0);
    float lpa[4], lpb[4];
    REQUIRE(glm5_session_append(e, prompt, 4, GLM5_LOGITS_NONE, lpa) == GLM5_OK);
    REQUIRE(glm5_session_append(fe, prompt, 4, GLM5_LOGITS_NONE, lpb) == GLM5_OK);
    CHECK(SAME(lpa + 1, lpb + 1, 3));
    glm5_session_free(e);
    glm5_session_free(fe);

    g_case = "4. the fork has the original's max_tokens";
    glm5_session *small = prompt_session(m, prompt, 4, 10, GLM5_LOGITS_NONE), *fsmall = NULL;
    REQUIRE(glm5_session_fork(small, &fsmall) == GLM5_OK);
    glm5_sampling_params p6 = p;
    p6.max_new_tokens = 7;
    struct run r6;
    run_init(&r6, 7, TOP, WANT_ALL);
    run_mark(&r6);
    CHECK_FAIL(glm5_session_sample(fsmall, &p6, &r6.out), GLM5_ERR_CONTEXT_FULL, "10");
    CHECK(sess_n_tokens(fsmall) == 4 && run_untouched_from(&r6, 0));
    p6.max_new_tokens = 6;
    CHECK(glm5_session_sample(fsmall, &p6, &r6.out) == GLM5_OK);
    CHECK(r6.out.n_tokens == 6 && sess_n_tokens(fsmall) == 10);
    CHECK(run_matches_at(&ra, 0, &r6, 6));
    run_free(&r6);
    glm5_session_free(small);
    glm5_session_free(fsmall);

    g_case = "4. fork arguments";
    glm5_session *const SENT = (glm5_session *)(uintptr_t)0x5e55;
    glm5_session *out = SENT;
    CHECK_FAIL(glm5_session_fork(NULL, &out), GLM5_ERR_INVALID_ARGUMENT, "session");
    CHECK(out == SENT);
    CHECK_FAIL(glm5_session_fork(base, NULL), GLM5_ERR_INVALID_ARGUMENT, "out_session");
    CHECK_FAIL(glm5_session_fork((glm5_session *)(void *)m, &out), GLM5_ERR_INVALID_ARGUMENT, "session");
    CHECK(out == SENT);

    g_case = "4. a freed session is refused by fork, cancel and sample";
    glm5_session *dead = prompt_session(m, prompt, 4, 0, GLM5_LOGITS_NONE);
    glm5_session_free(dead);
    /* No handle is created until these calls are done, so the address cannot be reused. */
    CHECK_FAIL(glm5_session_fork(dead, &out), GLM5_ERR_INVALID_ARGUMENT, "session");
    CHECK(out == SENT);
    CHECK_FAIL(glm5_session_cancel(dead), GLM5_ERR_INVALID_ARGUMENT, "session");
    CHECK_FAIL(glm5_session_cancel(NULL), GLM5_ERR_INVALID_ARGUMENT, "session");
    struct run rd;
    run_init(&rd, N, TOP, WANT_ALL);
    run_mark(&rd);
    CHECK_FAIL(glm5_session_sample(dead, &p, &rd.out), GLM5_ERR_INVALID_ARGUMENT, "session");
    CHECK(run_untouched_from(&rd, 0) && rd.out.n_tokens == SENTINEL_N);
    float lp1[2];
    CHECK_FAIL(glm5_session_append_scaled(dead, prompt, 2, GLM5_LOGITS_NONE, 1.0f, lp1, lp1), GLM5_ERR_INVALID_ARGUMENT,
               "session");
    run_free(&rd);

    run_free(&ra);
    run_free(&rb);
    glm5_session_free(base);
}

/* ---------------------------------------------------------------------------------------------
 * 5. Batches
 * --------------------------------------------------------------------------------------------- */

enum { NB = 6 };

struct batch_case {
    size_t n_prompt;
    int32_t prompt[24];
    int use_defaults; /* pass NULL params */
    glm5_sampling_params p;
    int32_t stop[3];
    size_t cap, n_top;
    int want;
};

static void batch_cases(struct batch_case c[NB], uint32_t V) {
    static const size_t lens[NB] = {1, 3, 7, 12, 20, 2};
    for (int i = 0; i < NB; i++) {
        memset(&c[i], 0, sizeof c[i]);
        c[i].n_prompt = lens[i];
        make_ids(c[i].prompt, lens[i], 7 + 6 * i, 3 + i, V);
        c[i].want = WANT_ALL;
    }
    c[0].p = sp_make(0.8f, 50, 0.9f, 0.0f, 12, 7, 5);
    c[1].p = sp_make(0.0f, 0, 1.0f, 0.0f, 9, 0, 2); /* greedy */
    c[2].p = sp_make(1.0f, 0, 1.0f, 0.05f, 20, 123456789012345ull, 0);
    c[2].want = 0; /* tokens only */
    c[3].p = sp_make(1.3f, 0, 0.5f, 0.0f, 30, 3, 64);
    c[3].stop[0] = 300; /* whether it comes up or not, batch and alone agree */
    c[3].stop[1] = 17;
    c[3].stop[2] = 250;
    c[3].p.stop_token_ids = c[3].stop;
    c[3].p.n_stop_token_ids = 3;
    c[3].p.ignore_eos = 0;
    c[4].use_defaults = 1; /* temperature 1, seed 0, 128 tokens, eos stops */
    glm5_sampling_params_init(&c[4].p);
    c[5].p = sp_make(0.6f, 1, 1.0f, 0.0f, 15, 99, 1);
    c[5].want = WANT_LP | WANT_TOP;
    for (int i = 0; i < NB; i++) {
        c[i].cap = c[i].p.max_new_tokens;
        c[i].n_top = c[i].p.n_top_logprobs;
    }
}

struct continuation {
    int32_t tokens[2];
    float lp[2];
};

/* Each case alone on model m: its run, and the 2 greedy tokens after it (they read the caches). */
static void batch_alone(glm5_model *m, const struct batch_case c[NB], struct run alone[NB], struct continuation k[NB]) {
    for (int i = 0; i < NB; i++) {
        glm5_session *s = prompt_session(m, c[i].prompt, c[i].n_prompt, 0, GLM5_LOGITS_NONE);
        run_init(&alone[i], c[i].cap, c[i].n_top, c[i].want);
        REQUIRE(glm5_session_sample(s, c[i].use_defaults ? NULL : &c[i].p, &alone[i].out) == GLM5_OK);
        REQUIRE(glm5_session_generate(s, 2, k[i].tokens, k[i].lp) == GLM5_OK);
        glm5_session_free(s);
    }
}

/* The batch in the given order on model m; every session's run and continuation must equal the
 * alone results. */
static void batch_check(glm5_model *m, const struct batch_case c[NB], const int order[NB], const struct run alone[NB],
                        const struct continuation k[NB]) {
    glm5_session *sessions[NB];
    const glm5_sampling_params *params[NB];
    glm5_sample_output *outs[NB];
    struct run runs[NB];
    for (int j = 0; j < NB; j++) {
        int i = order[j];
        sessions[j] = prompt_session(m, c[i].prompt, c[i].n_prompt, 0, GLM5_LOGITS_LAST);
        params[j] = c[i].use_defaults ? NULL : &c[i].p;
        run_init(&runs[j], c[i].cap, c[i].n_top, c[i].want);
        runs[j].out.status = 12345;
        outs[j] = &runs[j].out;
    }
    REQUIRE(glm5_sample_batch(sessions, NB, params, outs) == GLM5_OK);
    for (int j = 0; j < NB; j++) {
        int i = order[j];
        CHECK(runs[j].out.status == GLM5_OK);
        CHECK(same_run(&runs[j], &alone[i]));
        CHECK(run_untouched_from(&runs[j], runs[j].out.n_tokens));
        CHECK(sess_n_tokens(sessions[j]) == c[i].n_prompt + runs[j].out.n_tokens);
        size_t rows = 9, nf = 9;
        float *kept = sess_logits(sessions[j], &rows, &nf);
        CHECK(rows == 0); /* kept logits cleared */
        free(kept);
        struct continuation got;
        REQUIRE(glm5_session_generate(sessions[j], 2, got.tokens, got.lp) == GLM5_OK);
        CHECK(SAME(got.tokens, k[i].tokens, 2) && SAME(got.lp, k[i].lp, 2));
        run_free(&runs[j]);
        glm5_session_free(sessions[j]);
    }
}

static void test_sample_batch(const char *dir) {
    glm5_model *m1 = load_model(dir, 1);
    const uint32_t V = vocab_size(m1);
    struct batch_case c[NB];
    batch_cases(c, V);
    struct run alone[NB];
    struct continuation k[NB];
    g_case = "5. batch cases alone (1 thread)";
    batch_alone(m1, c, alone, k);
    for (int i = 0; i < NB; i++)
        printf("  batch case %d: prompt %zu, %zu tokens, finish %d\n", i, c[i].n_prompt, alone[i].out.n_tokens,
               (int)alone[i].out.finish_reason);
    /* The cases do differ: not all the same length. */
    CHECK(alone[0].out.n_tokens != alone[2].out.n_tokens);

    static const int orders[2][NB] = {{0, 1, 2, 3, 4, 5}, {3, 0, 5, 1, 4, 2}};
    for (int threads = 1; threads <= 3; threads++) {
        glm5_model *m = load_model(dir, threads);
        static char label[128];
        if (threads > 1) {
            snprintf(label, sizeof label, "5. alone with %d threads = alone with 1", threads);
            g_case = label;
            struct run again[NB];
            struct continuation k2[NB];
            batch_alone(m, c, again, k2);
            for (int i = 0; i < NB; i++) {
                CHECK(same_run(&again[i], &alone[i]));
                CHECK(SAME(k2[i].tokens, k[i].tokens, 2) && SAME(k2[i].lp, k[i].lp, 2));
                run_free(&again[i]);
            }
        }
        for (int o = 0; o < 2; o++) {
            snprintf(label, sizeof label, "5. glm5_sample_batch, %d threads, order %d", threads, o);
            g_case = label;
            batch_check(m, c, orders[o], alone, k);
        }
        glm5_model_free(m);
    }

    g_case = "5. glm5_sample_batch of one session";
    {
        glm5_session *s = prompt_session(m1, c[0].prompt, c[0].n_prompt, 0, GLM5_LOGITS_NONE);
        struct run r;
        run_init(&r, c[0].cap, c[0].n_top, c[0].want);
        const glm5_sampling_params *pp = &c[0].p;
        glm5_sample_output *oo = &r.out;
        REQUIRE(glm5_sample_batch(&s, 1, &pp, &oo) == GLM5_OK);
        CHECK(same_run(&r, &alone[0]));
        run_free(&r);
        glm5_session_free(s);
    }

    g_case = "5. glm5_sample_batch with a NULL params array (defaults for all)";
    {
        glm5_session *s[2];
        struct run r[2];
        glm5_sample_output *oo[2];
        for (int j = 0; j < 2; j++) {
            int i = j == 0 ? 4 : 1;
            s[j] = prompt_session(m1, c[i].prompt, c[i].n_prompt, 0, GLM5_LOGITS_NONE);
            run_init(&r[j], 128, 0, WANT_ALL);
            oo[j] = &r[j].out;
        }
        REQUIRE(glm5_sample_batch(s, 2, NULL, oo) == GLM5_OK);
        CHECK(same_run(&r[0], &alone[4]));
        struct run d;
        sample_fresh(m1, c[1].prompt, c[1].n_prompt, NULL, &d, 128, 0, WANT_ALL);
        CHECK(same_run(&r[1], &d));
        run_free(&d);
        for (int j = 0; j < 2; j++) {
            run_free(&r[j]);
            glm5_session_free(s[j]);
        }
    }
    for (int i = 0; i < NB; i++) run_free(&alone[i]);
    glm5_model_free(m1);
}

/* glm5_append_batch: chunks of different lengths onto sessions of different lengths (one empty)
 * equal per-session glm5_session_append, then the next sample agrees. */
static void test_append_batch(const char *dir) {
    enum { NA = 4 };
    static const size_t prefix[NA] = {0, 3, 10, 1}, chunk[NA] = {5, 1, 7, 12};
    for (int threads = 1; threads <= 3; threads += 2) {
        glm5_model *m = load_model(dir, threads);
        const uint32_t V = vocab_size(m);
        for (int keep = GLM5_LOGITS_NONE; keep <= GLM5_LOGITS_ALL; keep++) {
            static char label[96];
            snprintf(label, sizeof label, "5. glm5_append_batch, %d threads, keep %d", threads, keep);
            g_case = label;
            int32_t pre[NA][16], ch[NA][16];
            glm5_session *a[NA], *b[NA];
            const int32_t *chunks[NA];
            float lpa[NA][16], lpb[NA][16];
            float *lps[NA];
            for (int i = 0; i < NA; i++) {
                make_ids(pre[i], prefix[i], 5 + i, 1 + i, V);
                make_ids(ch[i], chunk[i], 13 + 2 * i, 40 + i, V);
                a[i] = prompt_session(m, pre[i], prefix[i], 0, GLM5_LOGITS_LAST);
                b[i] = prompt_session(m, pre[i], prefix[i], 0, GLM5_LOGITS_LAST);
                chunks[i] = ch[i];
                lps[i] = i == 1 ? NULL : lpa[i];
                REQUIRE(glm5_session_append(b[i], ch[i], chunk[i], (glm5_logits)keep, lpb[i]) == GLM5_OK);
            }
            REQUIRE(glm5_append_batch(a, NA, chunks, chunk, (glm5_logits)keep, lps) == GLM5_OK);
            for (int i = 0; i < NA; i++) {
                if (lps[i]) CHECK(SAME(lpa[i], lpb[i], chunk[i])); /* NaN of an empty session's first token too */
                struct snapshot sa = take_snapshot(a[i]), sb = take_snapshot(b[i]);
                CHECK(sa.n_tokens == prefix[i] + chunk[i]);
                CHECK(sa.n_tokens == sb.n_tokens && SAME(sa.tokens, sb.tokens, sa.n_tokens));
                CHECK(sa.rows == sb.rows && sa.n_floats == sb.n_floats && SAME(sa.logits, sb.logits, sa.n_floats));
                free_snapshot(&sa);
                free_snapshot(&sb);
                glm5_sampling_params p = sp_make(0.8f, 0, 0.95f, 0.0f, 6, 5 + (uint64_t)i, 3);
                struct run ra, rb;
                run_init(&ra, 6, 3, WANT_ALL);
                run_init(&rb, 6, 3, WANT_ALL);
                REQUIRE(glm5_session_sample(a[i], &p, &ra.out) == GLM5_OK);
                REQUIRE(glm5_session_sample(b[i], &p, &rb.out) == GLM5_OK);
                CHECK(same_run(&ra, &rb));
                run_free(&ra);
                run_free(&rb);
                glm5_session_free(a[i]);
                glm5_session_free(b[i]);
            }
        }
        /* A NULL logprobs array. */
        g_case = "5. glm5_append_batch with logprobs NULL";
        {
            int32_t x[3] = {4, 5, 6}, y[2] = {7, 8};
            const int32_t *chunks[2] = {x, y};
            size_t lens[2] = {3, 2};
            glm5_session *s[2] = {new_session(m, 0), new_session(m, 0)};
            REQUIRE(glm5_append_batch(s, 2, chunks, lens, GLM5_LOGITS_NONE, NULL) == GLM5_OK);
            CHECK(sess_n_tokens(s[0]) == 3 && sess_n_tokens(s[1]) == 2);
            glm5_session_free(s[0]);
            glm5_session_free(s[1]);
        }
        glm5_model_free(m);
    }
}

/* ---------------------------------------------------------------------------------------------
 * 6. Bad input: the right status, a message naming the field, nothing changed
 * --------------------------------------------------------------------------------------------- */

/* The prompt and good parameters every refused call is checked against. */
struct bad_ctx {
    glm5_model *m;
    uint32_t V;
    int32_t prompt[5];
    glm5_sampling_params good;
    struct run ref; /* good on an untouched session holding prompt */
};

enum out_change { OUT_AS_IS, OUT_CAPACITY_SHORT, OUT_TOKENS_NULL, OUT_STRUCT_SMALL, OUT_NULL };

/* The session still samples exactly as an untouched one. */
static void check_samples_as_untouched(struct bad_ctx *b, glm5_session *s) {
    struct run v;
    run_init(&v, b->good.max_new_tokens, b->good.n_top_logprobs, WANT_ALL);
    CHECK(glm5_session_sample(s, &b->good, &v.out) == GLM5_OK);
    CHECK(same_run(&v, &b->ref));
    run_free(&v);
}

static void refuse_sample(struct bad_ctx *b, const char *what, const glm5_sampling_params *p, enum out_change oc,
                          glm5_status want, const char *needle) {
    g_case = what;
    glm5_session *s = prompt_session(b->m, b->prompt, 5, 0, GLM5_LOGITS_LAST);
    struct snapshot before = take_snapshot(s);
    struct run r;
    run_init(&r, 300, GLM5_MAX_TOP_LOGPROBS, WANT_ALL);
    run_mark(&r);
    glm5_sample_output *out = &r.out;
    if (oc == OUT_CAPACITY_SHORT) r.out.capacity = p->max_new_tokens - 1;
    if (oc == OUT_TOKENS_NULL) r.out.tokens = NULL;
    if (oc == OUT_STRUCT_SMALL) r.out.struct_size = (uint32_t)(offsetof(glm5_sample_output, weight_version) - 4);
    if (oc == OUT_NULL) out = NULL;
    CHECK_FAIL(glm5_session_sample(s, p, out), want, needle);
    CHECK(run_untouched_from(&r, 0));
    CHECK(r.out.n_tokens == SENTINEL_N && r.out.finish_reason == SENTINEL_FINISH &&
          r.out.stop_token_id == SENTINEL_STOP);
    CHECK(same_snapshot(s, &before));
    check_samples_as_untouched(b, s);
    free_snapshot(&before);
    run_free(&r);
    glm5_session_free(s);
}

/* A batch of 4 sessions holding b->prompt (and good params) in which session `bad` is made bad
 * by `kind`; nothing may change, every out->status tells. */
enum batch_bad { BB_PARAM, BB_EMPTY, BB_FULL, BB_CAPACITY, BB_DEAD, BB_OUT_NULL, BB_STRUCT_SMALL };

static void refuse_batch_member(struct bad_ctx *b, const char *what, size_t bad, enum batch_bad kind,
                                const glm5_sampling_params *bad_params, glm5_status want, const char *needle) {
    enum { NS = 4 };
    g_case = what;
    glm5_session *s[NS];
    const glm5_sampling_params *params[NS];
    glm5_sample_output *outs[NS];
    struct run r[NS];
    struct snapshot before[NS];
    for (size_t i = 0; i < NS; i++) {
        if (i == bad && kind == BB_EMPTY) s[i] = new_session(b->m, 0);
        else if (i == bad && kind == BB_FULL)
            s[i] = prompt_session(b->m, b->prompt, 5, 5 + b->good.max_new_tokens - 1, GLM5_LOGITS_LAST);
        else s[i] = prompt_session(b->m, b->prompt, 5, 0, GLM5_LOGITS_LAST);
        params[i] = &b->good;
        run_init(&r[i], b->good.max_new_tokens, b->good.n_top_logprobs, WANT_ALL);
        run_mark(&r[i]);
        r[i].out.status = 12345;
        outs[i] = &r[i].out;
    }
    if (kind == BB_PARAM) params[bad] = bad_params;
    if (kind == BB_CAPACITY) r[bad].out.capacity = b->good.max_new_tokens - 1;
    if (kind == BB_STRUCT_SMALL) r[bad].out.struct_size = 8;
    if (kind == BB_OUT_NULL) outs[bad] = NULL;
    if (kind == BB_DEAD) {
        glm5_session_free(s[bad]);
    }
    for (size_t i = 0; i < NS; i++)
        if (!(i == bad && kind == BB_DEAD)) before[i] = take_snapshot(s[i]);
    CHECK_FAIL(glm5_sample_batch(s, NS, params, outs), want, needle);
    CHECK(msg_names_index(bad));
    for (size_t i = 0; i < NS; i++) {
        if (outs[i] && !(i == bad && kind == BB_STRUCT_SMALL)) {
            CHECK(r[i].out.status == (int32_t)(i == bad ? want : GLM5_OK));
            /* The header does not say whether a failed batch writes finish_reason (GLM5_FINISH_NONE)
             * and n_tokens (0) or leaves them as they were; either is accepted. */
            CHECK(r[i].out.finish_reason == GLM5_FINISH_NONE || r[i].out.finish_reason == SENTINEL_FINISH);
            CHECK(r[i].out.n_tokens == 0 || r[i].out.n_tokens == SENTINEL_N);
        }
        CHECK(run_untouched_from(&r[i], 0));
    }
    for (size_t i = 0; i < NS; i++) {
        if (i == bad && kind == BB_DEAD) continue;
        CHECK(same_snapshot(s[i], &before[i]));
        free_snapshot(&before[i]);
        if (i != bad || kind == BB_PARAM || kind == BB_CAPACITY || kind == BB_OUT_NULL || kind == BB_STRUCT_SMALL)
            check_samples_as_untouched(b, s[i]);
        glm5_session_free(s[i]);
    }
    for (size_t i = 0; i < NS; i++) run_free(&r[i]);
}

static void test_bad_input(glm5_model *m, glm5_model *other_model) {
    struct bad_ctx b;
    b.m = m;
    b.V = vocab_size(m);
    make_ids(b.prompt, 5, 19, 11, b.V);
    b.good = sp_make(0.8f, 50, 0.9f, 0.05f, 4, 11, 3);
    g_case = "6. reference run";
    {
        /* The reference is an untouched fork of a fresh session. */
        glm5_session *s = prompt_session(m, b.prompt, 5, 0, GLM5_LOGITS_NONE), *f = NULL;
        REQUIRE(glm5_session_fork(s, &f) == GLM5_OK);
        run_init(&b.ref, b.good.max_new_tokens, b.good.n_top_logprobs, WANT_ALL);
        REQUIRE(glm5_session_sample(f, &b.good, &b.ref.out) == GLM5_OK);
        REQUIRE(b.ref.out.n_tokens == b.good.max_new_tokens);
        glm5_session_free(f);
        glm5_session_free(s);
    }

    glm5_sampling_params p;
#define BAD_PARAM(field, value, needle)                                                 \
    do {                                                                                \
        p = b.good;                                                                     \
        p.field = (value);                                                              \
        refuse_sample(&b, "6. " #field " = " #value, &p, OUT_AS_IS, GLM5_ERR_INVALID_ARGUMENT, needle); \
    } while (0)
    BAD_PARAM(temperature, -1.0f, "temperature");
    BAD_PARAM(temperature, NAN, "temperature");
    BAD_PARAM(temperature, INFINITY, "temperature");
    BAD_PARAM(top_p, 0.0f, "top_p");
    BAD_PARAM(top_p, 1.5f, "top_p");
    BAD_PARAM(top_p, NAN, "top_p");
    BAD_PARAM(top_k, -1, "top_k");
    BAD_PARAM(min_p, 1.0f, "min_p");
    BAD_PARAM(min_p, -0.5f, "min_p");
    BAD_PARAM(min_p, NAN, "min_p");
    BAD_PARAM(n_top_logprobs, 65, "n_top_logprobs");
    int32_t stop_bad_hi[2] = {5, 320}, stop_bad_neg[1] = {-1};
    p = b.good;
    p.stop_token_ids = stop_bad_hi;
    p.n_stop_token_ids = 2;
    refuse_sample(&b, "6. stop id 320 (= vocab_size)", &p, OUT_AS_IS, GLM5_ERR_INVALID_ARGUMENT, "stop_token_ids");
    p.stop_token_ids = stop_bad_neg;
    p.n_stop_token_ids = 1;
    refuse_sample(&b, "6. stop id -1", &p, OUT_AS_IS, GLM5_ERR_INVALID_ARGUMENT, "stop_token_ids");
    p.stop_token_ids = NULL;
    p.n_stop_token_ids = 2;
    refuse_sample(&b, "6. n_stop_token_ids 2, stop_token_ids NULL", &p, OUT_AS_IS, GLM5_ERR_INVALID_ARGUMENT,
                  "stop_token_ids");
    int32_t *many = xmalloc(4097 * sizeof(int32_t));
    for (int i = 0; i < 4097; i++) many[i] = 300;
    p.stop_token_ids = many;
    p.n_stop_token_ids = 4097;
    refuse_sample(&b, "6. n_stop_token_ids 4097", &p, OUT_AS_IS, GLM5_ERR_INVALID_ARGUMENT, "n_stop_token_ids");
    /* 4096 is allowed: ids that the reference run does not produce change nothing. */
    int32_t unused = 0;
    for (int32_t id = 2; id < (int32_t)b.V; id++) {
        int seen = 0;
        for (size_t i = 0; i < b.ref.out.n_tokens; i++) seen |= b.ref.tokens[i] == id;
        if (!seen) {
            unused = id;
            break;
        }
    }
    for (int i = 0; i < 4096; i++) many[i] = unused;
    g_case = "6. n_stop_token_ids 4096 (ids that do not come up) accepted";
    {
        glm5_session *s = prompt_session(m, b.prompt, 5, 0, GLM5_LOGITS_NONE);
        p = b.good;
        p.stop_token_ids = many;
        p.n_stop_token_ids = 4096;
        struct run r;
        run_init(&r, p.max_new_tokens, p.n_top_logprobs, WANT_ALL);
        CHECK(glm5_session_sample(s, &p, &r.out) == GLM5_OK);
        CHECK(same_run(&r, &b.ref));
        run_free(&r);
        glm5_session_free(s);
    }
    free(many);
    p = b.good;
    p.struct_size = 4;
    refuse_sample(&b, "6. params struct_size 4", &p, OUT_AS_IS, GLM5_ERR_INVALID_ARGUMENT, "struct_size");
    /* 4 bytes short of the first version (which ends where 0.4's speculative starts). */
    p.struct_size = (uint32_t)offsetof(glm5_sampling_params, speculative) - 4;
    refuse_sample(&b, "6. params struct_size v1 - 4", &p, OUT_AS_IS, GLM5_ERR_INVALID_ARGUMENT, "struct_size");
    p.struct_size = 0;
    refuse_sample(&b, "6. params struct_size 0", &p, OUT_AS_IS, GLM5_ERR_INVALID_ARGUMENT, "struct_size");
    refuse_sample(&b, "6. capacity < max_new_tokens", &b.good, OUT_CAPACITY_SHORT, GLM5_ERR_INVALID_ARGUMENT,
                  "capacity");
    refuse_sample(&b, "6. out->tokens NULL", &b.good, OUT_TOKENS_NULL, GLM5_ERR_INVALID_ARGUMENT, "tokens");
    refuse_sample(&b, "6. out struct_size sizeof - 4", &b.good, OUT_STRUCT_SMALL, GLM5_ERR_INVALID_ARGUMENT,
                  "struct_size");
    refuse_sample(&b, "6. out NULL", &b.good, OUT_NULL, GLM5_ERR_INVALID_ARGUMENT, "out");
    p = b.good;
    p.max_new_tokens = 256 - 5 + 1;
    refuse_sample(&b, "6. max_new_tokens do not fit (CONTEXT_FULL)", &p, OUT_AS_IS, GLM5_ERR_CONTEXT_FULL, "256");

    g_case = "6. NULL session, model handle as session";
    {
        struct run r;
        run_init(&r, 8, 3, WANT_ALL);
        run_mark(&r);
        CHECK_FAIL(glm5_session_sample(NULL, &b.good, &r.out), GLM5_ERR_INVALID_ARGUMENT, "session");
        CHECK_FAIL(glm5_session_sample((glm5_session *)(void *)m, &b.good, &r.out), GLM5_ERR_INVALID_ARGUMENT,
                   "session");
        CHECK(run_untouched_from(&r, 0) && r.out.n_tokens == SENTINEL_N);
        run_free(&r);
    }

    g_case = "6. empty session";
    {
        glm5_session *s = new_session(m, 0);
        struct run r;
        run_init(&r, 8, 3, WANT_ALL);
        run_mark(&r);
        CHECK(glm5_session_sample(s, &b.good, &r.out) == GLM5_ERR_INVALID_ARGUMENT);
        CHECK(strstr(glm5_last_error(), "empty") || strstr(glm5_last_error(), "token"));
        CHECK(run_untouched_from(&r, 0) && r.out.n_tokens == SENTINEL_N);
        CHECK(sess_n_tokens(s) == 0);
        REQUIRE(glm5_session_append(s, b.prompt, 5, GLM5_LOGITS_NONE, NULL) == GLM5_OK);
        check_samples_as_untouched(&b, s);
        run_free(&r);
        glm5_session_free(s);
    }

    g_case = "6. larger struct_size accepted, the tail ignored and not written";
    {
        struct big_params {
            glm5_sampling_params p;
            unsigned char tail[32];
        } bp;
        struct big_out {
            glm5_sample_output o;
            unsigned char tail[32];
        } bo;
        bp.p = b.good;
        bp.p.struct_size = (uint32_t)sizeof bp;
        memset(bp.tail, 0xFF, sizeof bp.tail);
        struct run r;
        run_init(&r, b.good.max_new_tokens, b.good.n_top_logprobs, WANT_ALL);
        bo.o = r.out;
        bo.o.struct_size = (uint32_t)sizeof bo;
        memset(bo.tail, SENTINEL_BYTE, sizeof bo.tail);
        glm5_session *s = prompt_session(m, b.prompt, 5, 0, GLM5_LOGITS_NONE);
        CHECK(glm5_session_sample(s, &bp.p, &bo.o) == GLM5_OK);
        r.out = bo.o;
        r.out.struct_size = (uint32_t)sizeof(glm5_sample_output);
        CHECK(same_run(&r, &b.ref));
        CHECK(bytes_are_sentinel(bo.tail, sizeof bo.tail));
        run_free(&r);
        glm5_session_free(s);
    }

    /* One bad session among four (index 2): nothing runs, nothing changes. */
    p = b.good;
    p.top_p = 0.0f;
    refuse_batch_member(&b, "6. batch: session 2 has top_p 0", 2, BB_PARAM, &p, GLM5_ERR_INVALID_ARGUMENT, "top_p");
    p = b.good;
    p.temperature = NAN;
    refuse_batch_member(&b, "6. batch: session 2 has temperature NaN", 2, BB_PARAM, &p, GLM5_ERR_INVALID_ARGUMENT,
                        "temperature");
    refuse_batch_member(&b, "6. batch: session 2 is empty", 2, BB_EMPTY, NULL, GLM5_ERR_INVALID_ARGUMENT, "2");
    refuse_batch_member(&b, "6. batch: session 2 cannot fit its tokens", 2, BB_FULL, NULL, GLM5_ERR_CONTEXT_FULL, "2");
    refuse_batch_member(&b, "6. batch: session 2 capacity short", 2, BB_CAPACITY, NULL, GLM5_ERR_INVALID_ARGUMENT,
                        "capacity");
    refuse_batch_member(&b, "6. batch: outs[2] NULL", 2, BB_OUT_NULL, NULL, GLM5_ERR_INVALID_ARGUMENT, "2");
    refuse_batch_member(&b, "6. batch: outs[2] struct_size 8", 2, BB_STRUCT_SMALL, NULL, GLM5_ERR_INVALID_ARGUMENT,
                        "struct_size");
    refuse_batch_member(&b, "6. batch: session 2 freed", 2, BB_DEAD, NULL, GLM5_ERR_INVALID_ARGUMENT, "2");

    /* Batch-level errors. */
    {
        glm5_session *x = prompt_session(m, b.prompt, 5, 0, GLM5_LOGITS_NONE);
        glm5_session *y = prompt_session(m, b.prompt, 5, 0, GLM5_LOGITS_NONE);
        glm5_session *z = prompt_session(other_model, b.prompt, 5, 0, GLM5_LOGITS_NONE);
        struct run r[3];
        glm5_sample_output *outs[3];
        const glm5_sampling_params *params[3] = {&b.good, &b.good, &b.good};
        for (int i = 0; i < 3; i++) {
            run_init(&r[i], b.good.max_new_tokens, b.good.n_top_logprobs, WANT_ALL);
            outs[i] = &r[i].out;
        }

        g_case = "6. batch: the same session twice";
        glm5_session *dup[3] = {x, y, x};
        CHECK(glm5_sample_batch(dup, 3, params, outs) == GLM5_ERR_INVALID_ARGUMENT);
        CHECK(msg_names_index(2) || msg_names_index(0));
        CHECK(sess_n_tokens(x) == 5 && sess_n_tokens(y) == 5);
        for (int i = 0; i < 3; i++) CHECK(run_untouched_from(&r[i], 0));

        g_case = "6. batch: sessions of two models";
        glm5_session *mixed[2] = {x, z};
        CHECK_FAIL(glm5_sample_batch(mixed, 2, params, outs), GLM5_ERR_INVALID_ARGUMENT, "model");
        CHECK(msg_names_index(1));
        CHECK(sess_n_tokens(x) == 5 && sess_n_tokens(z) == 5);

        g_case = "6. batch: NULL sessions array";
        CHECK_FAIL(glm5_sample_batch(NULL, 2, params, outs), GLM5_ERR_INVALID_ARGUMENT, "sessions");
        g_case = "6. batch: NULL outs array";
        glm5_session *two[2] = {x, y};
        CHECK_FAIL(glm5_sample_batch(two, 2, params, NULL), GLM5_ERR_INVALID_ARGUMENT, "outs");
        g_case = "6. batch: n = 0";
        CHECK(glm5_sample_batch(two, 0, params, outs) == GLM5_ERR_INVALID_ARGUMENT);
        CHECK(glm5_last_error()[0] != 0);
        g_case = "6. batch: n = 4097";
        {
            glm5_session **lots = xmalloc(4097 * sizeof *lots);
            glm5_sample_output **louts = xmalloc(4097 * sizeof *louts);
            for (int i = 0; i < 4097; i++) {
                lots[i] = x;
                louts[i] = &r[0].out;
            }
            CHECK(glm5_sample_batch(lots, 4097, NULL, louts) == GLM5_ERR_INVALID_ARGUMENT);
            free(lots);
            free(louts);
        }
        CHECK(sess_n_tokens(x) == 5 && sess_n_tokens(y) == 5);

        /* glm5_append_batch: the same checks, the message names the session index. */
        int32_t ok_chunk[2] = {3, 4}, bad_chunk[3] = {3, 4, 320}; /* token index 2, session index 1 */
        const int32_t *chunks[3] = {ok_chunk, ok_chunk, ok_chunk};
        size_t lens[3] = {2, 2, 2};
        float lp[3][4];
        float *lps[3] = {lp[0], lp[1], lp[2]};
        struct snapshot sx = take_snapshot(x), sy = take_snapshot(y);
        g_case = "6. append_batch: the same session twice";
        CHECK(glm5_append_batch(dup, 3, chunks, lens, GLM5_LOGITS_LAST, lps) == GLM5_ERR_INVALID_ARGUMENT);
        CHECK(msg_names_index(2) || msg_names_index(0));
        g_case = "6. append_batch: sessions of two models";
        CHECK_FAIL(glm5_append_batch(mixed, 2, chunks, lens, GLM5_LOGITS_LAST, lps), GLM5_ERR_INVALID_ARGUMENT,
                   "model");
        g_case = "6. append_batch: id 320 in chunk 1";
        const int32_t *chunks_bad[2] = {ok_chunk, bad_chunk};
        size_t lens_bad[2] = {2, 3};
        CHECK_FAIL(glm5_append_batch(two, 2, chunks_bad, lens_bad, GLM5_LOGITS_LAST, lps), GLM5_ERR_INVALID_ARGUMENT,
                   "320");
        CHECK(msg_names_index(1));
        g_case = "6. append_batch: chunk 1 of length 0";
        size_t lens_zero[2] = {2, 0};
        CHECK(glm5_append_batch(two, 2, chunks, lens_zero, GLM5_LOGITS_LAST, lps) == GLM5_ERR_INVALID_ARGUMENT);
        CHECK(msg_names_index(1));
        g_case = "6. append_batch: chunk 1 NULL";
        const int32_t *chunks_null[2] = {ok_chunk, NULL};
        CHECK(glm5_append_batch(two, 2, chunks_null, lens, GLM5_LOGITS_LAST, lps) == GLM5_ERR_INVALID_ARGUMENT);
        CHECK(msg_names_index(1));
        g_case = "6. append_batch: NULL arrays, n 0, bad keep";
        CHECK_FAIL(glm5_append_batch(NULL, 2, chunks, lens, GLM5_LOGITS_LAST, lps), GLM5_ERR_INVALID_ARGUMENT,
                   "sessions");
        CHECK_FAIL(glm5_append_batch(two, 2, NULL, lens, GLM5_LOGITS_LAST, lps), GLM5_ERR_INVALID_ARGUMENT, "tokens");
        CHECK_FAIL(glm5_append_batch(two, 2, chunks, NULL, GLM5_LOGITS_LAST, lps), GLM5_ERR_INVALID_ARGUMENT,
                   "n_tokens");
        CHECK(glm5_append_batch(two, 0, chunks, lens, GLM5_LOGITS_LAST, lps) == GLM5_ERR_INVALID_ARGUMENT);
        CHECK_FAIL(glm5_append_batch(two, 2, chunks, lens, (glm5_logits)3, lps), GLM5_ERR_INVALID_ARGUMENT, "keep");
        g_case = "6. append_batch: chunk 1 does not fit (CONTEXT_FULL)";
        {
            glm5_session *tight = prompt_session(m, b.prompt, 5, 6, GLM5_LOGITS_LAST);
            struct snapshot st = take_snapshot(tight);
            glm5_session *pair[2] = {x, tight};
            CHECK(glm5_append_batch(pair, 2, chunks, lens, GLM5_LOGITS_LAST, lps) == GLM5_ERR_CONTEXT_FULL);
            CHECK(msg_names_index(1));
            CHECK(same_snapshot(tight, &st));
            free_snapshot(&st);
            glm5_session_free(tight);
        }
        g_case = "6. append_batch failures changed no session";
        CHECK(same_snapshot(x, &sx));
        CHECK(same_snapshot(y, &sy));
        free_snapshot(&sx);
        free_snapshot(&sy);
        check_samples_as_untouched(&b, x);
        check_samples_as_untouched(&b, y);

        for (int i = 0; i < 3; i++) run_free(&r[i]);
        glm5_session_free(x);
        glm5_session_free(y);
        glm5_session_free(z);
    }

    g_case = "6. append_scaled and score_scaled: bad temperature, NULL outputs";
    {
        glm5_session *s = prompt_session(m, b.prompt, 5, 0, GLM5_LOGITS_LAST);
        struct snapshot sn = take_snapshot(s);
        float lp[2] = {7, 7}, slp[2] = {7, 7};
        int32_t two_ids[2] = {3, 4};
        static const float bad_t[3] = {-1.0f, NAN, INFINITY};
        for (int i = 0; i < 3; i++) {
            CHECK_FAIL(glm5_session_append_scaled(s, two_ids, 2, GLM5_LOGITS_LAST, bad_t[i], lp, slp),
                       GLM5_ERR_INVALID_ARGUMENT, "temperature");
            CHECK_FAIL(glm5_model_score_scaled(m, b.prompt, 5, bad_t[i], lp, slp), GLM5_ERR_INVALID_ARGUMENT,
                       "temperature");
        }
        CHECK_FAIL(glm5_session_append_scaled(s, NULL, 2, GLM5_LOGITS_LAST, 1.0f, lp, slp), GLM5_ERR_INVALID_ARGUMENT,
                   "tokens");
        int32_t oob[2] = {3, 320};
        CHECK_FAIL(glm5_session_append_scaled(s, oob, 2, GLM5_LOGITS_LAST, 1.0f, lp, slp), GLM5_ERR_INVALID_ARGUMENT,
                   "index 1");
        CHECK(lp[0] == 7 && lp[1] == 7 && slp[0] == 7 && slp[1] == 7);
        CHECK(same_snapshot(s, &sn));
        check_samples_as_untouched(&b, s);
        float sc[5];
        CHECK(glm5_model_score_scaled(m, b.prompt, 5, 1.0f, NULL, NULL) == GLM5_ERR_INVALID_ARGUMENT);
        CHECK_FAIL(glm5_model_score_scaled(NULL, b.prompt, 5, 1.0f, sc, sc), GLM5_ERR_INVALID_ARGUMENT, "model");
        CHECK_FAIL(glm5_model_score_scaled(m, NULL, 5, 1.0f, sc, sc), GLM5_ERR_INVALID_ARGUMENT, "tokens");
        CHECK_FAIL(glm5_model_score_scaled(m, b.prompt, 0, 1.0f, sc, sc), GLM5_ERR_INVALID_ARGUMENT, "n_tokens");
        CHECK_FAIL(glm5_model_score_scaled(m, oob, 2, 1.0f, sc, sc), GLM5_ERR_INVALID_ARGUMENT, "index 1");
        free_snapshot(&sn);
        glm5_session_free(s);
    }
#undef BAD_PARAM
    run_free(&b.ref);
}

/* ---------------------------------------------------------------------------------------------
 * 7. Threads: BUSY while sampling, cancel
 * --------------------------------------------------------------------------------------------- */

struct sampler_arg {
    glm5_session *session;
    const glm5_sampling_params *params;
    glm5_sample_output *out;
    glm5_session **batch; /* non-NULL: run glm5_sample_batch over batch[0..n_batch) */
    size_t n_batch;
    const glm5_sampling_params *const *batch_params;
    glm5_sample_output *const *batch_outs;
    glm5_status status;
    long n_busy_starts; /* attempts that found the session in use */
    atomic_int done;
};

/* Runs the sampling call. The main thread's polling (glm5_session_n_tokens) holds the session for
 * a moment now and then, so the call may find it in use before it starts: GLM5_ERR_BUSY, with
 * nothing changed. Then it is simply tried again, as a host would. */
static void *sampler_thread(void *arg) {
    struct sampler_arg *a = arg;
    for (long attempt = 0; attempt < 10000000; attempt++) {
        if (a->batch) a->status = glm5_sample_batch(a->batch, a->n_batch, a->batch_params, a->batch_outs);
        else a->status = glm5_session_sample(a->session, a->params, a->out);
        if (a->status != GLM5_ERR_BUSY) break;
        a->n_busy_starts++;
        sched_yield();
    }
    atomic_store(&a->done, 1);
    return NULL;
}

/* Spin until a call on s is seen running (glm5_session_n_tokens answers BUSY) or the thread is
 * done; returns 1 if seen running. Any answer but OK and BUSY counts in *n_other. */
static int wait_running(glm5_session *s, struct sampler_arg *a, int *n_other) {
    while (!atomic_load(&a->done)) {
        size_t n;
        glm5_status st = glm5_session_n_tokens(s, &n);
        if (st == GLM5_ERR_BUSY) return 1;
        if (st != GLM5_OK) ++*n_other;
        sched_yield();
    }
    return 0;
}

static void test_busy(glm5_model *m) {
    const uint32_t V = vocab_size(m);
    int32_t prompt[3];
    make_ids(prompt, 3, 29, 5, V);
    enum { N = 200 };
    glm5_sampling_params p = sp_make(1.0f, 0, 1.0f, 0.0f, N, 3, 2);
    struct run ref;
    g_case = "7. undisturbed 200-token run";
    sample_fresh(m, prompt, 3, &p, &ref, N, 2, WANT_ALL);
    REQUIRE(ref.out.n_tokens == N);

    int busy_appends = 0, ok_appends = 0, other = 0, attempts = 0;
    for (attempts = 1; attempts <= 5 && busy_appends == 0; attempts++) {
        g_case = "7. other calls while a 200-token sample runs";
        glm5_session *s = prompt_session(m, prompt, 3, 0, GLM5_LOGITS_NONE);
        struct run r;
        run_init(&r, N, 2, WANT_ALL);
        struct sampler_arg a;
        memset(&a, 0, sizeof a);
        a.session = s;
        a.params = &p;
        a.out = &r.out;
        atomic_init(&a.done, 0);
        pthread_t t;
        REQUIRE(pthread_create(&t, NULL, sampler_thread, &a) == 0);
        int ok_here = 0;
        while (!atomic_load(&a.done)) {
            if (!wait_running(s, &a, &other)) break;
            /* The sampler was running a moment ago: an append is refused, unless the sampler has
             * just finished (then it runs after the sampled tokens). */
            int32_t tok = 9;
            glm5_status st = glm5_session_append(s, &tok, 1, GLM5_LOGITS_NONE, NULL);
            if (st == GLM5_ERR_BUSY) busy_appends++;
            else if (st == GLM5_OK) ok_here++;
            else other++;
            glm5_session *f = NULL;
            st = glm5_session_fork(s, &f);
            if (st == GLM5_OK) glm5_session_free(f);
            else if (st != GLM5_ERR_BUSY) other++;
            struct run r2;
            run_init(&r2, 1, 0, 0);
            glm5_sampling_params p1 = sp_make(0.0f, 0, 1.0f, 0.0f, 1, 0, 0);
            st = glm5_session_sample(s, &p1, &r2.out);
            if (st == GLM5_OK) ok_here += 1; /* one more token after the sampled ones */
            else if (st != GLM5_ERR_BUSY) other++;
            run_free(&r2);
        }
        REQUIRE(pthread_join(t, NULL) == 0);
        ok_appends += ok_here;
        CHECK(a.status == GLM5_OK);
        CHECK(other == 0);
        /* The sampler's tokens are those of the undisturbed run: nothing slipped in. */
        CHECK(same_run(&r, &ref));
        CHECK(sess_n_tokens(s) == 3 + N + (size_t)ok_here);
        size_t n = 0;
        int32_t *held = sess_tokens(s, &n);
        CHECK(n >= 3 + N && SAME(held + 3, ref.tokens, N));
        free(held);
        run_free(&r);
        glm5_session_free(s);
    }
    printf("  200-token sample: %d appends got GLM5_ERR_BUSY, %d ran after it (%d attempt(s))\n", busy_appends,
           ok_appends, attempts - 1);
    CHECK(busy_appends >= 1);

    /* Cancel from another thread while the sample runs. */
    int cancelled_mid_run = 0;
    for (attempts = 1; attempts <= 5 && !cancelled_mid_run; attempts++) {
        g_case = "7. glm5_session_cancel from another thread";
        glm5_session *s = prompt_session(m, prompt, 3, 0, GLM5_LOGITS_NONE);
        struct run r;
        run_init(&r, N, 2, WANT_ALL);
        struct sampler_arg a;
        memset(&a, 0, sizeof a);
        a.session = s;
        a.params = &p;
        a.out = &r.out;
        atomic_init(&a.done, 0);
        pthread_t t;
        REQUIRE(pthread_create(&t, NULL, sampler_thread, &a) == 0);
        int other = 0, seen = wait_running(s, &a, &other);
        CHECK(glm5_session_cancel(s) == GLM5_OK);
        CHECK(other == 0);
        REQUIRE(pthread_join(t, NULL) == 0);
        CHECK(a.status == GLM5_OK);
        size_t n = r.out.n_tokens;
        CHECK(n <= N);
        CHECK(sess_n_tokens(s) == 3 + n);
        CHECK(run_matches_at(&ref, 0, &r, n)); /* the tokens so far are the undisturbed ones */
        CHECK(run_untouched_from(&r, n));
        struct run next;
        run_init(&next, 5, 2, WANT_ALL);
        glm5_sampling_params p5 = p;
        p5.max_new_tokens = 5;
        if (r.out.finish_reason == GLM5_FINISH_CANCELLED) {
            CHECK(r.out.stop_token_id == -1);
            cancelled_mid_run = seen;
            /* The cancel was consumed: the next call runs, and continues the same sequence. */
            REQUIRE(glm5_session_sample(s, &p5, &next.out) == GLM5_OK);
            CHECK(next.out.finish_reason == GLM5_FINISH_LENGTH && next.out.n_tokens == 5);
            if (n + 5 <= N) CHECK(run_matches_at(&ref, n, &next, 5));
            printf("  cancelled after %zu of %d tokens\n", n, N);
        } else {
            /* Too late: the run finished, and the cancel is kept for the next call. */
            CHECK(r.out.finish_reason == GLM5_FINISH_LENGTH && n == N);
            REQUIRE(glm5_session_sample(s, &p5, &next.out) == GLM5_OK);
            CHECK(next.out.finish_reason == GLM5_FINISH_CANCELLED && next.out.n_tokens == 0);
        }
        run_free(&next);
        run_free(&r);
        glm5_session_free(s);
    }
    CHECK(cancelled_mid_run);

    /* Cancel one session of a running batch: it stops, the other runs to the end. */
    int batch_cancelled = 0;
    for (attempts = 1; attempts <= 5 && !batch_cancelled; attempts++) {
        g_case = "7. cancel one session of a running batch";
        int32_t prompt2[4];
        make_ids(prompt2, 4, 37, 8, V);
        glm5_sampling_params p2 = sp_make(0.9f, 0, 1.0f, 0.0f, N, 77, 2);
        struct run ref2;
        sample_fresh(m, prompt2, 4, &p2, &ref2, N, 2, WANT_ALL);
        glm5_session *s[2] = {prompt_session(m, prompt, 3, 0, GLM5_LOGITS_NONE),
                              prompt_session(m, prompt2, 4, 0, GLM5_LOGITS_NONE)};
        struct run r[2];
        run_init(&r[0], N, 2, WANT_ALL);
        run_init(&r[1], N, 2, WANT_ALL);
        const glm5_sampling_params *pp[2] = {&p, &p2};
        glm5_sample_output *oo[2] = {&r[0].out, &r[1].out};
        struct sampler_arg a;
        memset(&a, 0, sizeof a);
        a.batch = s;
        a.n_batch = 2;
        a.batch_params = pp;
        a.batch_outs = oo;
        atomic_init(&a.done, 0);
        pthread_t t;
        REQUIRE(pthread_create(&t, NULL, sampler_thread, &a) == 0);
        /* Both sessions are claimed before the first token: once both are seen in use, the batch
         * runs (their 200 tokens take a while). */
        int other = 0, seen = wait_running(s[0], &a, &other) && wait_running(s[1], &a, &other);
        glm5_status st = GLM5_ERR_BUSY;
        if (seen) {
            /* Refused while the batch runs; it can only run once the batch has returned. */
            int32_t tok = 9;
            st = glm5_session_append(s[1], &tok, 1, GLM5_LOGITS_NONE, NULL);
            CHECK(st == GLM5_ERR_BUSY || st == GLM5_OK);
        }
        CHECK(glm5_session_cancel(s[0]) == GLM5_OK);
        REQUIRE(pthread_join(t, NULL) == 0);
        CHECK(other == 0);
        if (st == GLM5_OK) {
            CHECK(sess_n_tokens(s[1]) == 4 + N + 1);
            REQUIRE(glm5_session_truncate(s[1], 4 + N) == GLM5_OK);
        }
        CHECK(a.status == GLM5_OK);
        CHECK(r[0].out.status == GLM5_OK && r[1].out.status == GLM5_OK);
        CHECK(same_run(&r[1], &ref2));
        CHECK(run_matches_at(&ref, 0, &r[0], r[0].out.n_tokens));
        CHECK(sess_n_tokens(s[0]) == 3 + r[0].out.n_tokens);
        if (r[0].out.finish_reason == GLM5_FINISH_CANCELLED) {
            batch_cancelled = seen;
            printf("  batch: session 0 cancelled after %zu tokens, session 1 ran %zu\n", r[0].out.n_tokens,
                   r[1].out.n_tokens);
        } else {
            CHECK(r[0].out.finish_reason == GLM5_FINISH_LENGTH);
        }
        run_free(&r[0]);
        run_free(&r[1]);
        run_free(&ref2);
        glm5_session_free(s[0]);
        glm5_session_free(s[1]);
    }
    CHECK(batch_cancelled);

    /* A cancel with no call running stops the next sampling call before its first token. */
    g_case = "7. pending cancel";
    {
        glm5_sampling_params p8 = p;
        p8.max_new_tokens = 8;
        glm5_session *s = prompt_session(m, prompt, 3, 0, GLM5_LOGITS_LAST);
        struct snapshot sn = take_snapshot(s);
        CHECK(glm5_session_cancel(s) == GLM5_OK);
        CHECK(same_snapshot(s, &sn)); /* cancel itself changes nothing */
        struct run r;
        run_init(&r, 8, 2, WANT_ALL);
        run_mark(&r);
        CHECK(glm5_session_sample(s, &p8, &r.out) == GLM5_OK);
        CHECK(r.out.n_tokens == 0);
        CHECK(r.out.finish_reason == GLM5_FINISH_CANCELLED);
        CHECK(r.out.stop_token_id == -1);
        CHECK(run_untouched_from(&r, 0));
        CHECK(sess_n_tokens(s) == 3);
        run_free(&r);
        run_init(&r, 8, 2, WANT_ALL);
        CHECK(glm5_session_sample(s, &p8, &r.out) == GLM5_OK); /* consumed: this one runs */
        CHECK(r.out.finish_reason == GLM5_FINISH_LENGTH && r.out.n_tokens == 8);
        CHECK(run_matches_at(&ref, 0, &r, 8));
        run_free(&r);
        free_snapshot(&sn);

        g_case = "7. a pending cancel is neither observed nor consumed by max_new_tokens 0";
        REQUIRE(glm5_session_truncate(s, 3) == GLM5_OK);
        CHECK(glm5_session_cancel(s) == GLM5_OK);
        glm5_sampling_params p0 = p;
        p0.max_new_tokens = 0;
        run_init(&r, 1, 2, WANT_ALL);
        run_mark(&r);
        CHECK(glm5_session_sample(s, &p0, &r.out) == GLM5_OK);
        CHECK(r.out.n_tokens == 0 && r.out.finish_reason == GLM5_FINISH_LENGTH && r.out.stop_token_id == -1);
        CHECK(run_untouched_from(&r, 0));
        run_free(&r);
        run_init(&r, 8, 2, WANT_ALL);
        CHECK(glm5_session_sample(s, &p8, &r.out) == GLM5_OK);
        CHECK(r.out.finish_reason == GLM5_FINISH_CANCELLED && r.out.n_tokens == 0);
        run_free(&r);
        CHECK(sess_n_tokens(s) == 3);

        g_case = "7. pending cancel survives an append (not a sampling call)";
        REQUIRE(glm5_session_truncate(s, 3) == GLM5_OK);
        CHECK(glm5_session_cancel(s) == GLM5_OK);
        REQUIRE(glm5_session_append(s, &ref.tokens[0], 1, GLM5_LOGITS_NONE, NULL) == GLM5_OK);
        run_init(&r, 8, 2, WANT_ALL);
        CHECK(glm5_session_sample(s, &p8, &r.out) == GLM5_OK);
        CHECK(r.out.finish_reason == GLM5_FINISH_CANCELLED && r.out.n_tokens == 0);
        run_free(&r);
        run_init(&r, 8, 2, WANT_ALL);
        CHECK(glm5_session_sample(s, &p8, &r.out) == GLM5_OK);
        CHECK(r.out.finish_reason == GLM5_FINISH_LENGTH && r.out.n_tokens == 8);
        CHECK(run_matches_at(&ref, 1, &r, 8)); /* positions 4.. of the same sequence */
        run_free(&r);
        glm5_session_free(s);
    }

    g_case = "7. pending cancel inside a batch";
    {
        glm5_sampling_params p8 = p;
        p8.max_new_tokens = 8;
        glm5_session *s[3];
        struct run r[3];
        glm5_sample_output *oo[3];
        const glm5_sampling_params *pp[3] = {&p8, &p8, &p8};
        for (int i = 0; i < 3; i++) {
            s[i] = prompt_session(m, prompt, 3, 0, GLM5_LOGITS_NONE);
            run_init(&r[i], 8, 2, WANT_ALL);
            oo[i] = &r[i].out;
        }
        CHECK(glm5_session_cancel(s[1]) == GLM5_OK);
        CHECK(glm5_sample_batch(s, 3, pp, oo) == GLM5_OK);
        for (int i = 0; i < 3; i++) {
            CHECK(r[i].out.status == GLM5_OK);
            if (i == 1) {
                CHECK(r[i].out.finish_reason == GLM5_FINISH_CANCELLED && r[i].out.n_tokens == 0);
                CHECK(sess_n_tokens(s[i]) == 3);
            } else {
                CHECK(r[i].out.finish_reason == GLM5_FINISH_LENGTH && r[i].out.n_tokens == 8);
                CHECK(run_matches_at(&ref, 0, &r[i], 8));
            }
            run_free(&r[i]);
            glm5_session_free(s[i]);
        }
    }
    run_free(&ref);
}

/* Three threads, each running a batch of its own two sessions on one shared model, get what each
 * session gets alone. */
struct parallel_arg {
    glm5_model *m;
    const struct batch_case *c; /* two cases */
    const struct run *alone;    /* their alone runs */
    int ok;
};

static void *parallel_thread(void *arg) {
    struct parallel_arg *a = arg;
    a->ok = 1;
    for (int round = 0; round < 3 && a->ok; round++) {
        glm5_session *s[2] = {NULL, NULL};
        struct run r[2];
        glm5_sample_output *oo[2];
        const glm5_sampling_params *pp[2];
        for (int i = 0; i < 2; i++) {
            if (glm5_session_new(a->m, NULL, &s[i]) != GLM5_OK ||
                glm5_session_append(s[i], a->c[i].prompt, a->c[i].n_prompt, GLM5_LOGITS_NONE, NULL) != GLM5_OK)
                a->ok = 0;
            run_init(&r[i], a->c[i].cap, a->c[i].n_top, a->c[i].want);
            oo[i] = &r[i].out;
            pp[i] = a->c[i].use_defaults ? NULL : &a->c[i].p;
        }
        if (a->ok && glm5_sample_batch(s, 2, pp, oo) != GLM5_OK) a->ok = 0;
        for (int i = 0; i < 2; i++) {
            if (a->ok && !same_run(&r[i], &a->alone[i])) a->ok = 0;
            run_free(&r[i]);
            glm5_session_free(s[i]);
        }
    }
    return NULL;
}

static void test_parallel_batches(const char *dir) {
    g_case = "7. three threads, a batch each, one shared model (2 compute threads)";
    glm5_model *m = load_model(dir, 2);
    struct batch_case c[NB];
    batch_cases(c, vocab_size(m));
    struct run alone[NB];
    struct continuation k[NB];
    batch_alone(m, c, alone, k);
    /* Pairs (0, 1), (2, 3), (4, 5): every thread's cases sit next to each other. */
    pthread_t t[3];
    struct parallel_arg a[3];
    for (int i = 0; i < 3; i++) {
        a[i].m = m;
        a[i].c = &c[2 * i];
        a[i].alone = &alone[2 * i];
        a[i].ok = 0;
        REQUIRE(pthread_create(&t[i], NULL, parallel_thread, &a[i]) == 0);
    }
    for (int i = 0; i < 3; i++) {
        REQUIRE(pthread_join(t[i], NULL) == 0);
        CHECK(a[i].ok);
    }
    for (int i = 0; i < NB; i++) run_free(&alone[i]);
    glm5_model_free(m);
}

/* ---------------------------------------------------------------------------------------------
 * 8. Stop ids and end of sequence
 * --------------------------------------------------------------------------------------------- */

static void test_stop(glm5_model *m) {
    const uint32_t V = vocab_size(m);
    int32_t prompt[4];
    make_ids(prompt, 4, 43, 6, V);
    enum { N = 10 };

    /* A seed whose run has a third token unlike the first two (and no eos among them). */
    g_case = "8. finding a seed";
    glm5_sampling_params p;
    struct run base;
    uint64_t seed = 0;
    int found = 0;
    for (seed = 0; seed < 200 && !found; seed++) {
        p = sp_make(0.9f, 0, 1.0f, 0.0f, N, seed, 2);
        sample_fresh(m, prompt, 4, &p, &base, N, 2, WANT_ALL);
        const int32_t *t = base.tokens;
        found = t[2] != t[0] && t[2] != t[1] && t[0] != 1 && t[1] != 1 && t[2] != 1;
        if (!found) run_free(&base);
    }
    REQUIRE(found);
    seed--;
    const int32_t stop_at = base.tokens[2];

    g_case = "8. stop id produced at step 3";
    for (int with_eos = 0; with_eos < 2; with_eos++) {
        glm5_session *s = prompt_session(m, prompt, 4, 0, GLM5_LOGITS_NONE);
        glm5_sampling_params q = p;
        int32_t stops[3] = {stop_at == 300 ? 301 : 300, stop_at, stop_at};
        q.stop_token_ids = stops;
        q.n_stop_token_ids = 3;
        q.ignore_eos = !with_eos;
        struct run r;
        run_init(&r, N, 2, WANT_ALL);
        REQUIRE(glm5_session_sample(s, &q, &r.out) == GLM5_OK);
        CHECK(r.out.finish_reason == GLM5_FINISH_STOP);
        CHECK(r.out.n_tokens == 3);
        CHECK(r.out.stop_token_id == stop_at);
        CHECK(r.tokens[2] == stop_at); /* the stop token is kept */
        CHECK(run_matches_at(&base, 0, &r, 3));
        CHECK(run_untouched_from(&r, 3));
        size_t n = 0;
        int32_t *held = sess_tokens(s, &n);
        CHECK(n == 4 + 3 && SAME(held + 4, base.tokens, 3));
        free(held);
        /* A later call continues after the stop token, the same sequence. */
        glm5_sampling_params rest = p;
        rest.max_new_tokens = N - 3;
        struct run r2;
        run_init(&r2, N, 2, WANT_ALL);
        REQUIRE(glm5_session_sample(s, &rest, &r2.out) == GLM5_OK);
        CHECK(run_matches_at(&base, 3, &r2, N - 3));
        run_free(&r2);
        run_free(&r);
        glm5_session_free(s);
    }

    g_case = "8. stop id at the first token";
    {
        glm5_sampling_params q = p;
        int32_t first = base.tokens[0];
        q.stop_token_ids = &first;
        q.n_stop_token_ids = 1;
        struct run r;
        sample_fresh(m, prompt, 4, &q, &r, N, 2, WANT_ALL);
        CHECK(r.out.finish_reason == GLM5_FINISH_STOP && r.out.n_tokens == 1 && r.out.stop_token_id == first);
        run_free(&r);
    }

    g_case = "8. stop id at the last allowed token: STOP or LENGTH, consistently";
    {
        glm5_sampling_params q = p;
        q.max_new_tokens = 3;
        int32_t stop = stop_at;
        q.stop_token_ids = &stop;
        q.n_stop_token_ids = 1;
        struct run r;
        sample_fresh(m, prompt, 4, &q, &r, 3, 2, WANT_ALL);
        CHECK(r.out.n_tokens == 3);
        CHECK((r.out.finish_reason == GLM5_FINISH_STOP && r.out.stop_token_id == stop_at) ||
              (r.out.finish_reason == GLM5_FINISH_LENGTH && r.out.stop_token_id == -1));
        printf("  a stop id as the max_new_tokens-th token: finish %s\n",
               r.out.finish_reason == GLM5_FINISH_STOP ? "STOP" : "LENGTH");
        run_free(&r);
    }
    run_free(&base);

    /* The model's eos (1): a run that produces it at step k > 0 with ignore_eos. */
    g_case = "8. finding a run with eos";
    enum { NE = 60 };
    struct run e;
    size_t k = 0;
    found = 0;
    for (seed = 0; seed < 400 && !found; seed++) {
        p = sp_make(3.0f, 0, 1.0f, 0.0f, NE, seed, 0);
        sample_fresh(m, prompt, 4, &p, &e, NE, 0, WANT_ALL);
        for (k = 1; k < NE && e.tokens[k] != 1; k++) {
        }
        found = k < NE && e.tokens[0] != 1;
        if (!found) run_free(&e);
    }
    REQUIRE(found);
    CHECK(e.out.finish_reason == GLM5_FINISH_LENGTH && e.out.n_tokens == NE); /* ignore_eos: on */
    printf("  eos: seed %llu produces id 1 at step %zu\n", (unsigned long long)(seed - 1), k + 1);

    g_case = "8. the model's eos stops unless ignore_eos";
    {
        glm5_sampling_params q = p;
        q.ignore_eos = 0;
        struct run r;
        glm5_session *s = prompt_session(m, prompt, 4, 0, GLM5_LOGITS_NONE);
        run_init(&r, NE, 0, WANT_ALL);
        REQUIRE(glm5_session_sample(s, &q, &r.out) == GLM5_OK);
        CHECK(r.out.finish_reason == GLM5_FINISH_STOP && r.out.n_tokens == k + 1 && r.out.stop_token_id == 1);
        CHECK(run_matches_at(&e, 0, &r, k + 1));
        CHECK(sess_n_tokens(s) == 4 + k + 1);
        run_free(&r);
        glm5_session_free(s);
    }
    g_case = "8. stop_token_ids {eos} stop even with ignore_eos";
    {
        glm5_sampling_params q = p;
        int32_t eos = 1;
        q.stop_token_ids = &eos;
        q.n_stop_token_ids = 1;
        q.ignore_eos = 1;
        struct run r;
        sample_fresh(m, prompt, 4, &q, &r, NE, 0, WANT_ALL);
        CHECK(r.out.finish_reason == GLM5_FINISH_STOP && r.out.n_tokens == k + 1 && r.out.stop_token_id == 1);
        run_free(&r);
    }
    run_free(&e);
}

/* ---------------------------------------------------------------------------------------------
 * 9. The reference sampler agrees with the library
 * --------------------------------------------------------------------------------------------- */

static void test_reference_sampler(glm5_model *m) {
    const uint32_t V = vocab_size(m);
    enum { P = 5, N = 24 };
    struct {
        const char *what;
        glm5_sampling_params p;
    } cfg[8];
    cfg[0].what = "9. reference: T 0.8, top_k 50, top_p 0.9, seed 7";
    cfg[0].p = sp_make(0.8f, 50, 0.9f, 0.0f, N, 7, 64);
    cfg[1].what = "9. reference: T 1, no filters, seed 0";
    cfg[1].p = sp_make(1.0f, 0, 1.0f, 0.0f, N, 0, 64);
    cfg[2].what = "9. reference: T 1.5, top_p 0.3, 64-bit seed";
    cfg[2].p = sp_make(1.5f, 0, 0.3f, 0.0f, N, 0xDEADBEEFCAFEF00Dull, 64);
    cfg[3].what = "9. reference: T 0.7, min_p 0.2, seed 42";
    cfg[3].p = sp_make(0.7f, 0, 1.0f, 0.2f, N, 42, 64);
    cfg[4].what = "9. reference: T 2, top_k 3, seed 5";
    cfg[4].p = sp_make(2.0f, 3, 1.0f, 0.0f, N, 5, 64);
    cfg[5].what = "9. reference: T 1, top_k 1 (greedy), seed 8";
    cfg[5].p = sp_make(1.0f, 1, 1.0f, 0.0f, N, 8, 64);
    cfg[6].what = "9. reference: T 0 (greedy)";
    cfg[6].p = sp_make(0.0f, 0, 1.0f, 0.0f, N, 0, 64);
    cfg[7].what = "9. reference: T 5, top_k 200, top_p 0.95, min_p 0.01, seed 2^32 + 1";
    cfg[7].p = sp_make(5.0f, 200, 0.95f, 0.01f, N, 0x100000001ull, 64);

    for (int c = 0; c < 8; c++) {
        g_case = cfg[c].what;
        int32_t all[P + N];
        make_ids(all, P, 11 + c, 2 * c + 1, V);
        struct run r;
        sample_fresh(m, all, P, &cfg[c].p, &r, N, 64, WANT_ALL);
        REQUIRE(r.out.n_tokens == N);
        memcpy(all + P, r.tokens, N * sizeof(int32_t));
        /* The logits at every position of prompt + tokens. */
        glm5_session *s = prompt_session(m, all, P + N, 0, GLM5_LOGITS_ALL);
        size_t rows = 0, nf = 0;
        float *logits = sess_logits(s, &rows, &nf);
        REQUIRE(rows == P + N && nf == (size_t)(P + N) * V);
        int tok_ok = 1, top_ok = 1, lp_ok = 1;
        size_t first_bad = N;
        for (size_t i = 0; i < N; i++) {
            struct ref_step st;
            ref_sample(logits + (P + i - 1) * V, V, &cfg[c].p, P + i, &st);
            if (st.token != r.tokens[i]) {
                tok_ok = 0;
                if (first_bad == N) first_bad = i;
            }
            if (!SAME(st.top, r.top_ids + i * 64, 64)) top_ok = 0;
            if (fabsf(st.scaled - r.slp[i]) > 1e-5f || fabsf(st.processed - r.plp[i]) > 1e-5f) lp_ok = 0;
        }
        if (!tok_ok)
            fprintf(stderr, "  [%s] first token that differs from the reference: step %zu\n", g_case, first_bad);
        CHECK(tok_ok);
        CHECK(top_ok);
        CHECK(lp_ok);
        free(logits);
        glm5_session_free(s);
        run_free(&r);
    }
}

/* --------------------------------------------------------------------------------------------- */

int main(int argc, char **argv) {
    const char *root = argc > 1 ? argv[1] : "../Fixtures";
    char dir[4096], probe[4096 + 32];
    struct stat st;
    snprintf(probe, sizeof probe, "%s/config.json", root);
    if (stat(probe, &st) == 0) snprintf(dir, sizeof dir, "%s", root);
    else snprintf(dir, sizeof dir, "%s/tiny-dsa", root);
    snprintf(probe, sizeof probe, "%s/config.json", dir);
    if (stat(probe, &st) != 0) {
        fprintf(stderr, "test_sampling: no config.json in %s\n", dir);
        return 1;
    }
    REQUIRE(glm5_abi_version() == GLM5_ABI_VERSION);
    printf("test_sampling: library %s, fixture %s\n", glm5_version_string(), dir);

    test_philox_known_answers();
    glm5_model *m = load_model(dir, 2);
    glm5_model *other = load_model(dir, 1);
    REQUIRE(vocab_size(m) == 320);

    test_defaults(dir, m);
    test_greedy(m);
    test_scored_equals_sampled(m);
    test_fork(m);
    test_sample_batch(dir);
    test_append_batch(dir);
    test_bad_input(m, other);
    test_busy(m);
    test_parallel_batches(dir);
    test_stop(m);
    test_reference_sampler(m);

    glm5_model_free(other);
    glm5_model_free(m);
    if (n_failed) {
        printf("test_sampling: %d of %d checks FAILED\n", n_failed, n_checks);
        return 1;
    }
    printf("test_sampling: %d checks passed\n", n_checks);
    return 0;
}
