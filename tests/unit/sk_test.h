/* SPDX-License-Identifier: Apache-2.0 */
/* sk_test.h: a tiny unit-test runner. Each SK_TEST registers itself at load
 * time; main.c runs them all and ends with the line "N passed, N failed". */
#ifndef SK_TEST_H
#define SK_TEST_H

#include <stdio.h>
#include <string.h>

typedef void (*sk_test_fn)(int *failed);

/* An APR pool for tests of APR-using code (APR initialised on first use). */
struct apr_pool_t;
struct apr_pool_t *sk_test_pool(void);
void sk_test_register(const char *name, const char *file, sk_test_fn fn);

#define SK_TEST(name)                                                        \
    static void name(int *sk_failed_);                                       \
    __attribute__((constructor)) static void name##_register(void)          \
    { sk_test_register(#name, __FILE__, name); }                              \
    static void name(int *sk_failed_)

/* Record a failure with its place and carry on with the next check. */
#define SK_CHECK(cond)                                                        \
    do { if (!(cond)) { *sk_failed_ = 1;                                      \
        fprintf(stderr, "  %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); } } while (0)

#define SK_CHECK_INT(a, b)                                                    \
    do { long long sk_a_ = (long long)(a), sk_b_ = (long long)(b);            \
        if (sk_a_ != sk_b_) { *sk_failed_ = 1;                                \
            fprintf(stderr, "  %s:%d: %s == %lld, expected %s == %lld\n",     \
                    __FILE__, __LINE__, #a, sk_a_, #b, sk_b_); } } while (0)

#define SK_CHECK_STR(a, b)                                                    \
    do { const char *sk_a_ = (a), *sk_b_ = (b);                               \
        if (!sk_a_ || !sk_b_ || strcmp(sk_a_, sk_b_) != 0) { *sk_failed_ = 1; \
            fprintf(stderr, "  %s:%d: %s == \"%s\", expected \"%s\"\n",       \
                    __FILE__, __LINE__, #a, sk_a_ ? sk_a_ : "(null)",         \
                    sk_b_ ? sk_b_ : "(null)"); } } while (0)

/* Stop this test (after a check whose failure makes the rest meaningless). */
#define SK_REQUIRE(cond)                                                      \
    do { if (!(cond)) { *sk_failed_ = 1;                                      \
        fprintf(stderr, "  %s:%d: requirement failed: %s\n", __FILE__, __LINE__, #cond); \
        return; } } while (0)

#endif
