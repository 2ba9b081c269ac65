/*
 * test_rl.c — the RL surface of include/glm5.h against libglm5.so: the routing record and
 * replay, weight updates (folder, tensors, slime delta) with their versions, session save and
 * restore.
 *
 *   usage: test_rl FIXTURES_DIR
 *
 * Every check prints file:line and exits non-zero on failure.
 */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE

#include "glm5.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#define OK(expr) CHECK((expr) == GLM5_OK)

static char root[2048];

static const char *fixture(const char *name) {
    static char buf[4][4096];
    static int k = 0;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", root, name);
    return buf[k];
}

static glm5_model *load(const char *name) {
    glm5_model_params mp;
    glm5_model_params_init(&mp);
    mp.n_threads = 2;
    glm5_model *m = NULL;
    OK(glm5_model_load(fixture(name), &mp, &m));
    return m;
}

static glm5_session *recording_session(glm5_model *m, uint64_t max_bytes) {
    glm5_session_params sp;
    glm5_session_params_init(&sp);
    sp.record = 1;
    sp.record_max_bytes = max_bytes;
    glm5_session *s = NULL;
    OK(glm5_session_new(m, &sp, &s));
    return s;
}

static int same_bits(const float *a, const float *b, size_t n) { return memcmp(a, b, n * sizeof *a) == 0; }

static const int32_t seq[] = {3, 41, 7, 200, 15, 9, 77, 120, 5, 64, 31, 2, 250, 18, 99, 42};
#define NSEQ (sizeof seq / sizeof seq[0])

static void test_record_replay(void) {
    glm5_model *m = load("tiny-dsa");
    glm5_model_info info;
    glm5_model_info_init(&info);
    OK(glm5_model_get_info(m, &info));

    /* Sample on a recording session; score the trajectory on another: the same records. */
    glm5_session *a = recording_session(m, 0);
    OK(glm5_session_append(a, seq, 6, GLM5_LOGITS_NONE, NULL));
    glm5_sampling_params p;
    glm5_sampling_params_init(&p);
    p.max_new_tokens = 10;
    p.seed = 9;
    p.ignore_eos = 1;
    int32_t toks[10];
    float lps[10];
    glm5_sample_output out;
    glm5_sample_output_init(&out);
    out.capacity = 10;
    out.tokens = toks;
    out.logprobs = lps;
    OK(glm5_session_sample(a, &p, &out));
    CHECK(out.n_tokens == 10 && strcmp(out.weight_version, "default") == 0);
    int32_t all[16];
    memcpy(all, seq, 6 * sizeof *all);
    memcpy(all + 6, toks, 10 * sizeof *all);

    glm5_record_info ri;
    glm5_record_info_init(&ri);
    OK(glm5_session_get_record_info(a, &ri));
    CHECK(ri.recording == 1 && ri.n_tokens == 16 && ri.n_layers == info.n_layers && ri.index_topk == info.index_topk);
    CHECK(ri.n_moe_layers == info.n_moe_layers && ri.n_experts_per_tok == info.n_experts_per_tok);
    CHECK(ri.bytes_per_token == 4ull * ri.n_layers * ri.index_topk + 8ull * ri.n_moe_layers * ri.n_experts_per_tok);
    CHECK(ri.bytes >= 16 * ri.bytes_per_token && ri.max_bytes == 1ull << 30);

    size_t nt = 0, nr = 0;
    CHECK_FAIL(glm5_session_get_recorded_topk(a, 0, 16, NULL, 0, &nt), GLM5_ERR_BUFFER_TOO_SMALL, "need");
    CHECK(nt == 16 * ri.n_layers * ri.index_topk);
    int32_t *topk = malloc(nt * sizeof *topk);
    OK(glm5_session_get_recorded_topk(a, 0, 16, topk, nt, &nt));
    CHECK_FAIL(glm5_session_get_recorded_routes(a, 0, 16, NULL, NULL, 0, &nr), GLM5_ERR_BUFFER_TOO_SMALL, "need");
    int32_t *ids = malloc(nr * sizeof *ids);
    float *wts = malloc(nr * sizeof *wts);
    OK(glm5_session_get_recorded_routes(a, 0, 16, ids, wts, nr, &nr));
    CHECK_FAIL(glm5_session_get_recorded_topk(a, 10, 7, topk, nt, NULL), GLM5_ERR_INVALID_ARGUMENT, "beyond the 16 recorded");
    /* Past index_topk every layer reads exactly index_topk keys; before, every earlier key. */
    for (uint32_t i = 0; i < ri.index_topk; i++) CHECK(topk[(size_t)15 * ri.n_layers * ri.index_topk + i] >= 0);
    CHECK(topk[1 * ri.n_layers * ri.index_topk + 2] == -1);

    /* Replay reproduces glm5_model_score bit for bit; with ids only, too. */
    float plain[16], replayed[16];
    OK(glm5_model_score(m, all, 16, plain));
    glm5_replay rp;
    glm5_replay_init(&rp);
    rp.topk = topk;
    rp.expert_ids = ids;
    rp.expert_weights = wts;
    OK(glm5_model_score_replay(m, all, 16, &rp, 1.0f, replayed, NULL));
    CHECK(same_bits(plain + 1, replayed + 1, 15) && isnan(replayed[0]));
    rp.expert_weights = NULL;
    OK(glm5_model_score_replay(m, all, 16, &rp, 1.0f, replayed, NULL));
    CHECK(same_bits(plain + 1, replayed + 1, 15));
    /* A session replaying in two appends. */
    glm5_session *b = recording_session(m, 0);
    OK(glm5_session_append_replay(b, all, 9, GLM5_LOGITS_NONE, &rp, 1.0f, replayed, NULL));
    glm5_replay rest = rp;
    rest.topk = topk + (size_t)9 * ri.n_layers * ri.index_topk;
    rest.expert_ids = ids + (size_t)9 * ri.n_moe_layers * ri.n_experts_per_tok;
    OK(glm5_session_append_replay(b, all + 9, 7, GLM5_LOGITS_NONE, &rest, 1.0f, replayed + 9, NULL));
    CHECK(same_bits(plain + 1, replayed + 1, 15));

    /* Bad replay: a key after the query's position; weights without ids. Nothing changes. */
    int32_t saved = topk[0];
    topk[0] = 1000;
    CHECK_FAIL(glm5_session_append_replay(b, all, 1, GLM5_LOGITS_NONE, &rp, 1.0f, NULL, NULL), GLM5_ERR_INVALID_ARGUMENT, "replay_topk[0, 0, 0] is key 1000, but token 0 is at position 16");
    topk[0] = saved;
    glm5_replay bad;
    glm5_replay_init(&bad);
    bad.expert_weights = wts;
    CHECK_FAIL(glm5_model_score_replay(m, all, 16, &bad, 1.0f, replayed, NULL), GLM5_ERR_INVALID_ARGUMENT, "expert_ids is NULL");
    size_t n = 0;
    OK(glm5_session_n_tokens(b, &n));
    CHECK(n == 16);

    /* A session that does not record; the record bound. */
    glm5_session *plain_s = NULL;
    OK(glm5_session_new(m, NULL, &plain_s));
    CHECK_FAIL(glm5_session_get_recorded_topk(plain_s, 0, 0, NULL, 0, NULL), GLM5_ERR_INVALID_ARGUMENT, "does not record");
    glm5_session *small = recording_session(m, 4 * ri.bytes_per_token);
    CHECK_FAIL(glm5_session_append(small, seq, 5, GLM5_LOGITS_NONE, NULL), GLM5_ERR_RECORD_FULL, "record bound");
    OK(glm5_session_append(small, seq, 4, GLM5_LOGITS_NONE, NULL));
    glm5_session_params sp;
    glm5_session_params_init(&sp);
    sp.record = 2;
    glm5_session *x = NULL;
    CHECK_FAIL(glm5_session_new(m, &sp, &x), GLM5_ERR_INVALID_ARGUMENT, "record is 2");

    free(topk); free(ids); free(wts);
    glm5_session_free(a); glm5_session_free(b); glm5_session_free(plain_s); glm5_session_free(small);
    glm5_model_free(m);
}

static void version_of(glm5_model *m, char *out, size_t cap) {
    size_t need = 0;
    CHECK_FAIL(glm5_model_weight_version(m, NULL, 0, &need), GLM5_ERR_BUFFER_TOO_SMALL, "needs");
    CHECK(need <= cap);
    OK(glm5_model_weight_version(m, out, cap, &need));
    CHECK(strlen(out) + 1 == need);
}

static void test_weight_updates(void) {
    glm5_model *m = load("tiny-dsa");
    glm5_model *v2 = load("tiny-dsa-v2");
    float want[NSEQ], got[NSEQ], before[NSEQ];
    OK(glm5_model_score(v2, seq, NSEQ, want));
    OK(glm5_model_score(m, seq, NSEQ, before));
    CHECK(!same_bits(want + 1, before + 1, NSEQ - 1));
    char v[GLM5_WEIGHT_VERSION_SIZE];
    version_of(m, v, sizeof v);
    CHECK(strcmp(v, "default") == 0);

    glm5_session *s = NULL;
    OK(glm5_session_new(m, NULL, &s));
    OK(glm5_session_append(s, seq, 4, GLM5_LOGITS_NONE, NULL));

    /* A slime delta (zstd): the result is v2, version "1" from the delta. */
    char delta[4096];
    snprintf(delta, sizeof delta, "%s/deltas/tiny-dsa-v2.deltas_zstd/weight_v000001", root);
    OK(glm5_model_update_from_delta(m, delta, NULL));
    version_of(m, v, sizeof v);
    CHECK(strcmp(v, "1") == 0);
    OK(glm5_model_score(m, seq, NSEQ, got));
    CHECK(same_bits(got + 1, want + 1, NSEQ - 1));
    glm5_model_info info;
    glm5_model_info_init(&info);
    OK(glm5_model_get_info(m, &info));
    CHECK(info.n_weight_updates == 1 && info.updated_weight_bytes > 0);
    /* Again: it is a delta against "default". */
    CHECK_FAIL(glm5_model_update_from_delta(m, delta, NULL), GLM5_ERR_VERSION_MISMATCH, "\"default\"");
    CHECK_FAIL(glm5_model_update_from_folder(m, fixture("tiny-int4-g32"), "x"), GLM5_ERR_INCOMPATIBLE, "another configuration");
    CHECK_FAIL(glm5_model_update_from_folder(m, fixture("tiny-dsa"), NULL), GLM5_ERR_INVALID_ARGUMENT, "version is NULL");
    CHECK_FAIL(glm5_model_update_from_folder(m, fixture("tiny-dsa"), ""), GLM5_ERR_INVALID_ARGUMENT, "weight version");
    version_of(m, v, sizeof v);
    CHECK(strcmp(v, "1") == 0);

    /* The session made before continues; sampling reports the version in force. */
    int32_t tok[3];
    glm5_sampling_params p;
    glm5_sampling_params_init(&p);
    p.max_new_tokens = 3;
    p.ignore_eos = 1;
    glm5_sample_output out;
    glm5_sample_output_init(&out);
    out.capacity = 3;
    out.tokens = tok;
    OK(glm5_session_sample(s, &p, &out));
    CHECK(strcmp(out.weight_version, "1") == 0);
    OK(glm5_session_recompute(s));

    /* The folder path back to v1, then tensors: model.norm.weight streamed as BF16 (converted). */
    OK(glm5_model_update_from_folder(m, fixture("tiny-dsa"), "back"));
    OK(glm5_model_score(m, seq, NSEQ, got));
    CHECK(same_bits(got + 1, before + 1, NSEQ - 1));
    glm5_model_get_info(m, &info);
    CHECK(info.n_weight_updates == 2 && info.updated_weight_bytes == 0);
    glm5_weight_update *u = NULL;
    OK(glm5_weight_update_begin(m, &u));
    uint16_t norm[64];
    for (int i = 0; i < 64; i++) norm[i] = 0x4000; /* bf16 2.0 */
    int64_t shape[1] = {64}, wrong[1] = {63};
    CHECK_FAIL(glm5_weight_update_add(u, "model.norm.weight", GLM5_DTYPE_BF16, wrong, 1, norm, 126), GLM5_ERR_BAD_FORMAT, "shape");
    CHECK_FAIL(glm5_weight_update_add(u, "model.norm.weight", GLM5_DTYPE_BF16, shape, 1, norm, 100), GLM5_ERR_INVALID_ARGUMENT, "needs 128 bytes");
    CHECK_FAIL(glm5_weight_update_add(u, "no.such.tensor", GLM5_DTYPE_BF16, shape, 1, norm, 128), GLM5_ERR_INVALID_ARGUMENT, "no tensor");
    CHECK_FAIL(glm5_weight_update_commit(u, "empty"), GLM5_ERR_INVALID_ARGUMENT, "holds no tensor");
    glm5_weight_update_free(u);
    OK(glm5_weight_update_begin(m, &u));
    OK(glm5_weight_update_add(u, "model.norm.weight", GLM5_DTYPE_BF16, shape, 1, norm, 128));
    OK(glm5_weight_update_commit(u, "norm2"));
    CHECK_FAIL(glm5_weight_update_commit(u, "again"), GLM5_ERR_INVALID_ARGUMENT, "already committed");
    CHECK_FAIL(glm5_weight_update_add(u, "model.norm.weight", GLM5_DTYPE_BF16, shape, 1, norm, 128), GLM5_ERR_INVALID_ARGUMENT, "already committed");
    glm5_weight_update_free(u);
    glm5_weight_update_free(u); /* freed twice: ignored */
    OK(glm5_model_score(m, seq, NSEQ, got));
    CHECK(!same_bits(got + 1, before + 1, NSEQ - 1));
    version_of(m, v, sizeof v);
    CHECK(strcmp(v, "norm2") == 0);

    glm5_session_free(s);
    glm5_model_free(m);
    glm5_model_free(v2);
}

static void test_save_restore(void) {
    glm5_model *m = load("tiny-int4-g32");
    glm5_session *s = recording_session(m, 0);
    OK(glm5_session_append(s, seq, 8, GLM5_LOGITS_NONE, NULL));
    void *data = NULL;
    size_t size = 0;
    OK(glm5_session_save(s, &data, &size));
    CHECK(data != NULL && size > 64);
    glm5_session *r = NULL;
    OK(glm5_session_restore(m, data, size, 0, &r));
    int32_t t1[6], t2[6];
    float l1[6], l2[6];
    glm5_sampling_params p;
    glm5_sampling_params_init(&p);
    p.max_new_tokens = 6;
    p.seed = 4;
    p.ignore_eos = 1;
    glm5_sample_output o1, o2;
    glm5_sample_output_init(&o1);
    glm5_sample_output_init(&o2);
    o1.capacity = o2.capacity = 6;
    o1.tokens = t1; o1.logprobs = l1;
    o2.tokens = t2; o2.logprobs = l2;
    OK(glm5_session_sample(s, &p, &o1));
    OK(glm5_session_sample(r, &p, &o2));
    CHECK(memcmp(t1, t2, sizeof t1) == 0 && same_bits(l1, l2, 6));
    glm5_record_info ri;
    glm5_record_info_init(&ri);
    OK(glm5_session_get_record_info(r, &ri));
    CHECK(ri.recording == 1 && ri.n_tokens == 14);

    /* Damaged bytes, another model, bad flags: refused, no session written. */
    unsigned char *bad = malloc(size);
    memcpy(bad, data, size);
    bad[size / 2] ^= 1;
    glm5_session *none = NULL;
    CHECK_FAIL(glm5_session_restore(m, bad, size, 0, &none), GLM5_ERR_BAD_FORMAT, "checksum");
    CHECK_FAIL(glm5_session_restore(m, data, size - 1, 0, &none), GLM5_ERR_BAD_FORMAT, "");
    CHECK_FAIL(glm5_session_restore(m, data, 3, 0, &none), GLM5_ERR_BAD_FORMAT, "truncated");
    CHECK_FAIL(glm5_session_restore(m, data, size, 8, &none), GLM5_ERR_INVALID_ARGUMENT, "flags");
    CHECK_FAIL(glm5_session_restore(m, NULL, size, 0, &none), GLM5_ERR_INVALID_ARGUMENT, "data is NULL");
    glm5_model *other = load("tiny-dsa");
    CHECK_FAIL(glm5_session_restore(other, data, size, 0, &none), GLM5_ERR_INCOMPATIBLE, "another model configuration");
    CHECK(none == NULL);

    /* Through a file; another weight version needs the flag. */
    char dir[] = "/tmp/glm5-rl-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[4200];
    snprintf(path, sizeof path, "%s/s.glm5", dir);
    size_t fsize = 0;
    OK(glm5_session_save_file(s, path, &fsize));
    glm5_weight_update *u = NULL;
    OK(glm5_weight_update_begin(m, &u));
    OK(glm5_model_update_from_folder(m, fixture("tiny-int4-g32-v2"), "v2"));
    glm5_weight_update_free(u);
    CHECK_FAIL(glm5_session_restore_file(m, path, 0, &none), GLM5_ERR_VERSION_MISMATCH, "\"default\"");
    OK(glm5_session_restore_file(m, path, GLM5_RESTORE_ANY_WEIGHT_VERSION, &none));
    CHECK(none != NULL);
    CHECK_FAIL(glm5_session_restore_file(m, "/nonexistent/s.glm5", 0, &r), GLM5_ERR_IO, "nonexistent");
    unlink(path);
    rmdir(dir);

    free(bad);
    glm5_free(data);
    glm5_free(NULL);
    glm5_session_free(none);
    glm5_session_free(r);
    glm5_session_free(s);
    glm5_model_free(other);
    glm5_model_free(m);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: test_rl FIXTURES_DIR\n");
        return 2;
    }
    snprintf(root, sizeof root, "%s", argv[1]);
    test_record_replay();
    test_weight_updates();
    test_save_restore();
    printf("test_rl: %d checks passed\n", n_checks);
    return 0;
}
