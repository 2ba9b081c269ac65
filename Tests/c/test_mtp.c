/*
 * test_mtp.c — speculative decoding through the C API (include/glm5.h "Speculative decoding
 * (MTP)"), on the bundled trained model: speculative sampling equals plain sampling bit for bit
 * (alone and batched), glm5_sample_output.accepted, an older glm5_sampling_params (its
 * struct_size ends before speculative) ignores what follows, the statuses, and
 * glm5_model_mtp_draft_logits.
 *
 *   test_mtp MODEL_DIR
 */
#include <math.h>
#include <stddef.h>

#include "check.h"

#define N_NEW 40
#define N_TOP 3
#define PROMPT 24

struct run {
    glm5_sample_output out;
    int32_t tokens[N_NEW], top_ids[N_NEW * N_TOP], accepted[N_NEW];
    float lp[N_NEW], slp[N_NEW], plp[N_NEW], top_lp[N_NEW * N_TOP];
};

static void run_init(struct run *r) {
    memset(r, 0, sizeof *r);
    glm5_sample_output_init(&r->out);
    r->out.capacity = N_NEW;
    r->out.tokens = r->tokens;
    r->out.logprobs = r->lp;
    r->out.scaled_logprobs = r->slp;
    r->out.processed_logprobs = r->plp;
    r->out.top_ids = r->top_ids;
    r->out.top_logprobs = r->top_lp;
    r->out.accepted = r->accepted;
}

static int same_run(const struct run *a, const struct run *b) {
    size_t n = a->out.n_tokens;
    return n == b->out.n_tokens && a->out.finish_reason == b->out.finish_reason &&
           a->out.stop_token_id == b->out.stop_token_id && memcmp(a->tokens, b->tokens, n * 4) == 0 &&
           memcmp(a->lp, b->lp, n * 4) == 0 && memcmp(a->slp, b->slp, n * 4) == 0 && memcmp(a->plp, b->plp, n * 4) == 0 &&
           memcmp(a->top_ids, b->top_ids, n * N_TOP * 4) == 0 && memcmp(a->top_lp, b->top_lp, n * N_TOP * 4) == 0;
}

static int32_t prompt[PROMPT];

static glm5_session *prompted(glm5_model *m, uint32_t no_mtp) {
    glm5_session_params sp;
    glm5_session_params_init(&sp);
    sp.no_mtp = no_mtp;
    glm5_session *s = NULL;
    CHECK(glm5_session_new(m, &sp, &s) == GLM5_OK);
    CHECK(glm5_session_append(s, prompt, PROMPT, GLM5_LOGITS_NONE, NULL) == GLM5_OK);
    return s;
}

static glm5_sampling_params params(int which, uint32_t k) {
    glm5_sampling_params p;
    glm5_sampling_params_init(&p);
    p.max_new_tokens = N_NEW;
    p.n_top_logprobs = N_TOP;
    p.speculative = k;
    if (which == 0) {
        p.temperature = 0;
        p.ignore_eos = 1;
    } else {
        p.temperature = 0.8f;
        p.top_p = 0.95f;
        p.seed = 7 + (uint64_t)which;
    }
    return p;
}

static void sample_alone(glm5_model *m, const glm5_sampling_params *p, struct run *r) {
    glm5_session *s = prompted(m, 0);
    run_init(r);
    CHECK(glm5_session_sample(s, p, &r->out) == GLM5_OK);
    glm5_session_free(s);
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "../../models/glm5-tiny";
    glm5_model *m = NULL;
    CHECK(glm5_model_load(dir, NULL, &m) == GLM5_OK);
    glm5_model_info info;
    glm5_model_info_init(&info);
    CHECK(glm5_model_get_info(m, &info) == GLM5_OK);
    CHECK(info.has_mtp == 1);
    const size_t V = info.vocab_size;
    for (int i = 0; i < PROMPT; i++) prompt[i] = (int32_t)((i * 97 + 31) % (int)V);

    /* Speculative == plain, bit for bit, k = 1..3, greedy and seeded. */
    static struct run plain, spec;
    size_t steps = 0, acc = 0;
    for (int which = 0; which < 2; which++) {
        glm5_sampling_params p0 = params(which, 0);
        sample_alone(m, &p0, &plain);
        CHECK(plain.out.n_tokens > 0 && plain.out.n_steps == 0);
        for (uint32_t k = 1; k <= 3; k++) {
            glm5_sampling_params pk = params(which, k);
            sample_alone(m, &pk, &spec);
            CHECK(same_run(&plain, &spec));
            CHECK(spec.out.n_steps > 0 && spec.out.n_steps <= spec.out.n_tokens);
            size_t made = 1;
            for (size_t i = 0; i < spec.out.n_steps; i++) {
                CHECK(spec.accepted[i] >= 0 && (uint32_t)spec.accepted[i] <= k);
                made += (size_t)spec.accepted[i] + 1;
                acc += (size_t)spec.accepted[i];
            }
            steps += spec.out.n_steps;
            CHECK(made == spec.out.n_tokens || made == spec.out.n_tokens + 1);
        }
    }
    /* The trained drafts are accepted often (Tests/GLM5Tests/MTPTests pins the rate). */
    CHECK(acc * 4 >= steps);
    printf("test_mtp: %zu drafts accepted in %zu verification steps\n", acc, steps);

    /* A batch mixing k = 0, 2, 3 equals each alone. */
    glm5_session *ss[3];
    glm5_sampling_params ps[3] = {params(1, 0), params(2, 2), params(0, 3)};
    const glm5_sampling_params *pp[3];
    static struct run br[3], ar[3];
    glm5_sample_output *outs[3];
    for (int i = 0; i < 3; i++) {
        ss[i] = prompted(m, 0);
        pp[i] = &ps[i];
        run_init(&br[i]);
        outs[i] = &br[i].out;
    }
    CHECK(glm5_sample_batch(ss, 3, pp, outs) == GLM5_OK);
    for (int i = 0; i < 3; i++) {
        glm5_sampling_params alone = ps[i];
        alone.speculative = 0;
        sample_alone(m, &alone, &ar[i]);
        CHECK(same_run(&ar[i], &br[i]));
        CHECK((br[i].out.n_steps > 0) == (ps[i].speculative > 0));
        glm5_session_free(ss[i]);
    }

    /* A struct from before 0.4 ends before speculative: what follows is not read. */
    {
        struct {
            glm5_sampling_params p;
        } old;
        old.p = params(1, 0);
        old.p.struct_size = (uint32_t)offsetof(glm5_sampling_params, speculative);
        old.p.speculative = 0xdeadbeef;
        glm5_session *s = prompted(m, 0);
        run_init(&spec);
        CHECK(glm5_session_sample(s, &old.p, &spec.out) == GLM5_OK);
        glm5_sampling_params p1 = params(1, 0);
        sample_alone(m, &p1, &plain);
        CHECK(same_run(&plain, &spec) && spec.out.n_steps == 0);
        glm5_session_free(s);
    }

    /* Statuses: k out of range, a session without the MTP layer; nothing changes. */
    {
        glm5_session *s = prompted(m, 0);
        glm5_sampling_params p = params(0, GLM5_MAX_SPECULATIVE + 1);
        run_init(&spec);
        CHECK_FAIL(glm5_session_sample(s, &p, &spec.out), GLM5_ERR_INVALID_ARGUMENT, "speculative is 9");
        size_t n = 0;
        CHECK(glm5_session_n_tokens(s, &n) == GLM5_OK && n == PROMPT);
        glm5_session_free(s);
        glm5_session *off = prompted(m, 1);
        p = params(0, 2);
        CHECK_FAIL(glm5_session_sample(off, &p, &spec.out), GLM5_ERR_INVALID_ARGUMENT, "without the MTP layer");
        p.speculative = 0;
        CHECK(glm5_session_sample(off, &p, &spec.out) == GLM5_OK);
        glm5_session_free(off);
        glm5_session_params sp;
        glm5_session_params_init(&sp);
        sp.no_mtp = 2;
        glm5_session *bad = NULL;
        CHECK_FAIL(glm5_session_new(m, &sp, &bad), GLM5_ERR_INVALID_ARGUMENT, "no_mtp is 2");
        CHECK(bad == NULL);
    }

    /* Draft logits: statuses, then finite rows. */
    {
        static float out[(PROMPT - 1) * 4096];
        CHECK(V <= 4096);
        CHECK_FAIL(glm5_model_mtp_draft_logits(m, prompt, 1, out, sizeof out / 4), GLM5_ERR_INVALID_ARGUMENT, "at least 2");
        CHECK_FAIL(glm5_model_mtp_draft_logits(m, prompt, PROMPT, out, (PROMPT - 1) * V - 1), GLM5_ERR_BUFFER_TOO_SMALL, "need");
        CHECK_FAIL(glm5_model_mtp_draft_logits(m, prompt, PROMPT, NULL, 0), GLM5_ERR_INVALID_ARGUMENT, "out is NULL");
        CHECK_FAIL(glm5_model_mtp_draft_logits(NULL, prompt, PROMPT, out, sizeof out / 4), GLM5_ERR_INVALID_ARGUMENT, "model");
        CHECK(glm5_model_mtp_draft_logits(m, prompt, PROMPT, out, (PROMPT - 1) * V) == GLM5_OK);
        for (size_t i = 0; i < (PROMPT - 1) * V; i++) CHECK(isfinite(out[i]));
    }

    glm5_model_free(m);
    printf("test_mtp: %d checks passed\n", n_checks);
    return 0;
}
