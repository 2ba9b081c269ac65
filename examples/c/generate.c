/*
 * generate — greedy continuation of a prompt of token ids.
 *
 *   make -C examples/c && examples/c/generate Tests/Fixtures/tiny-dsa 8 11 42 7
 *
 *   usage: generate <model-folder> [n_new] [token ids...]
 *
 * Loads the model, opens a session, appends the prompt (default: 1 2 3 4 5), generates n_new
 * tokens (default 8) greedily and prints each with its log-probability, one per line:
 *
 *   token 123  logprob -1.2345
 *
 * There is no tokenizer here: prompts and outputs are token ids. Every glm5 call that can fail is
 * checked; on failure the program prints the status and glm5_last_error() and exits with 1.
 */
#include "glm5.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

/* Parse a non-negative decimal number no larger than max; 0 if it is not one. */
static int parse_count(const char *text, long long max, long long *out) {
    char *end = NULL;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || v < 0 || v > max) return 0;
    *out = v;
    return 1;
}

/* The last error names the function that failed. */
static int fail(glm5_status st) {
    fprintf(stderr, "error: %s: %s\n", glm5_status_string(st), glm5_last_error());
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s <model-folder> [n_new] [token ids...]\n", argv[0]);
        return 2;
    }
    const char *path = argv[1];

    long long n_new = 8;
    if (argc > 2 && !parse_count(argv[2], 1000000, &n_new)) {
        fprintf(stderr, "error: n_new \"%s\" is not a number in [0, 1000000]\n", argv[2]);
        return 2;
    }

    /* The prompt: the ids on the command line, or a fixed short one. Ids are checked against the
     * vocabulary by the library (glm5_session_append names a bad one). */
    static const int32_t default_prompt[] = {1, 2, 3, 4, 5};
    size_t n_prompt = argc > 3 ? (size_t)(argc - 3) : sizeof default_prompt / sizeof default_prompt[0];
    int32_t *prompt = malloc(n_prompt * sizeof *prompt);
    int32_t *tokens = malloc((n_new ? (size_t)n_new : 1) * sizeof *tokens);
    float *logprobs = malloc((n_new ? (size_t)n_new : 1) * sizeof *logprobs);
    if (!prompt || !tokens || !logprobs) {
        fprintf(stderr, "error: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < n_prompt; i++) {
        long long id = 0;
        if (argc > 3) {
            if (!parse_count(argv[3 + i], INT32_MAX, &id)) {
                fprintf(stderr, "error: token id \"%s\" is not a number in [0, %d]\n", argv[3 + i], INT32_MAX);
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
    glm5_session_params sp;
    glm5_session_params_init(&sp);
    glm5_session *session = NULL;
    st = glm5_session_new(model, &sp, &session);
    if (st != GLM5_OK) {
        glm5_model_free(model);
        return fail(st);
    }

    /* Prefill the prompt; no logits are kept (generation computes its own). */
    st = glm5_session_append(session, prompt, n_prompt, GLM5_LOGITS_NONE, NULL);
    if (st == GLM5_OK && n_new > 0) {
        /* Greedy: the most likely next token each step, with its log-probability. */
        st = glm5_session_generate(session, (size_t)n_new, tokens, logprobs);
        if (st == GLM5_OK) {
            for (long long i = 0; i < n_new; i++) printf("token %d  logprob %.4f\n", tokens[i], (double)logprobs[i]);
        } else {
            fail(st);
        }
    } else if (st != GLM5_OK) {
        fail(st);
    }

    glm5_session_free(session);
    glm5_model_free(model);
    free(prompt);
    free(tokens);
    free(logprobs);
    return st == GLM5_OK ? 0 : 1;
}
