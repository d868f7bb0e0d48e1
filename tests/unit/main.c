/* SPDX-License-Identifier: Apache-2.0 */
/* The unit-test runner: runs every registered test, or those whose name
 * contains argv[1], and prints "N passed, N failed" as its last line. */
#include <stdlib.h>
#include <apr_general.h>
#include <apr_pools.h>
#include "sk_test.h"

apr_pool_t *sk_test_pool(void)
{
    static apr_pool_t *p;
    if (!p) {
        apr_initialize();
        apr_pool_create(&p, NULL);
    }
    return p;
}

#define SK_MAX_TESTS 2048

static struct { const char *name, *file; sk_test_fn fn; } tests[SK_MAX_TESTS];
static int n_tests;

void sk_test_register(const char *name, const char *file, sk_test_fn fn)
{
    if (n_tests == SK_MAX_TESTS) {
        fprintf(stderr, "too many tests\n");
        exit(2);
    }
    tests[n_tests].name = name;
    tests[n_tests].file = file;
    tests[n_tests].fn = fn;
    n_tests++;
}

int main(int argc, char **argv)
{
    int passed = 0, failed = 0;
    for (int i = 0; i < n_tests; i++) {
        if (argc > 1 && !strstr(tests[i].name, argv[1]))
            continue;
        int f = 0;
        tests[i].fn(&f);
        printf("%s %s (%s)\n", f ? "FAIL" : "ok  ", tests[i].name, tests[i].file);
        fflush(stdout);
        if (f)
            failed++;
        else
            passed++;
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
