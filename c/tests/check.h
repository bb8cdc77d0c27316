/* A minimal test harness: CHECK records a pass or a failure with its location and carries on;
 * check_summary() prints "N passed, N failed" and gives the exit status. */
#ifndef EDMM_TEST_CHECK_H
#define EDMM_TEST_CHECK_H

#include <stdio.h>

static int check_passed, check_failed;

#define CHECK(cond, ...)                                                                                      \
    do {                                                                                                      \
        if (cond) {                                                                                           \
            check_passed++;                                                                                   \
        } else {                                                                                              \
            check_failed++;                                                                                   \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                                   \
            fprintf(stderr, __VA_ARGS__);                                                                     \
            fputc('\n', stderr);                                                                              \
        }                                                                                                     \
    } while (0)

/* CHECK that a call returned `want`, naming what it returned instead. */
#define CHECK_RC(call, want)                                                                                  \
    do {                                                                                                      \
        long check_rc_ = (long)(call);                                                                        \
        CHECK(check_rc_ == (long)(want), "%s returned %ld, expected %ld", #call, check_rc_, (long)(want));    \
    } while (0)

static inline int check_summary(const char *suite) {
    printf("%s: %d passed, %d failed\n", suite, check_passed, check_failed);
    return check_failed == 0 ? 0 : 1;
}

#endif
