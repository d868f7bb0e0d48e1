/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests: Cookie header reading. */
#include <apr_general.h>
#include <apr_strings.h>
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

/* ---- what the application must not see ---- */

static const char *const OWN[] = { "sk-access-token", "sk-id-token", "sk-refresh-token",
                                   "sk-session" };

static void own_names(sk_cookie_names *own)
{
    sk_cookie_names_init(sk_test_pool(), own, OWN, 4, "sk-state-");
}

static const char *strip(const sk_cookie_names *own, const char *h, int *dropped)
{
    char *out = apr_palloc(sk_test_pool(), sk_cookie_strip_size(h));
    *dropped = sk_cookie_strip_own(own, h, out);
    return *dropped ? out : h;
}

SK_TEST(cookie_names_hint)
{
    sk_cookie_names own;
    own_names(&own);
    SK_CHECK_STR(own.hint, "sk-");                 /* the prefix all five share */
    SK_CHECK(!sk_cookie_may_hold_own(&own, "a=1; b=2"));
    SK_CHECK(!sk_cookie_may_hold_own(&own, NULL));
    SK_CHECK(sk_cookie_may_hold_own(&own, "a=sk-x"));   /* may: the walk decides */
    const char *mixed[] = { "at", "idt", NULL, "" };
    sk_cookie_names_init(sk_test_pool(), &own, mixed, 4, "st-");
    SK_CHECK_INT(own.n_exact, 2);
    SK_CHECK_STR(own.hint, "");                    /* nothing shared: each is searched */
    SK_CHECK(!sk_cookie_may_hold_own(&own, "b=1; c=2"));
    SK_CHECK(sk_cookie_may_hold_own(&own, "b=1; idt=2"));
    SK_CHECK(sk_cookie_may_hold_own(&own, "b=1; st-x=2"));
    sk_cookie_names_init(sk_test_pool(), &own, mixed, 0, NULL);
    SK_CHECK(!sk_cookie_may_hold_own(&own, "at=1"));       /* no names: nothing is ours */
}

SK_TEST(cookie_is_own)
{
    sk_cookie_names own;
    own_names(&own);
    SK_CHECK(sk_cookie_is_own(&own, "sk-access-token", 15));
    SK_CHECK(sk_cookie_is_own(&own, "sk-session", 10));
    SK_CHECK(sk_cookie_is_own(&own, "sk-state-abc", 12));
    SK_CHECK(!sk_cookie_is_own(&own, "sk-state-", 9));    /* the bare prefix is not a state */
    SK_CHECK(!sk_cookie_is_own(&own, "sk-access-tokens", 16));
    SK_CHECK(!sk_cookie_is_own(&own, "sk-access-toke", 14));
    SK_CHECK(!sk_cookie_is_own(&own, "SK-ACCESS-TOKEN", 15));   /* names are case-sensitive */
    SK_CHECK(!sk_cookie_is_own(&own, "xsk-session", 11));
}

SK_TEST(cookie_strip_own)
{
    sk_cookie_names own;
    int n;
    own_names(&own);
    SK_CHECK_STR(strip(&own, "a=1; sk-access-token=x.y.z; b=\"q r\";sk-state-1234=s; c=",
                       &n), "a=1; b=\"q r\"; c=");
    SK_CHECK_INT(n, 2);
    SK_CHECK_STR(strip(&own, "sk-refresh-token=r; sk-id-token=i", &n), "");
    SK_CHECK_INT(n, 2);
    SK_CHECK_STR(strip(&own, "a=1;b=2", &n), "a=1;b=2");        /* untouched, not rewritten */
    SK_CHECK_INT(n, 0);
    /* Duplicates, blanks and a quoted value of ours all go. */
    SK_CHECK_STR(strip(&own, " sk-session = \"s\" ; x=1 ;sk-session=t;;=v; y", &n), "x=1");
    SK_CHECK_INT(n, 2);
    /* A cookie of another application whose name only starts like ours stays. */
    SK_CHECK_STR(strip(&own, "sk-sessions=1; sk-access-token=2; sk-state-=3", &n),
                 "sk-sessions=1; sk-state-=3");
    SK_CHECK_INT(n, 1);
    /* Near the size bound's worst case: the shortest pairs, joined by a bare
     * ';', each written back with "; " (3 bytes become 4). */
    char big[3 * 2000 + sizeof("sk-session=1")];
    for (int i = 0; i < 2000; i++)
        memcpy(big + 3 * i, "a=;", 3);
    strcpy(big + 3 * 2000, "sk-session=1");
    char *out = apr_palloc(sk_test_pool(), sk_cookie_strip_size(big));
    SK_CHECK_INT(sk_cookie_strip_own(&own, big, out), 1);
    SK_CHECK_INT(strlen(out), 4 * 2000 - 2);
    SK_CHECK(strlen(out) < sk_cookie_strip_size(big));
}

/* Reading the token cookies and stripping them in one walk gives what the two
 * walks give apart. */
SK_TEST(cookie_take_own)
{
    sk_cookie_names own;
    own_names(&own);
    const char *names[3] = { "sk-access-token", "sk-id-token", "sk-refresh-token" };
    const char *v[3], *w[3];
    char *out = apr_palloc(sk_test_pool(), 128);
    const char *h = "a=1; sk-access-token=x.y.z; sk-id-token=; b=\"q r\";"
                    "sk-access-token=second; sk-state-12=s; c=";
    SK_CHECK_INT(sk_cookie_take_own(&own, h, out, sk_test_pool(), names, v, 3), 4);
    SK_CHECK_STR(out, "a=1; b=\"q r\"; c=");
    sk_cookie_get_many(sk_test_pool(), h, names, w, 3);
    SK_CHECK_STR(v[0], "x.y.z");                   /* the first of a name wins */
    SK_CHECK_STR(v[0], w[0]);
    SK_CHECK(v[1] == NULL && w[1] == NULL);        /* empty: absent */
    SK_CHECK(v[2] == NULL && w[2] == NULL);
    /* Nothing of ours: nothing written, nothing found. */
    SK_CHECK_INT(sk_cookie_take_own(&own, "a=1;b=2", out, sk_test_pool(), names, v, 3), 0);
    SK_CHECK(!v[0] && !v[1] && !v[2]);
    /* Only ours: "" is left. */
    SK_CHECK_INT(sk_cookie_take_own(&own, "sk-refresh-token=r", out, sk_test_pool(), names,
                                    v, 3), 1);
    SK_CHECK_STR(out, "");
    SK_CHECK_STR(v[2], "r");
}

SK_TEST(header_prefix_and_scrub)
{
    SK_CHECK(sk_header_has_prefix("X-Scalekit-Sub", "X-Scalekit-"));
    SK_CHECK(sk_header_has_prefix("x_scalekit_sub", "X-Scalekit-"));
    SK_CHECK(sk_header_has_prefix("X-SCALEKIT-", "x-scalekit-"));
    SK_CHECK(!sk_header_has_prefix("X-Scalekit", "X-Scalekit-"));
    SK_CHECK(!sk_header_has_prefix("X-Scalekitx", "X-Scalekit-"));
    apr_table_t *t = apr_table_make(sk_test_pool(), 8);
    apr_table_add(t, "Host", "h");
    apr_table_add(t, "X-Scalekit-Sub", "mallory");
    apr_table_add(t, "Cookie", "a=1");
    apr_table_add(t, "x_scalekit_email", "m@evil");
    apr_table_add(t, "Scalekit-Roles", "admin");
    apr_table_add(t, "X-Scalekit-Sub", "again");
    apr_table_add(t, "X-Other", "o");
    const char *prefixes[] = { "X-Scalekit-", "Scalekit-" };
    SK_CHECK_INT(sk_headers_scrub(t, prefixes, 2), 4);
    SK_CHECK_INT(apr_table_elts(t)->nelts, 3);
    SK_CHECK_STR(apr_table_get(t, "Host"), "h");
    SK_CHECK_STR(apr_table_get(t, "Cookie"), "a=1");
    SK_CHECK_STR(apr_table_get(t, "X-Other"), "o");
    SK_CHECK_INT(sk_headers_scrub(t, prefixes, 2), 0);
}

SK_TEST(cache_control_private)
{
    apr_pool_t *p = sk_test_pool();
    SK_CHECK_STR(sk_cache_control_private(p, NULL), "private");
    SK_CHECK_STR(sk_cache_control_private(p, "private"), "private");
    SK_CHECK_STR(sk_cache_control_private(p, "public, max-age=600"), "private, max-age=600");
    SK_CHECK_STR(sk_cache_control_private(p, "s-maxage=60, PUBLIC"), "private, s-maxage=60");
    SK_CHECK_STR(sk_cache_control_private(p, "no-store, private"), "no-store");
    SK_CHECK_STR(sk_cache_control_private(p, "max-age=0, No-Store"), "max-age=0, No-Store");
    SK_CHECK_STR(sk_cache_control_private(p, "private=\"Set-Cookie, X\", max-age=5"),
                 "private, max-age=5");
    SK_CHECK_STR(sk_cache_control_private(p, "no-cache=\"a,public\" , ,"),
                 "private, no-cache=\"a,public\"");
    SK_CHECK_STR(sk_cache_control_private(p, "publicity=1"), "private, publicity=1");
    SK_CHECK_STR(sk_cache_control_private(p, ""), "private");
    /* Bare commas grow into ", " (a fuzzer found the first buffer too small). */
    SK_CHECK_STR(sk_cache_control_private(p, "a,b,c,d,e,f,g,h,i,j,k,l,m"),
                 "private, a, b, c, d, e, f, g, h, i, j, k, l, m");
}

static const char *dropped(apr_array_header_t *a)
{
    return a->nelts ? apr_array_pstrcat(sk_test_pool(), a, ',') : "";
}

SK_TEST(cookie_state_budget)
{
    apr_pool_t *p = sk_test_pool();
    const char *h = "a=1; sk-state-1=x; other=2; sk-state-2=y; sk-state-3=z";
    /* max 5: three pending and a new one fit */
    SK_CHECK_STR(dropped(sk_state_cookies_to_drop(p, h, "sk-state-", 5, 100)), "");
    /* max 3: two may stay with the new one, so the oldest goes */
    SK_CHECK_STR(dropped(sk_state_cookies_to_drop(p, h, "sk-state-", 3, 100)), "sk-state-1");
    SK_CHECK_STR(dropped(sk_state_cookies_to_drop(p, h, "sk-state-", 1, 100)),
                 "sk-state-1,sk-state-2,sk-state-3");
    SK_CHECK_STR(dropped(sk_state_cookies_to_drop(p, NULL, "sk-state-", 1, 100)), "");
    /* the prefix alone is no state cookie */
    SK_CHECK_STR(dropped(sk_state_cookies_to_drop(p, "sk-state-=v", "sk-state-", 1, 100)), "");
    /* bytes: three 1.5 KB cookies and a new 1.5 KB one pass 4096; the oldest
     * go until what stays fits */
    char *v = apr_pcalloc(p, 1501);
    memset(v, 'v', 1500);
    const char *big = apr_psprintf(p, "sk-state-a=%s; sk-state-b=%s; sk-state-c=%s", v, v, v);
    SK_CHECK_STR(dropped(sk_state_cookies_to_drop(p, big, "sk-state-", 5, 1500)),
                 "sk-state-a,sk-state-b");
    SK_CHECK(SK_STATE_BYTES == 4096);
}
