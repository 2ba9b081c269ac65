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
 *     numbers in its config.json; one model is shared by 4 threads calling glm5_model_get_info.
 */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE

#include "glm5.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int n_checks = 0;

#define CHECK(cond)                                                                               \
    do {                                                                                          \
        n_checks++;                                                                               \
        if (!(cond)) {                                                                            \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n  last error: \"%s\"\n", __FILE__, __LINE__, \
                    #cond, glm5_last_error());                                                    \
            exit(1);                                                                              \
        }                                                                                         \
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
    };
    /* Pinned values. */
    CHECK(GLM5_OK == 0 && GLM5_ERR_INVALID_ARGUMENT == 1 && GLM5_ERR_IO == 2 && GLM5_ERR_BAD_FORMAT == 3);
    CHECK(GLM5_ERR_UNSUPPORTED == 4 && GLM5_ERR_OUT_OF_MEMORY == 5 && GLM5_ERR_CONTEXT_FULL == 6);
    CHECK(GLM5_ERR_BUSY == 7 && GLM5_ERR_INTERNAL == 8 && GLM5_ERR_BUFFER_TOO_SMALL == 9);
    size_t n = sizeof expected / sizeof expected[0];
    for (size_t i = 0; i < n; i++) {
        const char *s = glm5_status_string(expected[i].status);
        CHECK(s != NULL);
        CHECK(strcmp(s, "unknown status") != 0);
        CHECK(strcmp(s, expected[i].text) == 0);
        for (size_t j = 0; j < i; j++) CHECK(strcmp(s, glm5_status_string(expected[j].status)) != 0);
    }
    CHECK(strcmp(glm5_status_string((glm5_status)10), "unknown status") == 0);
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
    info.struct_size = sizeof(glm5_model_info) - 8;
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
    const char *fixtures_root = argc > 1 ? argv[1] : "../Fixtures";

    /* Nothing has failed on this thread yet. */
    CHECK(glm5_last_error() != NULL);
    CHECK(glm5_last_error()[0] == 0);

    test_versions();
    test_status_strings();
    test_dtype_names();
    test_init_functions();

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
    for (size_t i = 0; i < n_fixtures; i++) {
        check_fixture(fixtures[i]);
        free(fixtures[i]);
    }
    free(fixtures);
    free(valid_config);

    printf("test_capi: %d checks passed\n", n_checks);
    return 0;
}
