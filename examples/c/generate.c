/*
 * generate — sample a continuation of a prompt of token ids, with a seed.
 *
 *   make -C examples/c && examples/c/generate Tests/Fixtures/tiny-dsa 8 11 42 7
 *   examples/c/generate Tests/Fixtures/tiny-dsa 8 11 42 7 --temperature 0      (greedy)
 *   examples/c/generate Tests/Fixtures/tiny-dsa 16 11 42 7 --top-p 0.9 --seed 42
 *
 *   usage: generate <model-folder> [n_new] [token ids...] [options]
 *     --temperature T   default 0.8; 0 = greedy (the most likely token)
 *     --top-k K         default 0 (off)
 *     --top-p P         default 1 (off)
 *     --min-p M         default 0 (off)
 *     --seed S          default 0; the same seed gives the same tokens
 *     --ignore-eos      do not stop at the model's end-of-sequence id
 *
 * Loads the model, opens a session, appends the prompt (default: 1 2 3 4 5) and samples up to
 * n_new tokens (default 8) with glm5_session_sample. Prints the settings, then each token with its
 * three log-probabilities, then why generation stopped:
 *
 *   token 123  logprob -1.2345  scaled -1.0987  processed -0.8765
 *   finish: length (8 tokens)
 *
 * logprob is the raw model distribution (what glm5_model_score gives), scaled the distribution at
 * the temperature, processed the distribution actually sampled from (after top-k, top-p, min-p).
 *
 * There is no tokenizer here: prompts and outputs are token ids. Options are checked for syntax
 * only; their ranges are checked by the library, whose message names the field. Every glm5 call
 * that can fail is checked; on failure the program prints the status and glm5_last_error() and
 * exits with 1.
 */
#include "glm5.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parse a non-negative decimal number no larger than max; 0 if it is not one. */
static int parse_count(const char *text, long long max, long long *out) {
    char *end = NULL;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || v < 0 || v > max) return 0;
    *out = v;
    return 1;
}

/* Parse a decimal number (any sign) into an int32; 0 if it is not one. */
static int parse_int32(const char *text, int32_t *out) {
    char *end = NULL;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || v < INT32_MIN || v > INT32_MAX) return 0;
    *out = (int32_t)v;
    return 1;
}

/* Parse a float; 0 if it is not one. */
static int parse_float(const char *text, float *out) {
    char *end = NULL;
    errno = 0;
    float v = strtof(text, &end);
    if (errno != 0 || end == text || *end != '\0') return 0;
    *out = v;
    return 1;
}

/* Parse an unsigned 64-bit decimal number; 0 if it is not one (strtoull would accept "-1"). */
static int parse_u64(const char *text, uint64_t *out) {
    char *end = NULL;
    if (text[0] < '0' || text[0] > '9') return 0;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno != 0 || *end != '\0') return 0;
    *out = (uint64_t)v;
    return 1;
}

/* The last error names the function and the argument that failed. */
static int fail(glm5_status st) {
    fprintf(stderr, "error: %s: %s\n", glm5_status_string(st), glm5_last_error());
    return 1;
}

static int usage(const char *argv0) {
    fprintf(stderr,
            "usage: %s <model-folder> [n_new] [token ids...] [--temperature T] [--top-k K] [--top-p P]\n"
            "       [--min-p M] [--seed S] [--ignore-eos]\n",
            argv0);
    return 2;
}

int main(int argc, char **argv) {
    if (argc < 2 || argv[1][0] == '-') return usage(argv[0]);
    const char *path = argv[1];

    /* Sampling parameters: the header's defaults, then this program's (temperature 0.8, 8
     * tokens), then the options. Positional arguments (n_new, then token ids) may be mixed with
     * options; they are collected in order. */
    glm5_sampling_params sp;
    glm5_sampling_params_init(&sp);
    sp.temperature = 0.8f;
    long long n_new = 8;
    const char **positional = malloc((size_t)argc * sizeof *positional);
    if (!positional) {
        fprintf(stderr, "error: out of memory\n");
        return 1;
    }
    int n_positional = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0) {
            positional[n_positional++] = a;
            continue;
        }
        if (strcmp(a, "--ignore-eos") == 0) {
            sp.ignore_eos = 1;
            continue;
        }
        const char *v = i + 1 < argc ? argv[i + 1] : NULL, *kind = "a number";
        int ok;
        if (strcmp(a, "--temperature") == 0) ok = v && parse_float(v, &sp.temperature);
        else if (strcmp(a, "--top-p") == 0) ok = v && parse_float(v, &sp.top_p);
        else if (strcmp(a, "--min-p") == 0) ok = v && parse_float(v, &sp.min_p);
        else if (strcmp(a, "--top-k") == 0) {
            ok = v && parse_int32(v, &sp.top_k);
            kind = "an integer";
        } else if (strcmp(a, "--seed") == 0) {
            ok = v && parse_u64(v, &sp.seed);
            kind = "an integer in [0, 2^64)";
        } else {
            fprintf(stderr, "error: unknown option %s\n", a);
            return usage(argv[0]);
        }
        if (!ok) {
            if (v) fprintf(stderr, "error: %s \"%s\" is not %s\n", a, v, kind);
            else fprintf(stderr, "error: %s needs a value\n", a);
            return 2;
        }
        i++; /* the value */
    }
    if (n_positional > 0 && !parse_count(positional[0], 1000000, &n_new)) {
        fprintf(stderr, "error: n_new \"%s\" is not a number in [0, 1000000]\n", positional[0]);
        return 2;
    }
    sp.max_new_tokens = (uint32_t)n_new;

    /* The prompt: the ids on the command line, or a fixed short one. Ids are checked against the
     * vocabulary by the library (glm5_session_append names a bad one). */
    static const int32_t default_prompt[] = {1, 2, 3, 4, 5};
    size_t n_prompt = n_positional > 1 ? (size_t)(n_positional - 1) : sizeof default_prompt / sizeof default_prompt[0];
    size_t cap = n_new ? (size_t)n_new : 1;
    int32_t *prompt = malloc(n_prompt * sizeof *prompt);
    int32_t *tokens = malloc(cap * sizeof *tokens);
    float *logprobs = malloc(cap * sizeof *logprobs);
    float *scaled = malloc(cap * sizeof *scaled);
    float *processed = malloc(cap * sizeof *processed);
    if (!prompt || !tokens || !logprobs || !scaled || !processed) {
        fprintf(stderr, "error: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < n_prompt; i++) {
        long long id = 0;
        if (n_positional > 1) {
            if (!parse_count(positional[1 + i], INT32_MAX, &id)) {
                fprintf(stderr, "error: token id \"%s\" is not a number in [0, %d]\n", positional[1 + i], INT32_MAX);
                return 2;
            }
        } else {
            id = default_prompt[i];
        }
        prompt[i] = (int32_t)id;
    }

    if (glm5_abi_version() != GLM5_ABI_VERSION) {
        fprintf(stderr, "libglm5 ABI %u, but this program was built for ABI %u\n", glm5_abi_version(), GLM5_ABI_VERSION);
        return 1;
    }

    /* Load the model (n_threads 0 = one per CPU). */
    glm5_model_params mp;
    glm5_model_params_init(&mp);
    glm5_model *model = NULL;
    glm5_status st = glm5_model_load(path, &mp, &model);
    if (st != GLM5_OK) return fail(st);

    /* A session with the default maximum (the model's max_position_embeddings). The session keeps
     * the weights alive, so the model handle could be freed right here already. */
    glm5_session_params sesp;
    glm5_session_params_init(&sesp);
    glm5_session *session = NULL;
    st = glm5_session_new(model, &sesp, &session);
    if (st != GLM5_OK) {
        glm5_model_free(model);
        return fail(st);
    }

    printf("sampling: temperature %g, top_k %d, top_p %g, min_p %g, seed %llu, up to %u tokens%s\n",
           (double)sp.temperature, (int)sp.top_k, (double)sp.top_p, (double)sp.min_p, (unsigned long long)sp.seed,
           sp.max_new_tokens, sp.ignore_eos ? "" : ", stopping at the model's end-of-sequence id");

    /* Prefill the prompt; no logits are kept (sampling computes its own). */
    st = glm5_session_append(session, prompt, n_prompt, GLM5_LOGITS_NONE, NULL);
    if (st == GLM5_OK) {
        /* The output arrays: the library fills the first out.n_tokens entries of each. */
        glm5_sample_output out;
        glm5_sample_output_init(&out);
        out.capacity = cap;
        out.tokens = tokens;
        out.logprobs = logprobs;
        out.scaled_logprobs = scaled;
        out.processed_logprobs = processed;
        st = glm5_session_sample(session, &sp, &out);
        if (st == GLM5_OK) {
            for (size_t i = 0; i < out.n_tokens; i++)
                printf("token %d  logprob %.4f  scaled %.4f  processed %.4f\n", tokens[i], (double)logprobs[i],
                       (double)scaled[i], (double)processed[i]);
            switch (out.finish_reason) {
            case GLM5_FINISH_LENGTH: printf("finish: length (%zu tokens)\n", out.n_tokens); break;
            case GLM5_FINISH_STOP: printf("finish: stop (id %d, %zu tokens)\n", out.stop_token_id, out.n_tokens); break;
            case GLM5_FINISH_CANCELLED: printf("finish: cancelled (%zu tokens)\n", out.n_tokens); break;
            default: printf("finish: %d (%zu tokens)\n", out.finish_reason, out.n_tokens); break;
            }
        } else {
            fail(st);
        }
    } else {
        fail(st);
    }

    glm5_session_free(session);
    glm5_model_free(model);
    free(positional);
    free(prompt);
    free(tokens);
    free(logprobs);
    free(scaled);
    free(processed);
    return st == GLM5_OK ? 0 : 1;
}
