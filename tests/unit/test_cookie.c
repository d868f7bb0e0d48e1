/* Unit tests: Cookie header reading. */
#include <apr_general.h>
#include "sk_test.h"
#include "sk_cookie.h"

#define pool() sk_test_pool()

SK_TEST(cookie_get)
{
    const char *h = "a=1; sk-access-token=abc.def.ghi ;b=\"q\";  sk-id-token=x; a=2";
    SK_CHECK_STR(sk_cookie_get(pool(), h, "sk-access-token"), "abc.def.ghi");
    SK_CHECK_STR(sk_cookie_get(pool(), h, "b"), "q");
    SK_CHECK_STR(sk_cookie_get(pool(), h, "a"), "1");           /* first wins */
    SK_CHECK(sk_cookie_get(pool(), h, "sk-access") == NULL);    /* no prefix match */
    SK_CHECK(sk_cookie_get(pool(), h, "token") == NULL);
    SK_CHECK(sk_cookie_get(pool(), "", "a") == NULL);
    SK_CHECK(sk_cookie_get(pool(), ";;;=;=x;a", "a") == NULL);
    SK_CHECK_STR(sk_cookie_get(pool(), "a=", "a"), "");
    SK_CHECK_STR(sk_cookie_get(pool(), "x=1;a=b=c", "a"), "b=c");
}

static int count_cb(void *ctx, const char *n, size_t nl, const char *v, size_t vl)
{
    (void)n; (void)nl; (void)v; (void)vl;
    (*(int *)ctx)++;
    return 0;
}

SK_TEST(cookie_many)
{
    char h[20000];
    size_t off = 0;
    for (int i = 0; i < 500; i++)
        off += (size_t)snprintf(h + off, sizeof(h) - off, "c%d=v%d; ", i, i);
    int n = 0;
    SK_CHECK_INT(sk_cookie_each(h, count_cb, &n), 500);
    SK_CHECK_INT(n, 500);
    SK_CHECK_STR(sk_cookie_get(pool(), h, "c499"), "v499");
}

SK_TEST(cookie_get_many_first_wins)
{
    const char *names[3] = { "a", "b", "c" };
    const char *v[3];
    SK_CHECK_INT(sk_cookie_get_many(sk_test_pool(), "a=; a=1; b=2; b=3", names, v, 3), 2);
    SK_CHECK(v[0] == NULL);                       /* the first a, empty, wins */
    SK_CHECK_STR(v[1], "2");
    SK_CHECK(v[2] == NULL);
    SK_CHECK_INT(sk_cookie_get_many(sk_test_pool(), "x=1; c=9; a=; a=; a=; b=5", names, v, 3), 3);
    SK_CHECK_STR(v[1], "5");                      /* repeated a's do not end the walk early */
    SK_CHECK_STR(v[2], "9");
    SK_CHECK_INT(sk_cookie_get_many(sk_test_pool(), NULL, names, v, 3), 0);
}
