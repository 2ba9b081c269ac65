/*
 * test_capi.c — checks libglm5.so against include/glm5.h, the C contract.
 *
 *   usage: test_capi [fixtures-dir]     (default ../Fixtures; `make test-c` runs it from Tests/c)
 *
 * Plain C11 + POSIX (mkdtemp, opendir, pthreads). Every check prints file:line and exits non-zero
 * on failure; on success prints "test_capi: N checks passed".
 *
 * What it checks:
 *   - version macros against glm5_abi_version / glm5_version_number / glm5_version_string;
 *   - glm5_status_string for every status and an unknown one, glm5_dtype_name for every dtype;
 *   - every NULL-pointer case, struct_size 0 / too small / larger, n_threads out of range:
 *     GLM5_ERR_INVALID_ARGUMENT, a message naming the problem, outputs left untouched;
 *   - *_free(NULL) and freeing twice are no-ops; a freed or foreign handle is refused;
 *   - load failures: missing path (IO, message names the path), folder without config.json (IO),
 *     invalid JSON (BAD_FORMAT), unsupported model_type (UNSUPPORTED), incomplete config
 *     (BAD_FORMAT), no weight files (IO), malformed safetensors (BAD_FORMAT);
 *   - the last error is per thread, and successful calls do not clear it;
 *   - every fixture folder (a subfolder with config.json) loads, and glm5_model_info matches the
 *     numbers in its config.json; one model is shared by 4 threads calling glm5_model_get_info;
 *   - sessions (on tiny-dsa): NULL, foreign, freed and model-as-session handles for every session
 *     function; struct_size and max_tokens checks; bad appends (n_tokens 0, NULL tokens, ids
 *     out of range, a bad keep value), CONTEXT_FULL, truncate past the end, generate on an empty
 *     session: each refused with the session unchanged (tokens, kept logits) and still usable
 *     (its caches give bitwise the logprobs glm5_model_score gives); the two-call pattern of
 *     get_logits / get_tokens; which logits are kept; glm5_model_score's argument checks;
 *   - a session outlives glm5_model_free of its model;
 *   - threads: two threads appending to one session get OK or GLM5_ERR_BUSY, never anything else,
 *     and the session holds exactly the appended tokens; four threads scoring and running their
 *     own sessions on one model get bit-exact results; 1 and 2 compute threads agree bitwise;
 *   - against every fixture's golden.safetensors (read by a minimal reader below): score vs the
 *     golden logprobs (1e-4), an ALL append vs the golden logits (5e-4), greedy generation vs the
 *     golden tokens (exact) and logprobs (1e-4); appends in any split, LAST vs ALL, truncate and
 *     re-append, generating one by one: all bitwise equal;
 *   - details of the header's wording: generate of 0 tokens on an empty session, NULL out with a
 *     capacity, kept logits cleared by truncate and generate, outputs untouched on failure;
 *   - hostile sizes (include/glm5.h "Limits"): huge n_ids, text_len, n_stop_token_ids, batch n,
 *     capacities and record bounds with short buffers are refused before anything is read or
 *     allocated; sampling 2^24 tokens under an address-space limit (in a re-executed child) is
 *     GLM5_ERR_OUT_OF_MEMORY with the session unchanged.
 */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE

#include "glm5.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

/* ---------------------------------------------------------------------------------------------
 * Small helpers: files, temp folders, a naive JSON number lookup
 * --------------------------------------------------------------------------------------------- */

static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += got;
        if (cap - len - 1 == 0) {
            char *bigger = realloc(buf, cap * 2);
            if (!bigger) { free(buf); buf = NULL; break; }
            buf = bigger;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf) buf[len] = 0;
    return buf;
}

static void write_file(const char *dir, const char *name, const void *data, size_t size) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    CHECK(fwrite(data, 1, size, f) == size);
    CHECK(fclose(f) == 0);
}

static void write_text(const char *dir, const char *name, const char *text) {
    write_file(dir, name, text, strlen(text));
}

static void remove_file(const char *dir, const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    unlink(path);
}

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* The unsigned number after `"key":` at its first occurrence in `json`, or -1. Enough for the
 * flat, machine-written config.json of the fixtures. */
static long long json_uint(const char *json, const char *key) {
    char quoted[256];
    snprintf(quoted, sizeof quoted, "\"%s\"", key);
    const char *p = strstr(json, quoted);
    if (!p) return -1;
    p += strlen(quoted);
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
    if (*p != ':') return -1;
    p++;
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
    if (*p < '0' || *p > '9') return -1;
    return strtoll(p, NULL, 10);
}

/* The string value after `"key":`, copied into out; returns 0 if absent. */
static int json_string(const char *json, const char *key, char *out, size_t out_size) {
    char quoted[256];
    snprintf(quoted, sizeof quoted, "\"%s\"", key);
    const char *p = strstr(json, quoted);
    if (!p) return 0;
    p += strlen(quoted);
    while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r') p++;
    if (*p++ != ':') return 0;
    while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r') p++;
    if (*p++ != '"') return 0;
    size_t n = 0;
    while (*p && *p != '"' && n + 1 < out_size) out[n++] = *p++;
    out[n] = 0;
    return 1;
}

/* ---------------------------------------------------------------------------------------------
 * Versions, status strings, dtype names
 * --------------------------------------------------------------------------------------------- */

static void test_versions(void) {
    CHECK(glm5_abi_version() == GLM5_ABI_VERSION);
    CHECK(glm5_version_number() == GLM5_VERSION_NUMBER);
    const char *v = glm5_version_string();
    CHECK(v != NULL);
    char expected[64];
    snprintf(expected, sizeof expected, "%d.%d.%d", GLM5_VERSION_MAJOR, GLM5_VERSION_MINOR, GLM5_VERSION_PATCH);
    CHECK(strcmp(v, expected) == 0);
    CHECK(glm5_version_string() == v); /* static storage */
}

static void test_status_strings(void) {
    static const struct { glm5_status status; const char *text; } expected[] = {
        {GLM5_OK, "ok"},
        {GLM5_ERR_INVALID_ARGUMENT, "invalid argument"},
        {GLM5_ERR_IO, "I/O error"},
        {GLM5_ERR_BAD_FORMAT, "bad format"},
        {GLM5_ERR_UNSUPPORTED, "unsupported"},
        {GLM5_ERR_OUT_OF_MEMORY, "out of memory"},
        {GLM5_ERR_CONTEXT_FULL, "context full"},
        {GLM5_ERR_BUSY, "busy"},
        {GLM5_ERR_INTERNAL, "internal error"},
        {GLM5_ERR_BUFFER_TOO_SMALL, "buffer too small"},
        {GLM5_ERR_RECORD_FULL, "record full"},
        {GLM5_ERR_VERSION_MISMATCH, "version mismatch"},
        {GLM5_ERR_INCOMPATIBLE, "incompatible"},
    };
    /* Pinned values. */
    CHECK(GLM5_OK == 0 && GLM5_ERR_INVALID_ARGUMENT == 1 && GLM5_ERR_IO == 2 && GLM5_ERR_BAD_FORMAT == 3);
    CHECK(GLM5_ERR_UNSUPPORTED == 4 && GLM5_ERR_OUT_OF_MEMORY == 5 && GLM5_ERR_CONTEXT_FULL == 6);
    CHECK(GLM5_ERR_BUSY == 7 && GLM5_ERR_INTERNAL == 8 && GLM5_ERR_BUFFER_TOO_SMALL == 9);
    CHECK(GLM5_ERR_RECORD_FULL == 10 && GLM5_ERR_VERSION_MISMATCH == 11 && GLM5_ERR_INCOMPATIBLE == 12);
    size_t n = sizeof expected / sizeof expected[0];
    for (size_t i = 0; i < n; i++) {
        const char *s = glm5_status_string(expected[i].status);
        CHECK(s != NULL);
        CHECK(strcmp(s, "unknown status") != 0);
        CHECK(strcmp(s, expected[i].text) == 0);
        for (size_t j = 0; j < i; j++) CHECK(strcmp(s, glm5_status_string(expected[j].status)) != 0);
    }
    CHECK(strcmp(glm5_status_string((glm5_status)13), "unknown status") == 0);
    CHECK(strcmp(glm5_status_string((glm5_status)12345), "unknown status") == 0);
    CHECK(strcmp(glm5_status_string((glm5_status)-1), "unknown status") == 0);
}

static void test_dtype_names(void) {
    static const struct { glm5_dtype dtype; const char *name; } expected[] = {
        {GLM5_DTYPE_F32, "F32"},   {GLM5_DTYPE_BF16, "BF16"}, {GLM5_DTYPE_F16, "F16"},
        {GLM5_DTYPE_F8_E4M3, "F8_E4M3"}, {GLM5_DTYPE_F8_E5M2, "F8_E5M2"},
        {GLM5_DTYPE_I8, "I8"},     {GLM5_DTYPE_U8, "U8"},     {GLM5_DTYPE_I16, "I16"},
        {GLM5_DTYPE_I32, "I32"},   {GLM5_DTYPE_I64, "I64"},   {GLM5_DTYPE_F64, "F64"},
        {GLM5_DTYPE_BOOL, "BOOL"}, {GLM5_DTYPE_U16, "U16"},   {GLM5_DTYPE_U32, "U32"},
        {GLM5_DTYPE_U64, "U64"},
    };
    size_t n = sizeof expected / sizeof expected[0];
    for (size_t i = 0; i < n; i++) {
        CHECK((int)expected[i].dtype == (int)i); /* pinned values */
        const char *s = glm5_dtype_name(expected[i].dtype);
        CHECK(s != NULL);
        CHECK(strcmp(s, expected[i].name) == 0);
    }
    CHECK(strcmp(glm5_dtype_name((glm5_dtype)15), "unknown") == 0);
    CHECK(strcmp(glm5_dtype_name((glm5_dtype)999), "unknown") == 0);
    CHECK(strcmp(glm5_dtype_name((glm5_dtype)-1), "unknown") == 0);
}

/* ---------------------------------------------------------------------------------------------
 * Argument checking that needs no model
 * --------------------------------------------------------------------------------------------- */

static glm5_model *const SENTINEL = (glm5_model *)(uintptr_t)0x5e5e5e5e;

static void test_init_functions(void) {
    glm5_model_params_init(NULL); /* ignored */
    glm5_model_info_init(NULL);

    glm5_model_params mp;
    memset(&mp, 0xAB, sizeof mp);
    glm5_model_params_init(&mp);
    CHECK(mp.struct_size == sizeof(glm5_model_params));
    CHECK(mp.n_threads == 0);

    glm5_model_info info;
    memset(&info, 0xAB, sizeof info);
    glm5_model_info_init(&info);
    CHECK(info.struct_size == sizeof(glm5_model_info));
    CHECK(info.vocab_size == 0 && info.n_layers == 0 && info.has_mtp == 0 && info.weight_dtypes == 0);
    CHECK(info.n_parameters == 0 && info.weight_file_bytes == 0);
}

static void test_null_and_bad_arguments(const char *any_model_dir) {
    glm5_model *model = SENTINEL;
    glm5_model_params mp;

    /* NULL path, NULL out_model (with and without params). */
    CHECK_FAIL(glm5_model_load(NULL, NULL, &model), GLM5_ERR_INVALID_ARGUMENT, "path");
    CHECK(model == SENTINEL);
    glm5_model_params_init(&mp);
    CHECK_FAIL(glm5_model_load(NULL, &mp, &model), GLM5_ERR_INVALID_ARGUMENT, "path");
    CHECK(model == SENTINEL);
    CHECK_FAIL(glm5_model_load(any_model_dir, NULL, NULL), GLM5_ERR_INVALID_ARGUMENT, "out_model");
    CHECK_FAIL(glm5_model_load(any_model_dir, &mp, NULL), GLM5_ERR_INVALID_ARGUMENT, "out_model");

    /* struct_size 0 and too small. */
    glm5_model_params_init(&mp);
    mp.struct_size = 0;
    CHECK_FAIL(glm5_model_load(any_model_dir, &mp, &model), GLM5_ERR_INVALID_ARGUMENT, "struct_size");
    CHECK(model == SENTINEL);
    glm5_model_params_init(&mp);
    mp.struct_size = sizeof(glm5_model_params) - 1;
    CHECK_FAIL(glm5_model_load(any_model_dir, &mp, &model), GLM5_ERR_INVALID_ARGUMENT, "struct_size");
    CHECK(model == SENTINEL);
    glm5_model_params_init(&mp);
    mp.struct_size = 4;
    CHECK_FAIL(glm5_model_load(any_model_dir, &mp, &model), GLM5_ERR_INVALID_ARGUMENT, "glm5_model_params");
    CHECK(model == SENTINEL);

    /* n_threads out of [0, 1024]. */
    glm5_model_params_init(&mp);
    mp.n_threads = -1;
    CHECK_FAIL(glm5_model_load(any_model_dir, &mp, &model), GLM5_ERR_INVALID_ARGUMENT, "n_threads");
    CHECK(model == SENTINEL);
    mp.n_threads = 1025;
    CHECK_FAIL(glm5_model_load(any_model_dir, &mp, &model), GLM5_ERR_INVALID_ARGUMENT, "n_threads");
    CHECK(model == SENTINEL);

    /* glm5_model_get_info: NULL model, NULL info, a handle the library never returned. */
    glm5_model_info info;
    glm5_model_info_init(&info);
    CHECK_FAIL(glm5_model_get_info(NULL, &info), GLM5_ERR_INVALID_ARGUMENT, "model");
    CHECK(info.vocab_size == 0 && info.struct_size == sizeof info);
    CHECK_FAIL(glm5_model_get_info(NULL, NULL), GLM5_ERR_INVALID_ARGUMENT, "NULL");
    int not_a_model = 0;
    CHECK_FAIL(glm5_model_get_info((const glm5_model *)(void *)&not_a_model, &info), GLM5_ERR_INVALID_ARGUMENT,
               "model");
    CHECK(info.vocab_size == 0);

    /* *_free(NULL) and of a foreign pointer do nothing. */
    glm5_model_free(NULL);
    glm5_model_free((glm5_model *)(void *)&not_a_model);
    CHECK(not_a_model == 0);
}

/* ---------------------------------------------------------------------------------------------
 * Load failures on crafted folders
 * --------------------------------------------------------------------------------------------- */

static void test_load_failures(const char *valid_config_text) {
    glm5_model *model = SENTINEL;

    /* A path that does not exist: IO, and the message names the path. */
    const char *missing = "/nonexistent/glm5-test/no-such-model";
    CHECK_FAIL(glm5_model_load(missing, NULL, &model), GLM5_ERR_IO, missing);
    CHECK(model == SENTINEL);

    char dir[] = "/tmp/glm5_test_capi_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);

    /* A folder without config.json. */
    CHECK_FAIL(glm5_model_load(dir, NULL, &model), GLM5_ERR_IO, "config.json");
    CHECK_MSG(dir);
    CHECK(model == SENTINEL);

    /* Invalid JSON. */
    write_text(dir, "config.json", "{ \"model_type\": \"glm_moe_dsa\", oops");
    CHECK_FAIL(glm5_model_load(dir, NULL, &model), GLM5_ERR_BAD_FORMAT, "config.json");
    CHECK(model == SENTINEL);
    write_text(dir, "config.json", "");
    CHECK_FAIL(glm5_model_load(dir, NULL, &model), GLM5_ERR_BAD_FORMAT, "config.json");
    CHECK(model == SENTINEL);
    write_text(dir, "config.json", "[1, 2, 3]");
    CHECK_FAIL(glm5_model_load(dir, NULL, &model), GLM5_ERR_BAD_FORMAT, "config.json");
    CHECK(model == SENTINEL);

    /* A model_type this version cannot run: UNSUPPORTED, naming it. */
    write_text(dir, "config.json", "{\"model_type\": \"llama\", \"vocab_size\": 32}");
    CHECK_FAIL(glm5_model_load(dir, NULL, &model), GLM5_ERR_UNSUPPORTED, "llama");
    CHECK(model == SENTINEL);

    /* The right model_type but an incomplete config: BAD_FORMAT naming a missing key. */
    write_text(dir, "config.json", "{\"model_type\": \"glm_moe_dsa\"}");
    CHECK_FAIL(glm5_model_load(dir, NULL, &model), GLM5_ERR_BAD_FORMAT, "config.json");
    CHECK(model == SENTINEL);

    if (valid_config_text) {
        /* A complete config but no weight files: IO. */
        write_text(dir, "config.json", valid_config_text);
        CHECK_FAIL(glm5_model_load(dir, NULL, &model), GLM5_ERR_IO, "model.safetensors");
        CHECK(model == SENTINEL);

        /* A safetensors file whose header length runs past the end: BAD_FORMAT naming the file. */
        static const unsigned char garbage[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
        write_file(dir, "model.safetensors", garbage, sizeof garbage);
        CHECK_FAIL(glm5_model_load(dir, NULL, &model), GLM5_ERR_BAD_FORMAT, "model.safetensors");
        CHECK(model == SENTINEL);

        /* A header that is not JSON. */
        static const unsigned char bad_header[8 + 4] = {4, 0, 0, 0, 0, 0, 0, 0, '{', 'x', 'x', 'x'};
        write_file(dir, "model.safetensors", bad_header, sizeof bad_header);
        CHECK_FAIL(glm5_model_load(dir, NULL, &model), GLM5_ERR_BAD_FORMAT, "model.safetensors");
        CHECK(model == SENTINEL);

        /* An empty weight file. */
        write_file(dir, "model.safetensors", "", 0);
        glm5_status st = glm5_model_load(dir, NULL, &model);
        CHECK(st == GLM5_ERR_BAD_FORMAT || st == GLM5_ERR_IO);
        CHECK_MSG("model.safetensors");
        CHECK(model == SENTINEL);
        remove_file(dir, "model.safetensors");
    }

    remove_file(dir, "config.json");
    CHECK(rmdir(dir) == 0);
}

/* ---------------------------------------------------------------------------------------------
 * Thread-local last error
 * --------------------------------------------------------------------------------------------- */

struct thread_result {
    int empty_at_start;   /* glm5_last_error() was "" before this thread's first failure */
    glm5_status status;   /* of the failing call on this thread */
    char message[512];    /* its message */
};

static void *failing_thread(void *arg) {
    struct thread_result *r = arg;
    r->empty_at_start = glm5_last_error()[0] == 0;
    glm5_model *model = NULL;
    r->status = glm5_model_load("/nonexistent/glm5-thread-path", NULL, &model);
    snprintf(r->message, sizeof r->message, "%s", glm5_last_error());
    return NULL;
}

static void test_thread_local_error(void) {
    glm5_model *model = SENTINEL;
    CHECK(glm5_model_load(NULL, NULL, &model) == GLM5_ERR_INVALID_ARGUMENT);
    char before[512];
    snprintf(before, sizeof before, "%s", glm5_last_error());
    CHECK(before[0] != 0);

    struct thread_result r;
    memset(&r, 0, sizeof r);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, failing_thread, &r) == 0);
    CHECK(pthread_join(t, NULL) == 0);

    CHECK(r.empty_at_start);
    CHECK(r.status == GLM5_ERR_IO);
    CHECK(strstr(r.message, "/nonexistent/glm5-thread-path") != NULL);
    /* The main thread's message is unchanged. */
    CHECK(strcmp(glm5_last_error(), before) == 0);
    CHECK(strstr(glm5_last_error(), "glm5-thread-path") == NULL);
}

/* ---------------------------------------------------------------------------------------------
 * Fixture models
 * --------------------------------------------------------------------------------------------- */

struct info_thread_arg {
    const glm5_model *model;
    const glm5_model_info *expected;
    int ok;
};

static void *info_thread(void *arg) {
    struct info_thread_arg *a = arg;
    a->ok = 1;
    for (int i = 0; i < 200; i++) {
        glm5_model_info info;
        glm5_model_info_init(&info);
        if (glm5_model_get_info(a->model, &info) != GLM5_OK || memcmp(&info, a->expected, sizeof info) != 0) {
            a->ok = 0;
            break;
        }
    }
    return NULL;
}

static void check_fixture(const char *dir) {
    char config_path[4096];
    snprintf(config_path, sizeof config_path, "%s/config.json", dir);
    char *cfg = read_text(config_path);
    CHECK(cfg != NULL);

    glm5_model_params mp;
    glm5_model_params_init(&mp);
    mp.n_threads = 2;
    glm5_model *model = NULL;
    CHECK(glm5_model_load(dir, &mp, &model) == GLM5_OK);
    CHECK(model != NULL);

    /* A larger struct (a host built against a newer header): accepted, tail untouched. */
    struct {
        glm5_model_info info;
        unsigned char tail[32];
    } big;
    glm5_model_info_init(&big.info);
    memset(big.tail, 0xAB, sizeof big.tail);
    big.info.struct_size = sizeof big;
    CHECK(glm5_model_get_info(model, &big.info) == GLM5_OK);
    CHECK(big.info.struct_size == sizeof big);
    for (size_t i = 0; i < sizeof big.tail; i++) CHECK(big.tail[i] == 0xAB);

    /* struct_size 0 and too small: refused, info untouched. */
    glm5_model_info info;
    glm5_model_info_init(&info);
    info.struct_size = 0;
    CHECK_FAIL(glm5_model_get_info(model, &info), GLM5_ERR_INVALID_ARGUMENT, "struct_size");
    CHECK(info.vocab_size == 0 && info.struct_size == 0);
    info.struct_size = offsetof(glm5_model_info, updated_weight_bytes) - 8; /* below the first version */
    CHECK_FAIL(glm5_model_get_info(model, &info), GLM5_ERR_INVALID_ARGUMENT, "glm5_model_info");
    CHECK(info.vocab_size == 0);
    CHECK_FAIL(glm5_model_get_info(model, NULL), GLM5_ERR_INVALID_ARGUMENT, "info");

    glm5_model_info_init(&info);
    CHECK(glm5_model_get_info(model, &info) == GLM5_OK);
    CHECK(info.struct_size == sizeof info);
    big.info.struct_size = sizeof info;
    CHECK(memcmp(&big.info, &info, sizeof info) == 0);

    /* The facts against config.json. */
    CHECK(info.vocab_size > 0 && info.vocab_size == json_uint(cfg, "vocab_size"));
    CHECK(info.hidden_size > 0 && info.hidden_size == json_uint(cfg, "hidden_size"));
    CHECK(info.n_layers > 0 && info.n_layers == json_uint(cfg, "num_hidden_layers"));
    CHECK(info.n_dense_layers == json_uint(cfg, "first_k_dense_replace"));
    CHECK(info.n_dense_layers + info.n_moe_layers == info.n_layers);
    CHECK(info.n_heads == json_uint(cfg, "num_attention_heads"));
    CHECK(info.q_lora_rank == json_uint(cfg, "q_lora_rank"));
    CHECK(info.kv_lora_rank == json_uint(cfg, "kv_lora_rank"));
    CHECK(info.qk_nope_head_dim == json_uint(cfg, "qk_nope_head_dim"));
    CHECK(info.qk_rope_head_dim == json_uint(cfg, "qk_rope_head_dim"));
    CHECK(info.v_head_dim == json_uint(cfg, "v_head_dim"));
    CHECK(info.n_routed_experts == json_uint(cfg, "n_routed_experts"));
    CHECK(info.n_experts_per_tok == json_uint(cfg, "num_experts_per_tok"));
    CHECK(info.n_shared_experts == json_uint(cfg, "n_shared_experts"));
    CHECK(info.index_n_heads == json_uint(cfg, "index_n_heads"));
    CHECK(info.index_head_dim == json_uint(cfg, "index_head_dim"));
    CHECK(info.index_topk == json_uint(cfg, "index_topk"));
    CHECK(info.max_position_embeddings == json_uint(cfg, "max_position_embeddings"));
    /* The fixtures carry their MTP layer. */
    CHECK(info.has_mtp == 1);
    CHECK(info.n_mtp_layers == json_uint(cfg, "num_nextn_predict_layers"));

    /* The checkpoint's dtype is among the weights; nothing outside the known dtypes. */
    char dtype[64] = "";
    if (json_string(cfg, "dtype", dtype, sizeof dtype) || json_string(cfg, "torch_dtype", dtype, sizeof dtype)) {
        if (strcmp(dtype, "float32") == 0) CHECK(info.weight_dtypes & (1u << GLM5_DTYPE_F32));
        else if (strcmp(dtype, "bfloat16") == 0) CHECK(info.weight_dtypes & (1u << GLM5_DTYPE_BF16));
        else if (strcmp(dtype, "float16") == 0) CHECK(info.weight_dtypes & (1u << GLM5_DTYPE_F16));
    }
    CHECK(info.weight_dtypes != 0);
    CHECK((info.weight_dtypes >> (GLM5_DTYPE_U64 + 1)) == 0);

    /* Linear weight formats as the config declares them (lm_head and the router stay float), and
     * resident memory: the mapped tensor data plus small copies (norm vectors). */
    char method[64] = "";
    CHECK(info.weight_formats & GLM5_FORMAT_FLOAT);
    if (json_string(cfg, "quant_method", method, sizeof method)) {
        if (strcmp(method, "fp8") == 0) CHECK(info.weight_formats == (GLM5_FORMAT_FLOAT | GLM5_FORMAT_FP8_BLOCK));
        else CHECK(info.weight_formats == (GLM5_FORMAT_FLOAT | GLM5_FORMAT_INT4_GROUP));
    } else {
        CHECK(info.weight_formats == GLM5_FORMAT_FLOAT);
    }
    CHECK(info.reserved0 == 0);
    CHECK(info.resident_weight_bytes >= info.weight_file_bytes);
    CHECK(info.resident_weight_bytes < info.weight_file_bytes + info.weight_file_bytes / 20 + 65536);

    /* Sizes: every element is 1 to 8 bytes. */
    CHECK(info.n_parameters > 0);
    CHECK(info.weight_file_bytes >= info.n_parameters);
    CHECK(info.weight_file_bytes <= 8 * info.n_parameters);
    if (info.weight_dtypes == (1u << GLM5_DTYPE_F32)) CHECK(info.weight_file_bytes == 4 * info.n_parameters);

    /* A sharded checkpoint: the index's total_size is the tensor bytes. */
    char index_path[4096];
    snprintf(index_path, sizeof index_path, "%s/model.safetensors.index.json", dir);
    if (file_exists(index_path)) {
        char *index = read_text(index_path);
        CHECK(index != NULL);
        long long total = json_uint(index, "total_size");
        if (total >= 0) CHECK(info.weight_file_bytes == (uint64_t)total);
        free(index);
    }

    /* One model, four threads reading it at once. */
    pthread_t threads[4];
    struct info_thread_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i].model = model;
        args[i].expected = &info;
        args[i].ok = 0;
        CHECK(pthread_create(&threads[i], NULL, info_thread, &args[i]) == 0);
    }
    for (int i = 0; i < 4; i++) {
        CHECK(pthread_join(threads[i], NULL) == 0);
        CHECK(args[i].ok);
    }

    /* NULL params means defaults; two models of one folder are independent handles. */
    glm5_model *second = NULL;
    CHECK(glm5_model_load(dir, NULL, &second) == GLM5_OK);
    CHECK(second != NULL && second != model);
    glm5_model_free(second);
    glm5_model_info_init(&info);
    CHECK(glm5_model_get_info(model, &info) == GLM5_OK);

    printf("  %-32s vocab %u, hidden %u, layers %u (%u dense + %u MoE), mtp %u, %llu params, %llu bytes\n", dir,
           info.vocab_size, info.hidden_size, info.n_layers, info.n_dense_layers, info.n_moe_layers, info.n_mtp_layers,
           (unsigned long long)info.n_parameters, (unsigned long long)info.weight_file_bytes);

    /* Freed: the handle is dead, and freeing it again does nothing. */
    glm5_model_free(model);
    glm5_model_info_init(&info);
    CHECK_FAIL(glm5_model_get_info(model, &info), GLM5_ERR_INVALID_ARGUMENT, "model");
    CHECK(info.vocab_size == 0);
    glm5_model_free(model);

    free(cfg);
}

/* ---------------------------------------------------------------------------------------------
 * golden.safetensors: a minimal reader (8-byte little-endian header length, JSON header, data)
 * --------------------------------------------------------------------------------------------- */

struct golden {
    unsigned char *bytes; /* the whole file */
    size_t size;
    char *header;         /* the JSON header, NUL-terminated copy */
    size_t data_start;    /* 8 + header length */
};

/* Opens <dir>/golden.safetensors; returns 0 if there is none. */
static int golden_open(const char *dir, struct golden *g) {
    memset(g, 0, sizeof *g);
    char path[4096];
    snprintf(path, sizeof path, "%s/golden.safetensors", dir);
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    CHECK(fseek(f, 0, SEEK_END) == 0);
    long len = ftell(f);
    CHECK(len >= 8);
    CHECK(fseek(f, 0, SEEK_SET) == 0);
    g->size = (size_t)len;
    g->bytes = malloc(g->size);
    CHECK(g->bytes != NULL);
    CHECK(fread(g->bytes, 1, g->size, f) == g->size);
    fclose(f);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | g->bytes[i];
    CHECK(n <= g->size - 8);
    g->header = malloc((size_t)n + 1);
    CHECK(g->header != NULL);
    memcpy(g->header, g->bytes + 8, (size_t)n);
    g->header[n] = 0;
    g->data_start = 8 + (size_t)n;
    return 1;
}

static void golden_close(struct golden *g) {
    free(g->bytes);
    free(g->header);
    memset(g, 0, sizeof *g);
}

/* A copy of tensor `name` (dtype "F32" or "I32", 4-byte elements) and its element count, or NULL
 * if the file has no such tensor. The entry of a tensor is a flat object:
 * "name":{"dtype":"F32","shape":[..],"data_offsets":[begin,end]}. */
static void *golden_tensor(const struct golden *g, const char *name, const char *dtype, size_t *count) {
    char key[256];
    snprintf(key, sizeof key, "\"%s\"", name);
    const char *p = strstr(g->header, key);
    if (!p) return NULL;
    const char *end = strchr(p, '}');
    CHECK(end != NULL);
    char want[64];
    snprintf(want, sizeof want, "\"%s\"", dtype);
    const char *d = strstr(p, "\"dtype\"");
    CHECK(d != NULL && d < end);
    d = strchr(d + 7, '"');
    CHECK(d != NULL && strncmp(d, want, strlen(want)) == 0);
    const char *o = strstr(p, "\"data_offsets\"");
    CHECK(o != NULL && o < end);
    o = strchr(o, '[');
    CHECK(o != NULL);
    unsigned long long begin = 0, stop = 0;
    CHECK(sscanf(o, "[ %llu , %llu ]", &begin, &stop) == 2);
    CHECK(begin <= stop && stop <= g->size - g->data_start && (stop - begin) % 4 == 0);
    size_t n = (size_t)(stop - begin) / 4;
    void *out = malloc(n ? n * 4 : 1);
    CHECK(out != NULL);
    memcpy(out, g->bytes + g->data_start + begin, n * 4);
    *count = n;
    return out;
}

/* ---------------------------------------------------------------------------------------------
 * Session helpers
 * --------------------------------------------------------------------------------------------- */

static float max_abs_diff(const float *a, const float *b, size_t n) {
    float m = 0;
    for (size_t i = 0; i < n; i++) {
        float d = a[i] > b[i] ? a[i] - b[i] : b[i] - a[i];
        if (!(d <= m)) m = d; /* NaN wins */
    }
    return m;
}

static size_t sess_n_tokens(glm5_session *s) {
    size_t n = (size_t)-1;
    CHECK(glm5_session_n_tokens(s, &n) == GLM5_OK);
    return n;
}

/* The kept logits through the two-call pattern; *rows and *n_floats receive the sizes. */
static float *sess_logits(glm5_session *s, size_t *rows, size_t *n_floats) {
    size_t r = (size_t)-1, nf = (size_t)-1;
    glm5_status st = glm5_session_get_logits(s, NULL, 0, &r, &nf);
    CHECK(st == GLM5_OK || st == GLM5_ERR_BUFFER_TOO_SMALL);
    CHECK(r != (size_t)-1 && nf != (size_t)-1);
    CHECK((st == GLM5_OK) == (nf == 0));
    float *out = malloc(nf ? nf * sizeof(float) : 1);
    CHECK(out != NULL);
    size_t r2 = (size_t)-1, nf2 = (size_t)-1;
    CHECK(glm5_session_get_logits(s, out, nf, &r2, &nf2) == GLM5_OK);
    CHECK(r2 == r && nf2 == nf);
    *rows = r;
    *n_floats = nf;
    return out;
}

static int32_t *sess_tokens(glm5_session *s, size_t *n) {
    size_t count = (size_t)-1;
    glm5_status st = glm5_session_get_tokens(s, NULL, 0, &count);
    CHECK(st == GLM5_OK || st == GLM5_ERR_BUFFER_TOO_SMALL);
    CHECK(count == sess_n_tokens(s));
    CHECK((st == GLM5_OK) == (count == 0));
    int32_t *out = malloc(count ? count * sizeof(int32_t) : 1);
    CHECK(out != NULL);
    size_t count2 = (size_t)-1;
    CHECK(glm5_session_get_tokens(s, out, count, &count2) == GLM5_OK);
    CHECK(count2 == count);
    *n = count;
    return out;
}

/* Everything a host can observe of a session: its tokens and its kept logits. */
struct snapshot {
    size_t n_tokens;
    int32_t *tokens;
    size_t rows, n_floats;
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

/* The session looks exactly as in `sn`. */
#define CHECK_UNCHANGED(s, sn)                                                                     \
    do {                                                                                          \
        struct snapshot now_ = take_snapshot(s);                                                  \
        CHECK(now_.n_tokens == (sn).n_tokens);                                                    \
        CHECK(memcmp(now_.tokens, (sn).tokens, now_.n_tokens * sizeof(int32_t)) == 0);            \
        CHECK(now_.rows == (sn).rows && now_.n_floats == (sn).n_floats);                          \
        CHECK(memcmp(now_.logits, (sn).logits, now_.n_floats * sizeof(float)) == 0);              \
        free_snapshot(&now_);                                                                     \
    } while (0)

/* The session's caches are intact: appending one more token gives, bit for bit, the logprob that
 * glm5_model_score gives for the whole sequence. The token stays appended. */
static void check_cache_intact(const glm5_model *model, glm5_session *s, int32_t next) {
    size_t n = 0;
    int32_t *toks = sess_tokens(s, &n);
    int32_t *all = malloc((n + 1) * sizeof(int32_t));
    float *want = malloc((n + 1) * sizeof(float));
    CHECK(all != NULL && want != NULL);
    if (n) memcpy(all, toks, n * sizeof(int32_t));
    all[n] = next;
    CHECK(glm5_model_score(model, all, n + 1, want) == GLM5_OK);
    float got = 0;
    CHECK(glm5_session_append(s, &next, 1, GLM5_LOGITS_NONE, &got) == GLM5_OK);
    CHECK(memcmp(&got, &want[n], sizeof got) == 0);
    CHECK(sess_n_tokens(s) == n + 1);
    free(toks);
    free(all);
    free(want);
}

static glm5_session *new_session(glm5_model *model, uint32_t max_tokens) {
    glm5_session_params sp;
    glm5_session_params_init(&sp);
    sp.max_tokens = max_tokens;
    glm5_session *s = NULL;
    CHECK(glm5_session_new(model, &sp, &s) == GLM5_OK);
    CHECK(s != NULL);
    return s;
}

static glm5_model *load_model(const char *dir, int32_t threads) {
    glm5_model_params mp;
    glm5_model_params_init(&mp);
    mp.n_threads = threads;
    glm5_model *model = NULL;
    CHECK(glm5_model_load(dir, &mp, &model) == GLM5_OK);
    return model;
}

static glm5_model_info model_info(const glm5_model *model) {
    glm5_model_info info;
    glm5_model_info_init(&info);
    CHECK(glm5_model_get_info(model, &info) == GLM5_OK);
    return info;
}

/* ---------------------------------------------------------------------------------------------
 * Sessions: argument checking, failures leave the session unchanged, buffers, lifetime
 * --------------------------------------------------------------------------------------------- */

static glm5_session *const SESSION_SENTINEL = (glm5_session *)(uintptr_t)0x5e55;

static void test_session_init_function(void) {
    glm5_session_params_init(NULL); /* ignored */
    glm5_session_params sp;
    memset(&sp, 0xAB, sizeof sp);
    glm5_session_params_init(&sp);
    CHECK(sp.struct_size == sizeof(glm5_session_params));
    CHECK(sp.max_tokens == 0);
    /* Pinned enum values. */
    CHECK(GLM5_LOGITS_NONE == 0 && GLM5_LOGITS_LAST == 1 && GLM5_LOGITS_ALL == 2);
}

/* Every session function refuses NULL, a handle the library never returned, a model handle, and a
 * freed session; outputs stay untouched. */
static void check_session_refused(glm5_session *bad, const char *needle) {
    int32_t tok = 1;
    float lp = 42.0f;
    CHECK_FAIL(glm5_session_append(bad, &tok, 1, GLM5_LOGITS_LAST, &lp), GLM5_ERR_INVALID_ARGUMENT, needle);
    CHECK(lp == 42.0f);
    float buf[4] = {7, 7, 7, 7};
    size_t rows = 99, nf = 99;
    CHECK_FAIL(glm5_session_get_logits(bad, buf, 4, &rows, &nf), GLM5_ERR_INVALID_ARGUMENT, needle);
    CHECK(rows == 99 && nf == 99 && buf[0] == 7);
    CHECK_FAIL(glm5_session_get_logits(bad, NULL, 0, NULL, NULL), GLM5_ERR_INVALID_ARGUMENT, needle);
    int32_t out_tok[2] = {-5, -5};
    float out_lp[2] = {3, 3};
    CHECK_FAIL(glm5_session_generate(bad, 2, out_tok, out_lp), GLM5_ERR_INVALID_ARGUMENT, needle);
    CHECK(out_tok[0] == -5 && out_lp[0] == 3);
    size_t n = 99;
    CHECK_FAIL(glm5_session_n_tokens(bad, &n), GLM5_ERR_INVALID_ARGUMENT, needle);
    CHECK(n == 99);
    CHECK_FAIL(glm5_session_get_tokens(bad, out_tok, 2, &n), GLM5_ERR_INVALID_ARGUMENT, needle);
    CHECK(n == 99 && out_tok[0] == -5);
    CHECK_FAIL(glm5_session_truncate(bad, 0), GLM5_ERR_INVALID_ARGUMENT, needle);
    glm5_session_free(bad); /* ignored */
}

static void test_session_arguments(const char *dir) {
    glm5_model *model = load_model(dir, 2);
    glm5_model_info info = model_info(model);
    const uint32_t V = info.vocab_size, P = info.max_position_embeddings;

    /* glm5_session_new: NULL, dead and foreign models, NULL out_session. */
    glm5_session *s = SESSION_SENTINEL;
    CHECK_FAIL(glm5_session_new(NULL, NULL, &s), GLM5_ERR_INVALID_ARGUMENT, "model");
    CHECK(s == SESSION_SENTINEL);
    int not_a_handle = 0;
    CHECK_FAIL(glm5_session_new((glm5_model *)(void *)&not_a_handle, NULL, &s), GLM5_ERR_INVALID_ARGUMENT, "model");
    CHECK(s == SESSION_SENTINEL);
    CHECK_FAIL(glm5_session_new(model, NULL, NULL), GLM5_ERR_INVALID_ARGUMENT, "out_session");

    /* struct_size 0 and too small; max_tokens above max_position_embeddings. */
    glm5_session_params sp;
    glm5_session_params_init(&sp);
    sp.struct_size = 0;
    CHECK_FAIL(glm5_session_new(model, &sp, &s), GLM5_ERR_INVALID_ARGUMENT, "struct_size");
    CHECK(s == SESSION_SENTINEL);
    sp.struct_size = 8 - 1; /* below the first version (struct_size + max_tokens) */
    CHECK_FAIL(glm5_session_new(model, &sp, &s), GLM5_ERR_INVALID_ARGUMENT, "glm5_session_params");
    CHECK(s == SESSION_SENTINEL);
    sp.struct_size = 4;
    CHECK_FAIL(glm5_session_new(model, &sp, &s), GLM5_ERR_INVALID_ARGUMENT, "struct_size");
    CHECK(s == SESSION_SENTINEL);
    glm5_session_params_init(&sp);
    sp.max_tokens = P + 1;
    CHECK_FAIL(glm5_session_new(model, &sp, &s), GLM5_ERR_INVALID_ARGUMENT, "max_tokens");
    CHECK(s == SESSION_SENTINEL);
    sp.max_tokens = UINT32_MAX;
    CHECK_FAIL(glm5_session_new(model, &sp, &s), GLM5_ERR_INVALID_ARGUMENT, "max_tokens");
    CHECK(s == SESSION_SENTINEL);

    /* Accepted: NULL params, max_tokens = the bound, a larger struct (a newer header). */
    CHECK(glm5_session_new(model, NULL, &s) == GLM5_OK && s != NULL && s != SESSION_SENTINEL);
    CHECK(sess_n_tokens(s) == 0);
    glm5_session_free(s);
    s = new_session(model, P);
    glm5_session_free(s);
    struct {
        glm5_session_params p;
        unsigned char tail[16];
    } big;
    glm5_session_params_init(&big.p);
    memset(big.tail, 0xCD, sizeof big.tail);
    big.p.struct_size = sizeof big;
    big.p.max_tokens = 3;
    s = NULL;
    CHECK(glm5_session_new(model, &big.p, &s) == GLM5_OK && s != NULL);
    int32_t three[4] = {1, 2, 3, 4};
    CHECK_FAIL(glm5_session_append(s, three, 4, GLM5_LOGITS_NONE, NULL), GLM5_ERR_CONTEXT_FULL, "3"); /* max 3 */
    CHECK(glm5_session_append(s, three, 3, GLM5_LOGITS_NONE, NULL) == GLM5_OK);
    /* An absurd n_tokens is refused before the ids are read (the buffer here holds only 4). */
    CHECK_FAIL(glm5_session_append(s, three, (size_t)1 << 38, GLM5_LOGITS_NONE, NULL), GLM5_ERR_CONTEXT_FULL, "maximum");
    CHECK_FAIL(glm5_session_append(s, three, SIZE_MAX, GLM5_LOGITS_NONE, NULL), GLM5_ERR_INVALID_ARGUMENT, "n_tokens");
    {
        float lp4[4];
        CHECK_FAIL(glm5_model_score(model, three, (size_t)1 << 38, lp4), GLM5_ERR_CONTEXT_FULL, "max_position_embeddings");
    }
    glm5_session_free(s);

    /* NULL, foreign, model-as-session and freed handles, for every session function. */
    glm5_session_free(NULL);
    check_session_refused(NULL, "session is NULL");
    check_session_refused((glm5_session *)(void *)&not_a_handle, "session");
    CHECK(not_a_handle == 0);
    check_session_refused((glm5_session *)(void *)model, "session");
    CHECK(model_info(model).vocab_size == V); /* the model survived being passed as a session */
    glm5_session *dead = new_session(model, 0);
    glm5_session_free(dead);
    check_session_refused(dead, "session");
    glm5_session_free(dead); /* twice: ignored */
    /* Freed, then its memory reused by new sessions: the old handle still reaches none of them,
     * and no handle is given out twice (sessions made and freed in turn reuse the same memory). */
    {
        glm5_session *seen[64];
        for (int i = 0; i < 64; i++) {
            seen[i] = new_session(model, 0);
            glm5_session_free(seen[i]);
            for (int j = 0; j < i; j++) CHECK(seen[j] != seen[i]);
            CHECK(seen[i] != dead);
        }
        glm5_session *fresh[8];
        for (int i = 0; i < 8; i++) {
            fresh[i] = new_session(model, 0);
            CHECK(fresh[i] != dead);
        }
        check_session_refused(dead, "session");
        glm5_session_free(dead); /* must not free one of the new sessions */
        for (int i = 0; i < 8; i++) {
            size_t n = 1;
            CHECK(glm5_session_n_tokens(fresh[i], &n) == GLM5_OK && n == 0);
            glm5_session_free(fresh[i]);
        }
    }

    /* NULL outputs. */
    s = new_session(model, 0);
    CHECK_FAIL(glm5_session_n_tokens(s, NULL), GLM5_ERR_INVALID_ARGUMENT, "out");
    CHECK(glm5_session_get_tokens(s, NULL, 0, NULL) == GLM5_OK); /* empty: nothing needed */

    /* An empty session: no tokens, no logits; generate refuses, truncate(0) is fine. */
    size_t rows = 99, nf = 99;
    CHECK(glm5_session_get_logits(s, NULL, 0, &rows, &nf) == GLM5_OK);
    CHECK(rows == 0 && nf == 0);
    int32_t gen[4] = {-5, -5, -5, -5};
    float gen_lp[4] = {3, 3, 3, 3};
    CHECK_FAIL(glm5_session_generate(s, 2, gen, gen_lp), GLM5_ERR_INVALID_ARGUMENT, "token");
    CHECK(gen[0] == -5 && gen_lp[0] == 3);
    CHECK(sess_n_tokens(s) == 0);
    CHECK_FAIL(glm5_session_truncate(s, 1), GLM5_ERR_INVALID_ARGUMENT, "1");
    CHECK(glm5_session_truncate(s, 0) == GLM5_OK);

    /* Append failures leave the session exactly as it was: tokens, kept logits, caches. */
    int32_t prompt[5] = {3, 1, 4, 1, 5};
    float lp[5];
    CHECK(glm5_session_append(s, prompt, 5, GLM5_LOGITS_LAST, lp) == GLM5_OK);
    CHECK(lp[0] != lp[0]); /* NaN for the first token of the session */
    for (int i = 1; i < 5; i++) CHECK(lp[i] <= 0.0f);
    struct snapshot before = take_snapshot(s);
    CHECK(before.n_tokens == 5 && before.rows == 1 && before.n_floats == V);

    float lp_out[3] = {9, 9, 9};
    int32_t bad[3] = {1, 2, 3};
    CHECK_FAIL(glm5_session_append(s, bad, 0, GLM5_LOGITS_ALL, lp_out), GLM5_ERR_INVALID_ARGUMENT, "n_tokens");
    CHECK_UNCHANGED(s, before);
    CHECK_FAIL(glm5_session_append(s, NULL, 2, GLM5_LOGITS_ALL, lp_out), GLM5_ERR_INVALID_ARGUMENT, "tokens");
    CHECK_UNCHANGED(s, before);
    bad[2] = -1;
    CHECK_FAIL(glm5_session_append(s, bad, 3, GLM5_LOGITS_ALL, lp_out), GLM5_ERR_INVALID_ARGUMENT, "-1");
    CHECK_MSG("index 2");
    CHECK_UNCHANGED(s, before);
    bad[2] = 3;
    bad[1] = (int32_t)V;
    char v_text[32];
    snprintf(v_text, sizeof v_text, "%u", V);
    CHECK_FAIL(glm5_session_append(s, bad, 3, GLM5_LOGITS_ALL, lp_out), GLM5_ERR_INVALID_ARGUMENT, v_text);
    CHECK_MSG("index 1");
    CHECK_UNCHANGED(s, before);
    bad[1] = INT32_MIN;
    CHECK_FAIL(glm5_session_append(s, bad, 3, GLM5_LOGITS_NONE, NULL), GLM5_ERR_INVALID_ARGUMENT, "index 1");
    CHECK_UNCHANGED(s, before);
    bad[1] = 2;
    CHECK_FAIL(glm5_session_append(s, bad, 3, (glm5_logits)3, lp_out), GLM5_ERR_INVALID_ARGUMENT, "keep");
    CHECK_UNCHANGED(s, before);
    CHECK_FAIL(glm5_session_append(s, bad, (size_t)-1, GLM5_LOGITS_NONE, NULL), GLM5_ERR_INVALID_ARGUMENT,
               "n_tokens");
    CHECK_UNCHANGED(s, before);
    CHECK(lp_out[0] == 9 && lp_out[1] == 9 && lp_out[2] == 9);
    check_cache_intact(model, s, 7);

    /* Truncate beyond the end: refused, unchanged. */
    free_snapshot(&before);
    CHECK(glm5_session_append(s, bad, 3, GLM5_LOGITS_ALL, NULL) == GLM5_OK);
    before = take_snapshot(s);
    CHECK(before.n_tokens == 9 && before.rows == 3);
    CHECK_FAIL(glm5_session_truncate(s, 10), GLM5_ERR_INVALID_ARGUMENT, "10");
    CHECK_UNCHANGED(s, before);
    CHECK_FAIL(glm5_session_truncate(s, (size_t)-1), GLM5_ERR_INVALID_ARGUMENT, "n_tokens");
    CHECK_UNCHANGED(s, before);

    /* get_logits: the two-call pattern, a short buffer, NULL out with room. */
    const size_t need = 3 * (size_t)V;
    rows = 99;
    nf = 99;
    CHECK_FAIL(glm5_session_get_logits(s, NULL, 0, &rows, &nf), GLM5_ERR_BUFFER_TOO_SMALL, "capacity");
    CHECK(rows == 3 && nf == need);
    float *logits = malloc((need + 1) * sizeof(float));
    CHECK(logits != NULL);
    for (size_t i = 0; i <= need; i++) logits[i] = -12345.0f;
    rows = nf = 99;
    CHECK_FAIL(glm5_session_get_logits(s, logits, need - 1, &rows, &nf), GLM5_ERR_BUFFER_TOO_SMALL, "capacity");
    CHECK(rows == 3 && nf == need);
    for (size_t i = 0; i <= need; i++) CHECK(logits[i] == -12345.0f); /* nothing copied */
    CHECK_FAIL(glm5_session_get_logits(s, NULL, need, NULL, NULL), GLM5_ERR_INVALID_ARGUMENT, "out");
    CHECK(glm5_session_get_logits(s, logits, need + 1, NULL, NULL) == GLM5_OK); /* sizes optional */
    CHECK(memcmp(logits, before.logits, need * sizeof(float)) == 0);
    CHECK(logits[need] == -12345.0f); /* nothing past n_floats */
    free(logits);

    /* get_tokens: the same pattern. */
    int32_t toks[16];
    for (int i = 0; i < 16; i++) toks[i] = -7;
    size_t count = 99;
    CHECK_FAIL(glm5_session_get_tokens(s, NULL, 0, &count), GLM5_ERR_BUFFER_TOO_SMALL, "capacity");
    CHECK(count == 9);
    count = 99;
    CHECK_FAIL(glm5_session_get_tokens(s, toks, 8, &count), GLM5_ERR_BUFFER_TOO_SMALL, "capacity");
    CHECK(count == 9 && toks[0] == -7);
    CHECK_FAIL(glm5_session_get_tokens(s, NULL, 9, &count), GLM5_ERR_INVALID_ARGUMENT, "out");
    CHECK(glm5_session_get_tokens(s, toks, 16, NULL) == GLM5_OK);
    CHECK(memcmp(toks, before.tokens, 9 * sizeof(int32_t)) == 0 && toks[9] == -7);
    CHECK(toks[0] == 3 && toks[4] == 5 && toks[5] == 7 && toks[6] == 1 && toks[8] == 3);
    free_snapshot(&before);

    /* Generate: NULL tokens_out, n_new 0. */
    before = take_snapshot(s);
    CHECK_FAIL(glm5_session_generate(s, 1, NULL, gen_lp), GLM5_ERR_INVALID_ARGUMENT, "tokens_out");
    CHECK_UNCHANGED(s, before);
    CHECK(glm5_session_generate(s, 0, NULL, NULL) == GLM5_OK);
    CHECK(sess_n_tokens(s) == before.n_tokens);
    free_snapshot(&before);

    /* Kept logits: replaced by each append, cleared by NONE, generate and truncate. */
    CHECK(glm5_session_append(s, prompt, 2, GLM5_LOGITS_LAST, NULL) == GLM5_OK);
    CHECK(glm5_session_get_logits(s, NULL, 0, &rows, &nf) == GLM5_ERR_BUFFER_TOO_SMALL && rows == 1 && nf == V);
    CHECK(glm5_session_generate(s, 1, gen, NULL) == GLM5_OK);
    CHECK(glm5_session_get_logits(s, NULL, 0, &rows, &nf) == GLM5_OK && rows == 0 && nf == 0);
    CHECK(glm5_session_append(s, prompt, 2, GLM5_LOGITS_ALL, NULL) == GLM5_OK);
    CHECK(glm5_session_get_logits(s, NULL, 0, &rows, &nf) == GLM5_ERR_BUFFER_TOO_SMALL && rows == 2);
    CHECK(glm5_session_append(s, prompt, 1, GLM5_LOGITS_NONE, NULL) == GLM5_OK);
    CHECK(glm5_session_get_logits(s, NULL, 0, &rows, &nf) == GLM5_OK && rows == 0 && nf == 0);
    CHECK(glm5_session_append(s, prompt, 2, GLM5_LOGITS_LAST, NULL) == GLM5_OK);
    CHECK(glm5_session_truncate(s, sess_n_tokens(s) - 1) == GLM5_OK);
    CHECK(glm5_session_get_logits(s, NULL, 0, &rows, &nf) == GLM5_OK && rows == 0 && nf == 0);
    glm5_session_free(s);

    /* glm5_model_score: argument checks, logprobs untouched on failure. */
    float sc[4] = {5, 5, 5, 5};
    int32_t ids[4] = {1, 2, 3, 4};
    CHECK_FAIL(glm5_model_score(NULL, ids, 4, sc), GLM5_ERR_INVALID_ARGUMENT, "model");
    CHECK_FAIL(glm5_model_score((const glm5_model *)(void *)&not_a_handle, ids, 4, sc), GLM5_ERR_INVALID_ARGUMENT,
               "model");
    CHECK_FAIL(glm5_model_score(model, NULL, 4, sc), GLM5_ERR_INVALID_ARGUMENT, "tokens");
    CHECK_FAIL(glm5_model_score(model, ids, 4, NULL), GLM5_ERR_INVALID_ARGUMENT, "logprobs");
    CHECK_FAIL(glm5_model_score(model, ids, 0, sc), GLM5_ERR_INVALID_ARGUMENT, "n_tokens");
    ids[3] = -3;
    CHECK_FAIL(glm5_model_score(model, ids, 4, sc), GLM5_ERR_INVALID_ARGUMENT, "index 3");
    ids[3] = (int32_t)V;
    CHECK_FAIL(glm5_model_score(model, ids, 4, sc), GLM5_ERR_INVALID_ARGUMENT, "index 3");
    for (int i = 0; i < 4; i++) CHECK(sc[i] == 5);
    ids[3] = (int32_t)V - 1;
    CHECK(glm5_model_score(model, ids, 4, sc) == GLM5_OK);
    CHECK(sc[0] != sc[0] && sc[1] <= 0 && sc[3] <= 0);
    CHECK(glm5_model_score(model, ids, 1, sc) == GLM5_OK && sc[0] != sc[0]);
    /* Longer than max_position_embeddings: CONTEXT_FULL; exactly the maximum is fine. */
    int32_t *longer = calloc((size_t)P + 1, sizeof(int32_t));
    float *longer_lp = malloc(((size_t)P + 1) * sizeof(float));
    CHECK(longer != NULL && longer_lp != NULL);
    for (uint32_t i = 0; i <= P; i++) longer[i] = (int32_t)((i * 7u + 1u) % V);
    longer_lp[0] = 5;
    CHECK_FAIL(glm5_model_score(model, longer, (size_t)P + 1, longer_lp), GLM5_ERR_CONTEXT_FULL, "maximum");
    CHECK(longer_lp[0] == 5);

    /* CONTEXT_FULL on append and generate: session unchanged and still usable. */
    s = new_session(model, 8);
    CHECK(glm5_session_append(s, longer, 6, GLM5_LOGITS_LAST, NULL) == GLM5_OK);
    before = take_snapshot(s);
    CHECK_FAIL(glm5_session_append(s, longer + 6, 3, GLM5_LOGITS_ALL, lp_out), GLM5_ERR_CONTEXT_FULL, "8");
    CHECK_UNCHANGED(s, before);
    for (int i = 0; i < 4; i++) gen[i] = -5;
    CHECK_FAIL(glm5_session_generate(s, 3, gen, gen_lp), GLM5_ERR_CONTEXT_FULL, "8");
    CHECK_UNCHANGED(s, before); /* checked before anything is generated */
    CHECK(gen[0] == -5);
    CHECK(glm5_session_generate(s, 1, gen, gen_lp) == GLM5_OK); /* 7 of 8 */
    CHECK(gen[0] >= 0 && (uint32_t)gen[0] < V && gen_lp[0] <= 0);
    check_cache_intact(model, s, 2);                             /* 8 of 8 */
    int32_t one = 1;
    CHECK_FAIL(glm5_session_append(s, &one, 1, GLM5_LOGITS_NONE, NULL), GLM5_ERR_CONTEXT_FULL, "8");
    CHECK_FAIL(glm5_session_generate(s, 1, gen, NULL), GLM5_ERR_CONTEXT_FULL, "8");
    CHECK(sess_n_tokens(s) == 8);
    CHECK(glm5_session_truncate(s, 7) == GLM5_OK);
    check_cache_intact(model, s, 3);
    free_snapshot(&before);
    glm5_session_free(s);

    /* A session of max_position_embeddings tokens: full at exactly that many. */
    s = new_session(model, 0);
    CHECK(glm5_session_append(s, longer, P, GLM5_LOGITS_NONE, NULL) == GLM5_OK);
    CHECK_FAIL(glm5_session_append(s, &one, 1, GLM5_LOGITS_NONE, NULL), GLM5_ERR_CONTEXT_FULL, "");
    CHECK_FAIL(glm5_session_generate(s, 1, gen, NULL), GLM5_ERR_CONTEXT_FULL, "");
    CHECK(sess_n_tokens(s) == P);
    glm5_session_free(s);
    free(longer);
    free(longer_lp);

    glm5_model_free(model);
}

/* Freeing the model first: the session keeps the weights and stays fully usable. */
static void test_session_outlives_model(const char *dir) {
    glm5_model *model = load_model(dir, 2);
    const uint32_t V = model_info(model).vocab_size;
    int32_t ids[12];
    for (int i = 0; i < 12; i++) ids[i] = (int32_t)((i * 5 + 2) % (int)V);
    float want[12];
    CHECK(glm5_model_score(model, ids, 12, want) == GLM5_OK);
    glm5_session *ref = new_session(model, 0);
    CHECK(glm5_session_append(ref, ids, 6, GLM5_LOGITS_NONE, NULL) == GLM5_OK);
    int32_t want_gen[4];
    float want_gen_lp[4];
    CHECK(glm5_session_generate(ref, 4, want_gen, want_gen_lp) == GLM5_OK);
    glm5_session_free(ref);

    glm5_session *s = new_session(model, 0);
    glm5_session *s2 = new_session(model, 0);
    CHECK(glm5_session_append(s, ids, 3, GLM5_LOGITS_NONE, NULL) == GLM5_OK);
    glm5_model_free(model);

    /* The model handle is dead ... */
    glm5_model_info info;
    glm5_model_info_init(&info);
    CHECK_FAIL(glm5_model_get_info(model, &info), GLM5_ERR_INVALID_ARGUMENT, "model");
    glm5_session *s3 = SESSION_SENTINEL;
    CHECK_FAIL(glm5_session_new(model, NULL, &s3), GLM5_ERR_INVALID_ARGUMENT, "model");
    CHECK(s3 == SESSION_SENTINEL);
    float lp = 1;
    CHECK_FAIL(glm5_model_score(model, ids, 2, &lp), GLM5_ERR_INVALID_ARGUMENT, "model");
    CHECK(lp == 1);

    /* ... the sessions are not. */
    float got[12];
    CHECK(glm5_session_append(s, ids + 3, 9, GLM5_LOGITS_ALL, got + 3) == GLM5_OK);
    CHECK(memcmp(got + 3, want + 3, 9 * sizeof(float)) == 0);
    size_t rows = 0, nf = 0;
    float *logits = sess_logits(s, &rows, &nf);
    CHECK(rows == 9 && nf == 9 * (size_t)V);
    free(logits);
    glm5_session_free(s);
    CHECK(glm5_session_append(s2, ids, 6, GLM5_LOGITS_NONE, NULL) == GLM5_OK);
    int32_t gen[4];
    float gen_lp[4];
    CHECK(glm5_session_generate(s2, 4, gen, gen_lp) == GLM5_OK);
    CHECK(memcmp(gen, want_gen, sizeof gen) == 0 && memcmp(gen_lp, want_gen_lp, sizeof gen_lp) == 0);
    CHECK(glm5_session_truncate(s2, 2) == GLM5_OK);
    CHECK(glm5_session_append(s2, ids + 2, 4, GLM5_LOGITS_NONE, got) == GLM5_OK);
    CHECK(memcmp(got, want + 2, 4 * sizeof(float)) == 0);
    glm5_session_free(s2);
}

/* ---------------------------------------------------------------------------------------------
 * Sessions against the goldens; splits; truncation
 * --------------------------------------------------------------------------------------------- */

/* Append `ids` in chunks of the given sizes (cycled), keeping ALL logits each time; collects the
 * logprobs and the logits of every position. */
static void append_chunked(glm5_session *s, const int32_t *ids, size_t n, const size_t *chunks, size_t n_chunks,
                           size_t vocab, float *logprobs, float *logits) {
    size_t at = 0, c = 0;
    while (at < n) {
        size_t k = chunks[c++ % n_chunks];
        if (k > n - at) k = n - at;
        CHECK(glm5_session_append(s, ids + at, k, GLM5_LOGITS_ALL, logprobs + at) == GLM5_OK);
        size_t rows = 0, nf = 0;
        CHECK(glm5_session_get_logits(s, logits + at * vocab, k * vocab, &rows, &nf) == GLM5_OK);
        CHECK(rows == k && nf == k * vocab);
        at += k;
    }
}

static void check_goldens(const char *dir) {
    struct golden g;
    if (!golden_open(dir, &g)) {
        printf("  %-32s no golden.safetensors, golden checks skipped\n", dir);
        return;
    }
    glm5_model *model = load_model(dir, 2);
    const size_t V = model_info(model).vocab_size;
    float worst_logit = 0, worst_lp = 0;
    int n_seqs = 0;

    for (int i = 0;; i++) {
        char name[64];
        size_t T = 0, n = 0;
        snprintf(name, sizeof name, "seq%d.tokens", i);
        int32_t *ids = golden_tensor(&g, name, "I32", &T);
        if (!ids) break;
        n_seqs++;
        snprintf(name, sizeof name, "seq%d.logits", i);
        float *want_logits = golden_tensor(&g, name, "F32", &n);
        CHECK(want_logits != NULL && n == T * V);
        snprintf(name, sizeof name, "seq%d.logprobs", i);
        float *want_lp = golden_tensor(&g, name, "F32", &n);
        CHECK(want_lp != NULL && n == T);

        /* Score against the golden logprobs. */
        float *score = malloc(T * sizeof(float));
        CHECK(score != NULL);
        CHECK(glm5_model_score(model, ids, T, score) == GLM5_OK);
        CHECK(score[0] != score[0] && want_lp[0] != want_lp[0]);
        float d = max_abs_diff(score + 1, want_lp + 1, T - 1);
        CHECK(d <= 1e-4f);
        if (d > worst_lp) worst_lp = d;

        /* One append keeping ALL logits against the golden logits. */
        float *lp1 = malloc(T * sizeof(float));
        float *logits1 = malloc(T * V * sizeof(float));
        CHECK(lp1 != NULL && logits1 != NULL);
        glm5_session *s = new_session(model, 0);
        CHECK(glm5_session_append(s, ids, T, GLM5_LOGITS_ALL, lp1) == GLM5_OK);
        size_t rows = 0, nf = 0;
        float *kept = sess_logits(s, &rows, &nf);
        CHECK(rows == T && nf == T * V);
        memcpy(logits1, kept, nf * sizeof(float));
        free(kept);
        d = max_abs_diff(logits1, want_logits, T * V);
        CHECK(d <= 5e-4f);
        if (d > worst_logit) worst_logit = d;
        /* The session's logprobs are the score, bit for bit. */
        CHECK(memcmp(lp1, score, T * sizeof(float)) == 0);

        /* Any split gives bitwise the same logits and logprobs. */
        static const size_t splits[][4] = {{1}, {2, 3}, {5, 1, 7}, {3}};
        static const size_t split_len[] = {1, 2, 3, 1};
        float *lp2 = malloc(T * sizeof(float));
        float *logits2 = malloc(T * V * sizeof(float));
        CHECK(lp2 != NULL && logits2 != NULL);
        for (size_t k = 0; k < sizeof split_len / sizeof split_len[0]; k++) {
            glm5_session *c = new_session(model, 0);
            append_chunked(c, ids, T, splits[k], split_len[k], V, lp2, logits2);
            CHECK(memcmp(lp2, lp1, T * sizeof(float)) == 0);
            CHECK(memcmp(logits2, logits1, T * V * sizeof(float)) == 0);
            glm5_session_free(c);
        }

        /* LAST keeps the last row of ALL; logprobs do not depend on what is kept. */
        glm5_session *c = new_session(model, 0);
        CHECK(glm5_session_append(c, ids, T, GLM5_LOGITS_LAST, lp2) == GLM5_OK);
        CHECK(memcmp(lp2, lp1, T * sizeof(float)) == 0);
        kept = sess_logits(c, &rows, &nf);
        CHECK(rows == 1 && nf == V);
        CHECK(memcmp(kept, logits1 + (T - 1) * V, V * sizeof(float)) == 0);
        free(kept);
        glm5_session_free(c);

        /* Truncate and re-append: the same as never having gone further. */
        for (size_t keep = 0; keep < T; keep += (T / 3 ? T / 3 : 1)) {
            CHECK(glm5_session_truncate(s, keep) == GLM5_OK);
            CHECK(sess_n_tokens(s) == keep);
            size_t nt = 0;
            int32_t *toks = sess_tokens(s, &nt);
            CHECK(nt == keep && memcmp(toks, ids, keep * sizeof(int32_t)) == 0);
            free(toks);
            CHECK(glm5_session_append(s, ids + keep, T - keep, GLM5_LOGITS_ALL, lp2) == GLM5_OK);
            CHECK(memcmp(lp2, lp1 + keep, (T - keep) * sizeof(float)) == 0);
            kept = sess_logits(s, &rows, &nf);
            CHECK(rows == T - keep && memcmp(kept, logits1 + keep * V, nf * sizeof(float)) == 0);
            free(kept);
        }
        /* Truncate after diverging: the divergent tail leaves no trace. */
        CHECK(glm5_session_truncate(s, T / 2) == GLM5_OK);
        int32_t other[3] = {(int32_t)V - 1, 0, (int32_t)V / 2};
        CHECK(glm5_session_append(s, other, 3, GLM5_LOGITS_NONE, NULL) == GLM5_OK);
        CHECK(glm5_session_truncate(s, T / 2) == GLM5_OK);
        CHECK(glm5_session_append(s, ids + T / 2, T - T / 2, GLM5_LOGITS_NONE, lp2) == GLM5_OK);
        CHECK(memcmp(lp2, lp1 + T / 2, (T - T / 2) * sizeof(float)) == 0);
        glm5_session_free(s);

        free(ids);
        free(want_logits);
        free(want_lp);
        free(score);
        free(lp1);
        free(logits1);
        free(lp2);
        free(logits2);
    }
    CHECK(n_seqs > 0);

    /* Greedy generation against the golden continuation. */
    size_t P = 0, N = 0, n = 0;
    int32_t *prompt = golden_tensor(&g, "greedy.prompt", "I32", &P);
    int32_t *want_tokens = golden_tensor(&g, "greedy.tokens", "I32", &N);
    float *want_lp = golden_tensor(&g, "greedy.logprobs", "F32", &n);
    CHECK(prompt != NULL && want_tokens != NULL && want_lp != NULL && n == N && P > 0 && N > 0);
    glm5_session *s = new_session(model, 0);
    CHECK(glm5_session_append(s, prompt, P, GLM5_LOGITS_NONE, NULL) == GLM5_OK);
    int32_t *got = malloc(N * sizeof(int32_t));
    float *got_lp = malloc(N * sizeof(float));
    CHECK(got != NULL && got_lp != NULL);
    CHECK(glm5_session_generate(s, N, got, got_lp) == GLM5_OK);
    CHECK(memcmp(got, want_tokens, N * sizeof(int32_t)) == 0);
    float d = max_abs_diff(got_lp, want_lp, N);
    CHECK(d <= 1e-4f);
    if (d > worst_lp) worst_lp = d;
    CHECK(sess_n_tokens(s) == P + N);
    size_t nt = 0;
    int32_t *toks = sess_tokens(s, &nt);
    CHECK(nt == P + N && memcmp(toks, prompt, P * sizeof(int32_t)) == 0 &&
          memcmp(toks + P, want_tokens, N * sizeof(int32_t)) == 0);
    /* The generated logprobs are what scoring the whole sequence says, bit for bit. */
    float *score = malloc(nt * sizeof(float));
    CHECK(score != NULL);
    CHECK(glm5_model_score(model, toks, nt, score) == GLM5_OK);
    CHECK(memcmp(score + P, got_lp, N * sizeof(float)) == 0);
    /* Generating one at a time is the same as all at once. */
    CHECK(glm5_session_truncate(s, P) == GLM5_OK);
    for (size_t i = 0; i < N; i++) {
        int32_t t = -1;
        float l = 0;
        CHECK(glm5_session_generate(s, 1, &t, &l) == GLM5_OK);
        CHECK(t == want_tokens[i] && memcmp(&l, &got_lp[i], sizeof l) == 0);
    }
    glm5_session_free(s);

    printf("  %-32s %d sequences + greedy %zu: max |logit - golden| %.2e, max |logprob - golden| %.2e\n", dir, n_seqs,
           N, (double)worst_logit, (double)worst_lp);
    free(prompt);
    free(want_tokens);
    free(want_lp);
    free(got);
    free(got_lp);
    free(toks);
    free(score);
    glm5_model_free(model);
    golden_close(&g);
}

/* ---------------------------------------------------------------------------------------------
 * Threads: one session used by two threads (BUSY, never a crash); one model, many sessions
 * --------------------------------------------------------------------------------------------- */

struct contend_arg {
    glm5_session *session;
    int32_t token;
    int n_ok, n_busy, n_other;
};

/* Appends pairs of its token until 10 appends ran (or 100000 attempts), counting BUSY answers. */
static void *contend_thread(void *arg) {
    struct contend_arg *a = arg;
    for (int i = 0; i < 100000 && a->n_ok < 10; i++) {
        int32_t t[2] = {a->token, a->token};
        glm5_status st = glm5_session_append(a->session, t, 2, GLM5_LOGITS_LAST, NULL);
        if (st == GLM5_OK) a->n_ok++;
        else if (st == GLM5_ERR_BUSY) a->n_busy++;
        else a->n_other++;
        size_t n = 0;
        st = glm5_session_n_tokens(a->session, &n);
        if (st == GLM5_ERR_BUSY) a->n_busy++;
        else if (st != GLM5_OK) a->n_other++;
        sched_yield();
    }
    return NULL;
}

struct score_arg {
    const glm5_model *model;
    const int32_t *ids;
    size_t n;
    const float *want;
    int ok;
};

static void *score_thread(void *arg) {
    struct score_arg *a = arg;
    float *lp = malloc(a->n * sizeof(float));
    a->ok = lp != NULL;
    for (int r = 0; r < 5 && a->ok; r++) {
        /* Scoring and a private session on the shared model, both bit-exact. */
        if (glm5_model_score(a->model, a->ids, a->n, lp) != GLM5_OK || memcmp(lp, a->want, a->n * sizeof(float)))
            a->ok = 0;
        glm5_session *s = NULL;
        if (glm5_session_new((glm5_model *)(uintptr_t)a->model, NULL, &s) != GLM5_OK) {
            a->ok = 0;
            break;
        }
        size_t half = a->n / 2;
        if (glm5_session_append(s, a->ids, half, GLM5_LOGITS_NONE, lp) != GLM5_OK ||
            glm5_session_append(s, a->ids + half, a->n - half, GLM5_LOGITS_LAST, lp + half) != GLM5_OK ||
            memcmp(lp, a->want, a->n * sizeof(float)))
            a->ok = 0;
        glm5_session_free(s);
    }
    free(lp);
    return NULL;
}

static void test_session_threads(const char *dir) {
    glm5_model *model = load_model(dir, 2);
    const uint32_t V = model_info(model).vocab_size;

    /* Two threads appending to the same session: each call either runs or gets BUSY. */
    glm5_session *s = new_session(model, 0);
    int32_t first = 1;
    CHECK(glm5_session_append(s, &first, 1, GLM5_LOGITS_NONE, NULL) == GLM5_OK);
    struct contend_arg a[2] = {{s, 5, 0, 0, 0}, {s, 7, 0, 0, 0}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++) CHECK(pthread_create(&t[i], NULL, contend_thread, &a[i]) == 0);
    for (int i = 0; i < 2; i++) CHECK(pthread_join(t[i], NULL) == 0);
    for (int i = 0; i < 2; i++) {
        CHECK(a[i].n_other == 0);
        CHECK(a[i].n_ok == 10);
    }
    size_t n = 0;
    int32_t *toks = sess_tokens(s, &n);
    CHECK(n == 1 + 2 * (size_t)(a[0].n_ok + a[1].n_ok));
    int count5 = 0, count7 = 0;
    for (size_t i = 1; i < n; i += 2) {
        CHECK(toks[i] == toks[i + 1]); /* each append's pair stays together */
        count5 += toks[i] == 5;
        count7 += toks[i] == 7;
    }
    CHECK(count5 == a[0].n_ok && count7 == a[1].n_ok);
    /* Whatever interleaving happened, the caches hold exactly the tokens. */
    check_cache_intact(model, s, 9);
    printf("  same session from 2 threads: %d + %d appends ran, %d + %d calls got GLM5_ERR_BUSY\n", a[0].n_ok,
           a[1].n_ok, a[0].n_busy, a[1].n_busy);
    free(toks);
    glm5_session_free(s);

    /* One model, four threads scoring and running their own sessions: bit-exact results. */
    int32_t ids[24];
    for (int i = 0; i < 24; i++) ids[i] = (int32_t)((i * 11 + 3) % (int)V);
    float want[24];
    CHECK(glm5_model_score(model, ids, 24, want) == GLM5_OK);
    pthread_t st[4];
    struct score_arg sa[4];
    for (int i = 0; i < 4; i++) {
        sa[i].model = model;
        sa[i].ids = ids;
        sa[i].n = 24;
        sa[i].want = want;
        sa[i].ok = 0;
        CHECK(pthread_create(&st[i], NULL, score_thread, &sa[i]) == 0);
    }
    for (int i = 0; i < 4; i++) {
        CHECK(pthread_join(st[i], NULL) == 0);
        CHECK(sa[i].ok);
    }
    glm5_model_free(model);
}

/* The thread count does not change a bit of the results. */
static void test_thread_count_invariance(const char *dir) {
    glm5_model *m1 = load_model(dir, 1);
    glm5_model *m2 = load_model(dir, 2);
    const uint32_t V = model_info(m1).vocab_size;
    int32_t ids[20];
    for (int i = 0; i < 20; i++) ids[i] = (int32_t)((i * 13 + 5) % (int)V);
    float a[20], b[20];
    CHECK(glm5_model_score(m1, ids, 20, a) == GLM5_OK);
    CHECK(glm5_model_score(m2, ids, 20, b) == GLM5_OK);
    CHECK(memcmp(a, b, sizeof a) == 0);
    glm5_session *s1 = new_session(m1, 0), *s2 = new_session(m2, 0);
    CHECK(glm5_session_append(s1, ids, 20, GLM5_LOGITS_ALL, NULL) == GLM5_OK);
    CHECK(glm5_session_append(s2, ids, 20, GLM5_LOGITS_ALL, NULL) == GLM5_OK);
    size_t r1, r2, n1, n2;
    float *l1 = sess_logits(s1, &r1, &n1), *l2 = sess_logits(s2, &r2, &n2);
    CHECK(n1 == n2 && memcmp(l1, l2, n1 * sizeof(float)) == 0);
    int32_t g1[6], g2[6];
    CHECK(glm5_session_generate(s1, 6, g1, NULL) == GLM5_OK);
    CHECK(glm5_session_generate(s2, 6, g2, NULL) == GLM5_OK);
    CHECK(memcmp(g1, g2, sizeof g1) == 0);
    free(l1);
    free(l2);
    glm5_session_free(s1);
    glm5_session_free(s2);
    glm5_model_free(m1);
    glm5_model_free(m2);
}

/* Details of the header's wording (each was once a difference between library and header). */
static void test_session_header_details(const char *dir) {
    glm5_model *model = load_model(dir, 2);
    const size_t V = model_info(model).vocab_size;
    glm5_session *s = new_session(model, 0);
    int32_t prompt[2] = {1, 2}, gen[1] = {-5};
    size_t rows = 99, nf = 99, count = 99;

    /* Empty session: generate "must hold at least one token", whatever n_new. */
    CHECK(glm5_session_generate(s, 0, gen, NULL) == GLM5_ERR_INVALID_ARGUMENT);
    /* NULL out with capacity > 0: INVALID_ARGUMENT, even when there is nothing to copy. */
    CHECK(glm5_session_get_tokens(s, NULL, 4, &count) == GLM5_ERR_INVALID_ARGUMENT);
    CHECK(glm5_session_get_logits(s, NULL, 4, &rows, &nf) == GLM5_ERR_INVALID_ARGUMENT);

    /* "Kept logits are cleared" by every successful truncate and generate, including a truncate to
     * the current length and a generate of 0 tokens. */
    CHECK(glm5_session_append(s, prompt, 2, GLM5_LOGITS_LAST, NULL) == GLM5_OK);
    CHECK(glm5_session_truncate(s, 2) == GLM5_OK);
    rows = 99;
    glm5_session_get_logits(s, NULL, 0, &rows, NULL);
    CHECK(rows == 0);
    CHECK(glm5_session_append(s, prompt, 2, GLM5_LOGITS_LAST, NULL) == GLM5_OK);
    CHECK(glm5_session_generate(s, 0, gen, NULL) == GLM5_OK);
    rows = 99;
    glm5_session_get_logits(s, NULL, 0, &rows, NULL);
    CHECK(rows == 0);

    /* A failed call leaves its outputs untouched; get_logits/get_tokens write the sizes only for
     * BUFFER_TOO_SMALL, not when out is NULL. */
    CHECK(glm5_session_append(s, prompt, 2, GLM5_LOGITS_LAST, NULL) == GLM5_OK);
    rows = nf = 99;
    CHECK(glm5_session_get_logits(s, NULL, V, &rows, &nf) == GLM5_ERR_INVALID_ARGUMENT);
    CHECK(rows == 99 && nf == 99);
    count = 99;
    CHECK(glm5_session_get_tokens(s, NULL, 100, &count) == GLM5_ERR_INVALID_ARGUMENT);
    CHECK(count == 99);

    glm5_session_free(s);
    glm5_model_free(model);
}

/* ---------------------------------------------------------------------------------------------
 * Hostile sizes (issue 13; include/glm5.h "Limits"). Each call passes a short buffer with a huge
 * count, as a host with a corrupted length would: the count must be refused with a status before
 * anything is read or allocated. Before these bounds, each of these calls made the library copy
 * the count into a Swift array (an allocation of up to a TiB, which traps when it fails, or a
 * read far past the buffer) and the host process died.
 * ------------------------------------------------------------------------------------------- */

static void test_hostile_sizes(const char *fixtures_root, const char *dir) {
    char tok_dir[4096];
    snprintf(tok_dir, sizeof tok_dir, "%s/tokenizers/glm5-like-32k", fixtures_root);
    glm5_tokenizer *t = NULL;
    CHECK(glm5_tokenizer_load(tok_dir, &t) == GLM5_OK && t != NULL);
    int32_t ids[4] = {65, 66, 67, 68};
    char text[64];
    size_t n = 77;

    /* glm5_detokenize / glm5_detokenizer_push: n_ids above GLM5_MAX_DETOKENIZE_IDS. */
    CHECK_FAIL(glm5_detokenize(t, ids, (size_t)1 << 38, 0, text, sizeof text, &n), GLM5_ERR_INVALID_ARGUMENT, "n_ids");
    CHECK_FAIL(glm5_detokenize(t, ids, (size_t)GLM5_MAX_DETOKENIZE_IDS + 1, 0, text, sizeof text, &n),
               GLM5_ERR_INVALID_ARGUMENT, "n_ids");
    CHECK_FAIL(glm5_detokenize(t, ids, SIZE_MAX, 0, text, sizeof text, &n), GLM5_ERR_INVALID_ARGUMENT, "n_ids");
    CHECK(n == 77);
    CHECK(glm5_detokenize(t, ids, 4, 0, text, sizeof text, &n) == GLM5_OK);
    glm5_detokenizer *d = NULL;
    CHECK(glm5_detokenizer_new(t, 0, &d) == GLM5_OK);
    n = 77;
    CHECK_FAIL(glm5_detokenizer_push(d, ids, (size_t)1 << 38, text, sizeof text, &n), GLM5_ERR_INVALID_ARGUMENT, "n_ids");
    CHECK_FAIL(glm5_detokenizer_push(d, ids, (size_t)GLM5_MAX_DETOKENIZE_IDS + 1, text, sizeof text, &n),
               GLM5_ERR_INVALID_ARGUMENT, "n_ids");
    CHECK(n == 77);
    CHECK(glm5_detokenizer_push(d, ids, 4, text, sizeof text, &n) == GLM5_OK); /* the stream goes on */
    glm5_detokenizer_free(d);

    /* glm5_tokenizer_token_id: text_len above GLM5_MAX_TEXT_BYTES (as glm5_tokenize). */
    int32_t id = 5;
    CHECK_FAIL(glm5_tokenizer_token_id(t, "a", (size_t)1 << 38, &id), GLM5_ERR_INVALID_ARGUMENT, "text_len");
    CHECK_FAIL(glm5_tokenizer_token_id(t, "a", (size_t)GLM5_MAX_TEXT_BYTES + 1, &id), GLM5_ERR_INVALID_ARGUMENT,
               "text_len");
    CHECK(id == 5);
    CHECK_FAIL(glm5_tokenize(t, "a", (size_t)GLM5_MAX_TEXT_BYTES + 1, 0, NULL, 0, &n), GLM5_ERR_INVALID_ARGUMENT,
               "text_len");
    glm5_tokenizer_free(t);

    /* Sampling parameters and batches. */
    glm5_model *model = load_model(dir, 2);
    glm5_session *s = new_session(model, 0);
    int32_t prompt[3] = {3, 1, 4};
    CHECK(glm5_session_append(s, prompt, 3, GLM5_LOGITS_NONE, NULL) == GLM5_OK);
    glm5_sampling_params p;
    glm5_sampling_params_init(&p);
    p.max_new_tokens = 2;
    p.stop_token_ids = prompt;
    p.n_stop_token_ids = SIZE_MAX; /* was read as "no stop ids" */
    int32_t out_ids[4] = {-9, -9, -9, -9};
    glm5_sample_output o;
    glm5_sample_output_init(&o);
    o.tokens = out_ids;
    o.capacity = 4;
    CHECK_FAIL(glm5_session_sample(s, &p, &o), GLM5_ERR_INVALID_ARGUMENT, "n_stop_token_ids");
    p.n_stop_token_ids = (size_t)GLM5_MAX_STOP_TOKEN_IDS + 1;
    CHECK_FAIL(glm5_session_sample(s, &p, &o), GLM5_ERR_INVALID_ARGUMENT, "n_stop_token_ids");
    CHECK(sess_n_tokens(s) == 3 && out_ids[0] == -9);
    glm5_session *one[1] = {s};
    glm5_sample_output *outs[1] = {&o};
    CHECK_FAIL(glm5_sample_batch(one, (size_t)GLM5_MAX_BATCH + 1, NULL, outs), GLM5_ERR_INVALID_ARGUMENT, "n is");
    CHECK_FAIL(glm5_sample_batch(one, SIZE_MAX, NULL, outs), GLM5_ERR_INVALID_ARGUMENT, "n is");
    const int32_t *chunks[1] = {prompt};
    size_t lens[1] = {1};
    CHECK_FAIL(glm5_append_batch(one, (size_t)GLM5_MAX_BATCH + 1, chunks, lens, GLM5_LOGITS_NONE, NULL),
               GLM5_ERR_INVALID_ARGUMENT, "n is");
    CHECK(sess_n_tokens(s) == 3);

    /* A first-version glm5_sample_output (a 0.1 host: no weight_version, accepted, n_steps) that
     * ends where an unreadable page starts: only its own bytes are read and written. */
    {
        const long page = sysconf(_SC_PAGESIZE);
        unsigned char *mem = mmap(NULL, 2 * (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        CHECK(mem != MAP_FAILED && mprotect(mem + page, (size_t)page, PROT_NONE) == 0);
        const size_t v1 = offsetof(glm5_sample_output, weight_version);
        glm5_sample_output *old = (glm5_sample_output *)(void *)(mem + page - v1);
        memset(old, 0, v1);
        old->struct_size = (uint32_t)v1;
        old->stop_token_id = -1;
        old->tokens = out_ids;
        old->capacity = 4;
        glm5_sampling_params q;
        glm5_sampling_params_init(&q);
        q.max_new_tokens = 2;
        q.ignore_eos = 1;
        CHECK(glm5_session_sample(s, &q, old) == GLM5_OK && old->n_tokens == 2 && sess_n_tokens(s) == 5);
        glm5_sample_output *olds[1] = {old};
        const glm5_sampling_params *qs[1] = {&q};
        CHECK(glm5_sample_batch(one, 1, qs, olds) == GLM5_OK && old->n_tokens == 2 && sess_n_tokens(s) == 7);
        CHECK(munmap(mem, 2 * (size_t)page) == 0);
        CHECK(glm5_session_truncate(s, 3) == GLM5_OK);
    }

    /* Counts and capacities above 2^40, (size_t)-1 among them, are refused as arguments. */
    float f[4];
    CHECK_FAIL(glm5_model_mtp_draft_logits(model, prompt, 3, f, SIZE_MAX), GLM5_ERR_INVALID_ARGUMENT, "capacity");
    CHECK_FAIL(glm5_session_get_tokens(s, out_ids, SIZE_MAX, &n), GLM5_ERR_INVALID_ARGUMENT, "capacity");
    CHECK_FAIL(glm5_session_generate(s, (size_t)1 << 41, out_ids, NULL), GLM5_ERR_INVALID_ARGUMENT, "n_new");
    CHECK(sess_n_tokens(s) == 3);

    /* glm5_session_params.record_max_bytes past 2^62 (a record bound that would overflow). */
    glm5_session_params sp;
    glm5_session_params_init(&sp);
    sp.record = 1;
    sp.record_max_bytes = UINT64_MAX;
    glm5_session *r = SESSION_SENTINEL;
    CHECK_FAIL(glm5_session_new(model, &sp, &r), GLM5_ERR_INVALID_ARGUMENT, "record_max_bytes");
    sp.record_max_bytes = (uint64_t)1 << 63;
    CHECK_FAIL(glm5_session_new(model, &sp, &r), GLM5_ERR_INVALID_ARGUMENT, "record_max_bytes");
    CHECK(r == SESSION_SENTINEL);
    glm5_session_free(s);
    glm5_model_free(model);
}

/* Out of memory in the middle of a call's reservations (issue 13). Sampling: a session of 2^24 tokens (the fixture's weights under a
 * config.json whose max_position_embeddings is 2^24, the largest a config may give) samples
 * 2^24 - 4 tokens with GLM5_MAX_TOP_LOGPROBS alternatives, under an address-space limit of what
 * the process maps plus 1 GiB. The call must return GLM5_ERR_OUT_OF_MEMORY with the session
 * unchanged, and the session must sample once the limit is lifted. Before, the 8 GiB of result
 * arrays were reserved with Swift's allocation (which traps when it fails) before the cache's
 * fallible reservation, and the process died. Tokenizing GLM5_MAX_TEXT_BYTES under the same
 * limit: the decoded scalars (1 GiB) were a trapping allocation too; now OUT_OF_MEMORY. Runs in a fresh process (test_capi re-executed
 * with --sample-oom DIR): the limit must not reach the rest of the tests, and a process that
 * forked after using the library's threads must not use them again. */
static void set_address_limit(rlim_t bytes) {
    struct rlimit rl;
    CHECK(getrlimit(RLIMIT_AS, &rl) == 0);
    rl.rlim_cur = bytes;
    CHECK(setrlimit(RLIMIT_AS, &rl) == 0);
}

static int sample_oom_child(const char *dir, const char *tok_dir) {
    glm5_tokenizer *tok = NULL;
    CHECK(glm5_tokenizer_load(tok_dir, &tok) == GLM5_OK);
    const size_t text_len = GLM5_MAX_TEXT_BYTES; /* NUL bytes: valid UTF-8, mapped, never touched */
    char *text = calloc(text_len, 1);
    CHECK(text != NULL);
    glm5_model *model = load_model(dir, 1);
    CHECK(model_info(model).max_position_embeddings == 1u << 24);
    glm5_session *s = new_session(model, 0);
    int32_t prompt[4] = {3, 1, 4, 1};
    CHECK(glm5_session_append(s, prompt, 4, GLM5_LOGITS_NONE, NULL) == GLM5_OK);
    const size_t want = ((size_t)1 << 24) - 4;
    int32_t *toks = malloc(want * sizeof(int32_t)); /* the host's array: mapped, never touched */
    CHECK(toks != NULL);
    long pages = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    CHECK(f != NULL && fscanf(f, "%ld", &pages) == 1);
    fclose(f);
    set_address_limit((rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + ((rlim_t)1 << 30));

    glm5_sampling_params p;
    glm5_sampling_params_init(&p);
    p.max_new_tokens = (uint32_t)want;
    p.n_top_logprobs = GLM5_MAX_TOP_LOGPROBS;
    p.ignore_eos = 1;
    glm5_sample_output o;
    glm5_sample_output_init(&o);
    o.tokens = toks;
    o.capacity = want;
    CHECK_FAIL(glm5_session_sample(s, &p, &o), GLM5_ERR_OUT_OF_MEMORY, "");
    CHECK(sess_n_tokens(s) == 4);
    /* The largest text glm5_tokenize takes: its scalars alone (1 GiB) do not fit. */
    size_t n_ids = 7;
    CHECK_FAIL(glm5_tokenize(tok, text, text_len, 0, NULL, 0, &n_ids), GLM5_ERR_OUT_OF_MEMORY, "text");
    CHECK(n_ids == 7);

    set_address_limit(RLIM_INFINITY);
    p.max_new_tokens = 2;
    o.capacity = 2;
    CHECK(glm5_session_sample(s, &p, &o) == GLM5_OK && o.n_tokens == 2 && sess_n_tokens(s) == 6);
    CHECK(glm5_tokenize(tok, "ab", 2, 0, NULL, 0, &n_ids) == GLM5_ERR_BUFFER_TOO_SMALL && n_ids > 0); /* the count */
    free(text);
    glm5_tokenizer_free(tok);
    free(toks);
    glm5_session_free(s);
    glm5_model_free(model);
    printf("test_capi: sampling 2^24 tokens and tokenizing 2^28 bytes under an address-space limit: out of memory, "
           "session unchanged\n");
    return 0;
}

static void test_sample_out_of_memory(const char *self, const char *dir, const char *fixtures_root) {
    char big[] = "/tmp/glm5_test_capi_big_XXXXXX";
    CHECK(mkdtemp(big) != NULL);
    char path[4096], target[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    char *cfg = read_text(path);
    CHECK(cfg != NULL);
    const char *key = "\"max_position_embeddings\":";
    char *at = strstr(cfg, key);
    CHECK(at != NULL);
    at += strlen(key);
    char *end = at;
    while (*end == ' ') end++;
    while (*end >= '0' && *end <= '9') end++;
    size_t size = strlen(cfg) + 32;
    char *big_cfg = malloc(size);
    CHECK(big_cfg != NULL);
    snprintf(big_cfg, size, "%.*s 16777216%s", (int)(at - cfg), cfg, end);
    write_text(big, "config.json", big_cfg);
    const char *links[] = {"model.safetensors", "generation_config.json"};
    for (int i = 0; i < 2; i++) {
        snprintf(target, sizeof target, "%s/%s", dir, links[i]);
        if (target[0] != '/') {
            char cwd[2048];
            CHECK(getcwd(cwd, sizeof cwd) != NULL);
            snprintf(target, sizeof target, "%s/%s/%s", cwd, dir, links[i]);
        }
        snprintf(path, sizeof path, "%s/%s", big, links[i]);
        if (file_exists(target)) CHECK(symlink(target, path) == 0);
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        char tok_dir[4096];
        snprintf(tok_dir, sizeof tok_dir, "%s/tokenizers/glm5-like-32k", fixtures_root);
        execl("/proc/self/exe", self, "--sample-oom", big, tok_dir, (char *)NULL);
        _exit(127);
    }
    int wst = 0;
    CHECK(waitpid(pid, &wst, 0) == pid);
    if (WIFSIGNALED(wst)) fprintf(stderr, "test_capi: sampling under an address-space limit crashed (signal %d)\n", WTERMSIG(wst));
    CHECK(WIFEXITED(wst) && WEXITSTATUS(wst) == 0);
    remove_file(big, "config.json");
    remove_file(big, "model.safetensors");
    remove_file(big, "generation_config.json");
    CHECK(rmdir(big) == 0);
    free(big_cfg);
    free(cfg);
}

static int compare_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The subfolders of `root` that hold a config.json, sorted; returns how many. */
static size_t list_fixtures(const char *root, char ***out) {
    *out = NULL;
    DIR *d = opendir(root);
    if (!d) return 0;
    size_t n = 0, cap = 0;
    char **names = NULL;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s/config.json", root, e->d_name);
        if (!file_exists(path)) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            char **bigger = realloc(names, cap * sizeof *names);
            CHECK(bigger != NULL);
            names = bigger;
        }
        size_t len = strlen(root) + 1 + strlen(e->d_name) + 1;
        names[n] = malloc(len);
        CHECK(names[n] != NULL);
        snprintf(names[n], len, "%s/%s", root, e->d_name);
        n++;
    }
    closedir(d);
    if (n > 1) qsort(names, n, sizeof *names, compare_names);
    *out = names;
    return n;
}

int main(int argc, char **argv) {
    if (argc > 3 && strcmp(argv[1], "--sample-oom") == 0) return sample_oom_child(argv[2], argv[3]);
    const char *fixtures_root = argc > 1 ? argv[1] : "../Fixtures";

    /* Nothing has failed on this thread yet. */
    CHECK(glm5_last_error() != NULL);
    CHECK(glm5_last_error()[0] == 0);

    test_versions();
    test_status_strings();
    test_dtype_names();
    test_init_functions();
    test_session_init_function();

    char **fixtures = NULL;
    size_t n_fixtures = list_fixtures(fixtures_root, &fixtures);
    if (n_fixtures == 0) {
        fprintf(stderr, "test_capi: no fixture folder (a subfolder with config.json) under %s\n", fixtures_root);
    }
    CHECK(n_fixtures > 0);

    char first_config[4096];
    snprintf(first_config, sizeof first_config, "%s/config.json", fixtures[0]);
    char *valid_config = read_text(first_config);
    CHECK(valid_config != NULL);

    test_null_and_bad_arguments(fixtures[0]);
    test_load_failures(valid_config);
    test_thread_local_error();

    /* Successful calls do not clear the last error. */
    glm5_model *model = SENTINEL;
    CHECK(glm5_model_load(NULL, NULL, &model) == GLM5_ERR_INVALID_ARGUMENT);
    char before[512];
    snprintf(before, sizeof before, "%s", glm5_last_error());
    CHECK(glm5_model_load(fixtures[0], NULL, &model) == GLM5_OK);
    glm5_model_info info;
    glm5_model_info_init(&info);
    CHECK(glm5_model_get_info(model, &info) == GLM5_OK);
    glm5_model_free(model);
    CHECK(strcmp(glm5_last_error(), before) == 0);

    printf("test_capi: library %s (ABI %u), fixtures under %s:\n", glm5_version_string(), glm5_abi_version(),
           fixtures_root);
    for (size_t i = 0; i < n_fixtures; i++) check_fixture(fixtures[i]);

    /* Sessions: the API checks on tiny-dsa (the DSA fixture with a short index_topk), the goldens
     * on every fixture. */
    const char *session_fixture = fixtures[0];
    for (size_t i = 0; i < n_fixtures; i++) {
        size_t len = strlen(fixtures[i]);
        if (len >= 9 && strcmp(fixtures[i] + len - 9, "/tiny-dsa") == 0) session_fixture = fixtures[i];
    }
    printf("test_capi: sessions on %s\n", session_fixture);
    test_session_arguments(session_fixture);
    test_session_outlives_model(session_fixture);
    test_session_threads(session_fixture);
    test_thread_count_invariance(session_fixture);
    test_session_header_details(session_fixture);
    test_hostile_sizes(fixtures_root, session_fixture);
    test_sample_out_of_memory(argv[0], session_fixture, fixtures_root);
    printf("test_capi: sessions against golden.safetensors:\n");
    for (size_t i = 0; i < n_fixtures; i++) check_goldens(fixtures[i]);

    for (size_t i = 0; i < n_fixtures; i++) free(fixtures[i]);
    free(fixtures);
    free(valid_config);

    printf("test_capi: %d checks passed\n", n_checks);
    return 0;
}
