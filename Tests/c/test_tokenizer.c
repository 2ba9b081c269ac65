/*
 * test_tokenizer.c — the tokenizer part of include/glm5.h (glm5_tokenizer_*, glm5_tokenize,
 * glm5_detokenize, glm5_detokenizer_*), against libglm5.so.
 *
 *   usage: test_tokenizer REPO_ROOT      (`make test-c` runs it; needs models/glm5-tiny and
 *                                         Tests/Fixtures/tiny-dsa)
 *
 * Checks: every NULL / dead / foreign handle and bad argument is refused with
 * GLM5_ERR_INVALID_ARGUMENT and a message; load failures (missing path, folder without
 * tokenizer.json, malformed merges naming the key, unsupported normalizer); glm5_tokenizer_info;
 * the two-call pattern of tokenize / detokenize / token_to_piece (BUFFER_TOO_SMALL with the size,
 * nothing copied); special-token parsing on and off; invalid UTF-8; round trips; skip_special;
 * streaming that holds back a split emoji and keeps its state when the buffer is too small;
 * glm5_model_tokenizer (NULL for a folder without tokenizer.json; handles that outlive the model
 * and are independent of each other); 4 threads encoding with one tokenizer.
 */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE

#include "glm5.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

static char repo[4096];
static char tiny_tok[4200];

static void path_join(char *out, size_t n, const char *a, const char *b) { snprintf(out, n, "%s/%s", a, b); }

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    CHECK(fwrite(text, 1, strlen(text), f) == strlen(text));
    CHECK(fclose(f) == 0);
}

static size_t encode(glm5_tokenizer *t, const char *text, uint32_t flags, int32_t *ids, size_t cap) {
    size_t n = 0;
    CHECK(glm5_tokenize(t, text, strlen(text), flags, ids, cap, &n) == GLM5_OK);
    return n;
}

static void test_arguments(glm5_tokenizer *t) {
    glm5_tokenizer *out = (glm5_tokenizer *)0x1;
    CHECK_FAIL(glm5_tokenizer_load(NULL, &out), GLM5_ERR_INVALID_ARGUMENT, "path is NULL");
    CHECK_FAIL(glm5_tokenizer_load(tiny_tok, NULL), GLM5_ERR_INVALID_ARGUMENT, "out_tokenizer is NULL");
    CHECK(out == (glm5_tokenizer *)0x1); /* untouched on failure */
    glm5_tokenizer_free(NULL);
    glm5_detokenizer_free(NULL);

    int32_t ids[8];
    size_t n = 77;
    CHECK_FAIL(glm5_tokenize(NULL, "a", 1, 0, ids, 8, &n), GLM5_ERR_INVALID_ARGUMENT, "tokenizer is NULL");
    CHECK_FAIL(glm5_tokenize(t, NULL, 3, 0, ids, 8, &n), GLM5_ERR_INVALID_ARGUMENT, "text is NULL");
    CHECK_FAIL(glm5_tokenize(t, "a", 1, 0, NULL, 8, &n), GLM5_ERR_INVALID_ARGUMENT, "ids is NULL");
    CHECK_FAIL(glm5_tokenize(t, "a", 1, 0x80, ids, 8, &n), GLM5_ERR_INVALID_ARGUMENT, "unknown bits");
    CHECK_FAIL(glm5_tokenize(t, "ab\xff", 3, 0, ids, 8, &n), GLM5_ERR_INVALID_ARGUMENT, "UTF-8 (byte 2");
    CHECK_FAIL(glm5_tokenize(t, "\xe4\xbd", 2, 0, ids, 8, &n), GLM5_ERR_INVALID_ARGUMENT, "truncated");
    CHECK_FAIL(glm5_tokenize(t, "\xed\xa0\x80", 3, 0, ids, 8, &n), GLM5_ERR_INVALID_ARGUMENT, "UTF-8"); /* a surrogate */
    CHECK(n == 77);
    CHECK(glm5_tokenize(t, NULL, 0, 0, NULL, 0, &n) == GLM5_OK && n == 0);

    char buf[64];
    CHECK_FAIL(glm5_detokenize(t, NULL, 2, 0, buf, 64, &n), GLM5_ERR_INVALID_ARGUMENT, "ids is NULL");
    int32_t bad[2] = {5, 4096};
    CHECK_FAIL(glm5_detokenize(t, bad, 2, 0, buf, 64, &n), GLM5_ERR_INVALID_ARGUMENT, "ids[1] = 4096");
    bad[1] = -3;
    CHECK_FAIL(glm5_detokenize(t, bad, 2, 0, buf, 64, &n), GLM5_ERR_INVALID_ARGUMENT, "ids[1] = -3");
    CHECK_FAIL(glm5_detokenize(t, bad, 1, 0, NULL, 64, &n), GLM5_ERR_INVALID_ARGUMENT, "NULL");
    CHECK_FAIL(glm5_detokenize(t, bad, 1, 2, buf, 64, &n), GLM5_ERR_INVALID_ARGUMENT, "unknown bits");
    CHECK_FAIL(glm5_token_to_piece(t, 99999, buf, 64, &n), GLM5_ERR_INVALID_ARGUMENT, "99999");
    CHECK_FAIL(glm5_tokenizer_token_text(t, -1, buf, 64, &n, NULL), GLM5_ERR_INVALID_ARGUMENT, "-1");
    int32_t id = 0;
    CHECK_FAIL(glm5_tokenizer_token_id(t, NULL, 1, &id), GLM5_ERR_INVALID_ARGUMENT, "text is NULL");
    CHECK_FAIL(glm5_tokenizer_token_id(t, "a", 1, NULL), GLM5_ERR_INVALID_ARGUMENT, "id is NULL");
    glm5_tokenizer_info info;
    glm5_tokenizer_info_init(&info);
    CHECK_FAIL(glm5_tokenizer_get_info(t, NULL), GLM5_ERR_INVALID_ARGUMENT, "info is NULL");
    info.struct_size = 4;
    CHECK_FAIL(glm5_tokenizer_get_info(t, &info), GLM5_ERR_INVALID_ARGUMENT, "struct_size");
    glm5_detokenizer *d = NULL;
    CHECK_FAIL(glm5_detokenizer_new(NULL, 0, &d), GLM5_ERR_INVALID_ARGUMENT, "tokenizer is NULL");
    CHECK_FAIL(glm5_detokenizer_new(t, 0, NULL), GLM5_ERR_INVALID_ARGUMENT, "out_detokenizer is NULL");
    CHECK_FAIL(glm5_detokenizer_push(NULL, bad, 1, buf, 64, &n), GLM5_ERR_INVALID_ARGUMENT, "detokenizer is NULL");
    /* a handle of another kind */
    CHECK_FAIL(glm5_detokenizer_push((glm5_detokenizer *)t, bad, 1, buf, 64, &n), GLM5_ERR_INVALID_ARGUMENT,
               "not a live glm5_detokenizer");
    CHECK_FAIL(glm5_tokenize((glm5_tokenizer *)buf, "a", 1, 0, ids, 8, &n), GLM5_ERR_INVALID_ARGUMENT,
               "not a live glm5_tokenizer");
}

static void test_load_errors(void) {
    glm5_tokenizer *t = NULL;
    char p[4400];
    path_join(p, sizeof p, repo, "no/such/folder");
    CHECK_FAIL(glm5_tokenizer_load(p, &t), GLM5_ERR_IO, "no such file");
    path_join(p, sizeof p, repo, "Tests/Fixtures/tiny-dsa");
    CHECK_FAIL(glm5_tokenizer_load(p, &t), GLM5_ERR_IO, "no tokenizer.json");
    char dir[] = "/tmp/glm5-test-tokenizer-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char file[256];
    path_join(file, sizeof file, dir, "tokenizer.json");
    write_text(file, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, "
                     "\"merges\": [\"a b\", \"a c\"]}}");
    CHECK_FAIL(glm5_tokenizer_load(dir, &t), GLM5_ERR_BAD_FORMAT, "tokenizer.json: model.merges[1]");
    write_text(file, "{\"normalizer\": {\"type\": \"NFKC\"}, \"model\": {\"vocab\": {}, \"merges\": []}}");
    CHECK_FAIL(glm5_tokenizer_load(file, &t), GLM5_ERR_UNSUPPORTED, "normalizer type \"NFKC\"");
    write_text(file, "{\"model\": ");
    CHECK_FAIL(glm5_tokenizer_load(file, &t), GLM5_ERR_BAD_FORMAT, "invalid JSON");
    CHECK(t == NULL);
    unlink(file);
    rmdir(dir);
}

static void test_encode_decode(glm5_tokenizer *t) {
    glm5_tokenizer_info info;
    glm5_tokenizer_info_init(&info);
    CHECK(glm5_tokenizer_get_info(t, &info) == GLM5_OK);
    CHECK(info.n_ids == 4096 && info.n_vocab == 4087 && info.n_added == 9 && info.byte_level == 1);
    CHECK(info.eos_id == 4087 && info.pad_id == 4087 && info.bos_id == -1 && info.unk_id == -1);

    const char *text = "def main():\n    print(\"héllo 世界 \xf0\x9f\x98\x80\")  # <|user|>\r\n";
    size_t n = 0;
    CHECK(glm5_tokenize(t, text, strlen(text), GLM5_TOKENIZE_PARSE_SPECIAL, NULL, 0, &n) == GLM5_ERR_BUFFER_TOO_SMALL || n == 0);
    CHECK(n > 5 && n <= strlen(text));
    int32_t ids[256];
    for (int i = 0; i < 256; i++) ids[i] = -7;
    size_t m = 0;
    CHECK_FAIL(glm5_tokenize(t, text, strlen(text), GLM5_TOKENIZE_PARSE_SPECIAL, ids, n - 1, &m), GLM5_ERR_BUFFER_TOO_SMALL,
               "capacity");
    CHECK(m == n && ids[0] == -7); /* size reported, nothing copied */
    CHECK(encode(t, text, GLM5_TOKENIZE_PARSE_SPECIAL, ids, 256) == n);
    int found_user = 0;
    for (size_t i = 0; i < n; i++) found_user |= ids[i] == 4091;
    CHECK(found_user);
    int32_t plain[256];
    size_t n_plain = encode(t, text, 0, plain, 256);
    CHECK(n_plain > n);
    for (size_t i = 0; i < n_plain; i++) CHECK(plain[i] < 4087);

    /* detokenize: two-call pattern, NUL, round trip */
    size_t len = 0;
    CHECK(glm5_detokenize(t, ids, n, 0, NULL, 0, &len) == GLM5_ERR_BUFFER_TOO_SMALL && len == strlen(text));
    char out[512];
    memset(out, 'x', sizeof out);
    CHECK_FAIL(glm5_detokenize(t, ids, n, 0, out, len, &len), GLM5_ERR_BUFFER_TOO_SMALL, "NUL");
    CHECK(out[0] == 'x');
    CHECK(glm5_detokenize(t, ids, n, 0, out, len + 1, &len) == GLM5_OK);
    CHECK(strcmp(out, text) == 0);
    CHECK(glm5_detokenize(t, plain, n_plain, 0, out, sizeof out, &len) == GLM5_OK && strcmp(out, text) == 0);
    CHECK(glm5_detokenize(t, ids, n, GLM5_DETOKENIZE_SKIP_SPECIAL, out, sizeof out, &len) == GLM5_OK);
    CHECK(strstr(out, "<|user|>") == NULL && strstr(out, "# \r\n") != NULL);
    CHECK(glm5_detokenize(t, NULL, 0, 0, out, sizeof out, &len) == GLM5_OK && len == 0 && out[0] == 0);

    /* pieces and token strings */
    char piece[64];
    CHECK(glm5_token_to_piece(t, 4091, piece, sizeof piece, &len) == GLM5_OK && len == 8 && memcmp(piece, "<|user|>", 8) == 0);
    int32_t sp = -1;
    CHECK(glm5_tokenizer_token_text(t, 4091, piece, sizeof piece, &len, &sp) == GLM5_OK && strcmp(piece, "<|user|>") == 0 && sp == 1);
    int32_t space_id = -1;
    CHECK(glm5_tokenizer_token_id(t, "\xc4\xa0", 2, &space_id) == GLM5_OK && space_id >= 0); /* "Ġ" */
    CHECK(glm5_token_to_piece(t, space_id, piece, 1, &len) == GLM5_OK && len == 1 && piece[0] == ' ');
    CHECK(glm5_tokenizer_token_text(t, space_id, piece, sizeof piece, &len, &sp) == GLM5_OK && sp == 0 && len == 2);
    CHECK_FAIL(glm5_tokenizer_token_text(t, space_id, piece, 2, &len, &sp), GLM5_ERR_BUFFER_TOO_SMALL, "NUL");
    int32_t none = 0;
    CHECK(glm5_tokenizer_token_id(t, "no such token", 13, &none) == GLM5_OK && none == -1);
}

static void test_streaming(glm5_tokenizer *t) {
    const char *text = "a \xf0\x9f\x98\x80 b \xe4\xb8\x96"; /* a 😀 b 世 */
    int32_t ids[64];
    size_t n = encode(t, text, 0, ids, 64);
    glm5_detokenizer *d = NULL;
    CHECK(glm5_detokenizer_new(t, 0, &d) == GLM5_OK && d != NULL);
    char all[256] = {0};
    char chunk[64];
    size_t len = 0, held_zero = 0;
    for (size_t i = 0; i < n; i++) {
        /* a buffer of 0 bytes: refused with the size, the stream unchanged */
        size_t need = 0;
        glm5_status s = glm5_detokenizer_push(d, &ids[i], 1, NULL, 0, &need);
        CHECK(s == GLM5_ERR_BUFFER_TOO_SMALL);
        CHECK(glm5_detokenizer_push(d, &ids[i], 1, chunk, sizeof chunk, &len) == GLM5_OK && len == need);
        CHECK(chunk[len] == 0);
        if (len == 0) held_zero++;
        strncat(all, chunk, sizeof all - strlen(all) - 1);
    }
    CHECK(held_zero > 0); /* the emoji's first byte tokens produced nothing */
    CHECK(glm5_detokenizer_finish(d, chunk, sizeof chunk, &len) == GLM5_OK && len == 0);
    CHECK(strcmp(all, text) == 0);
    /* a stream cut inside the emoji: U+FFFD at the end */
    int32_t first = -1;
    for (size_t i = 0; i < n; i++) {
        char p[16];
        size_t pl = 0;
        CHECK(glm5_token_to_piece(t, ids[i], p, sizeof p, &pl) == GLM5_OK);
        if (pl > 0 && (unsigned char)p[0] == 0xF0) { first = ids[i]; break; }
    }
    if (first >= 0) {
        CHECK(glm5_detokenizer_push(d, &first, 1, chunk, sizeof chunk, &len) == GLM5_OK && len == 0);
        CHECK(glm5_detokenizer_finish(d, chunk, sizeof chunk, &len) == GLM5_OK && len == 3 && memcmp(chunk, "\xef\xbf\xbd", 3) == 0);
    }
    int32_t bad = 1 << 20;
    CHECK_FAIL(glm5_detokenizer_push(d, &bad, 1, chunk, sizeof chunk, &len), GLM5_ERR_INVALID_ARGUMENT, "ids[0]");
    glm5_detokenizer_free(d);
    CHECK_FAIL(glm5_detokenizer_push(d, &bad, 1, chunk, sizeof chunk, &len), GLM5_ERR_INVALID_ARGUMENT, "not a live");
}

static void test_model_tokenizer(void) {
    char p[4400];
    path_join(p, sizeof p, repo, "Tests/Fixtures/tiny-dsa");
    glm5_model *m = NULL;
    CHECK(glm5_model_load(p, NULL, &m) == GLM5_OK);
    glm5_tokenizer *t = (glm5_tokenizer *)0x1;
    CHECK(glm5_model_tokenizer(m, &t) == GLM5_OK && t == NULL);
    CHECK_FAIL(glm5_model_tokenizer(m, NULL), GLM5_ERR_INVALID_ARGUMENT, "out_tokenizer");
    CHECK_FAIL(glm5_model_tokenizer(NULL, &t), GLM5_ERR_INVALID_ARGUMENT, "model is NULL");
    glm5_model_free(m);

    /* a model folder with a tokenizer: tiny-dsa's files plus the bundled tokenizer (symlinks) */
    char dir[] = "/tmp/glm5-test-model-tok-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    const char *names[] = {"config.json", "model.safetensors", "generation_config.json"};
    char src[4400], dst[512];
    for (int i = 0; i < 3; i++) {
        snprintf(src, sizeof src, "%s/Tests/Fixtures/tiny-dsa/%s", repo, names[i]);
        path_join(dst, sizeof dst, dir, names[i]);
        if (access(src, F_OK) == 0) CHECK(symlink(src, dst) == 0);
    }
    snprintf(src, sizeof src, "%s/tokenizer.json", tiny_tok);
    path_join(dst, sizeof dst, dir, "tokenizer.json");
    CHECK(symlink(src, dst) == 0);
    CHECK(glm5_model_load(dir, NULL, &m) == GLM5_OK);
    glm5_tokenizer *a = NULL, *b = NULL;
    CHECK(glm5_model_tokenizer(m, &a) == GLM5_OK && a != NULL);
    CHECK(glm5_model_tokenizer(m, &b) == GLM5_OK && b != NULL && a != b);
    glm5_model_free(m);
    glm5_tokenizer_free(a);
    int32_t ids[16];
    CHECK(encode(b, "hello", 0, ids, 16) > 0); /* b outlives the model and a */
    CHECK_FAIL(glm5_tokenize(a, "x", 1, 0, ids, 16, NULL), GLM5_ERR_INVALID_ARGUMENT, "not a live glm5_tokenizer");
    glm5_tokenizer_info info;
    glm5_tokenizer_info_init(&info);
    CHECK(glm5_tokenizer_get_info(b, &info) == GLM5_OK && info.eos_id == -1); /* no tokenizer_config.json here */
    glm5_tokenizer_free(b);
    glm5_tokenizer_free(b); /* twice: a no-op */
    for (int i = 0; i < 3; i++) {
        path_join(dst, sizeof dst, dir, names[i]);
        unlink(dst);
    }
    path_join(dst, sizeof dst, dir, "tokenizer.json");
    unlink(dst);
    rmdir(dir);
}

struct job {
    glm5_tokenizer *t;
    const char *text;
    int32_t ids[512];
    size_t n;
};

static void *encode_job(void *arg) {
    struct job *j = arg;
    for (int r = 0; r < 50; r++) {
        size_t n = 0;
        if (glm5_tokenize(j->t, j->text, strlen(j->text), GLM5_TOKENIZE_PARSE_SPECIAL, j->ids, 512, &n) != GLM5_OK) return NULL;
        j->n = n;
    }
    return j;
}

static void test_threads(glm5_tokenizer *t) {
    const char *text = "Shared tokenizers are read-only: <|assistant|> any thread may encode. 多线程 🧵🧵 1234567";
    struct job jobs[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        jobs[i].t = t;
        jobs[i].text = text;
        jobs[i].n = 0;
        CHECK(pthread_create(&th[i], NULL, encode_job, &jobs[i]) == 0);
    }
    for (int i = 0; i < 4; i++) {
        void *r = NULL;
        CHECK(pthread_join(th[i], &r) == 0 && r == &jobs[i]);
    }
    for (int i = 1; i < 4; i++) CHECK(jobs[i].n == jobs[0].n && memcmp(jobs[i].ids, jobs[0].ids, jobs[0].n * sizeof(int32_t)) == 0);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: test_tokenizer REPO_ROOT\n");
        return 2;
    }
    snprintf(repo, sizeof repo, "%s", argv[1]);
    path_join(tiny_tok, sizeof tiny_tok, repo, "models/glm5-tiny");
    glm5_tokenizer *t = NULL;
    CHECK(glm5_tokenizer_load(tiny_tok, &t) == GLM5_OK && t != NULL);
    test_arguments(t);
    test_load_errors();
    test_encode_decode(t);
    test_streaming(t);
    test_model_tokenizer();
    test_threads(t);
    glm5_tokenizer_free(t);
    CHECK_FAIL(glm5_tokenize(t, "x", 1, 0, NULL, 0, NULL), GLM5_ERR_INVALID_ARGUMENT, "not a live glm5_tokenizer");
    printf("test_tokenizer: %d checks passed\n", n_checks);
    return 0;
}
