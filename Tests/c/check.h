/*
 * check.h — the checks of the C tests that stop at the first failure (test_capi, test_rl,
 * test_tokenizer; test_sampling counts failures and goes on, with its own).
 *
 *   CHECK(cond)                     count a check; on failure print it with glm5_last_error(), exit 1
 *   CHECK_MSG(needle)               the last error contains `needle`
 *   CHECK_FAIL(expr, status, needle) expr returns `status` with a non-empty message containing `needle`
 */
#ifndef GLM5_TEST_CHECK_H
#define GLM5_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "glm5.h"

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

#define CHECK_MSG(needle) CHECK(strstr(glm5_last_error(), (needle)) != NULL)

#define CHECK_FAIL(expr, status, needle)  \
    do {                                  \
        CHECK((expr) == (status));        \
        CHECK(glm5_last_error()[0] != 0); \
        CHECK_MSG(needle);                \
    } while (0)

#endif
