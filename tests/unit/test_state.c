/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests: sealed cookies and the login state. */
#include <apr_general.h>
#include <apr_strings.h>
#include "sk_test.h"
#include "sk_state.h"

#define pool() sk_test_pool()

SK_TEST(state_round_trip)
{
    sk_sealer *k = sk_sealer_create(pool(), "secret", "label");
    SK_REQUIRE(k);
    sk_login_state in = { "s1", "n1", "v1", "/back?x=1", 1700000000, 1,
                          "organization_id=org_1&prompt=login", "org_1", "https://b.example.com/cb" }, out;
    char *sealed = sk_login_state_seal(pool(), k, &in);
    SK_REQUIRE(sealed);
    SK_CHECK_INT(sk_login_state_open(pool(), k, sealed, &out), APR_SUCCESS);
    SK_CHECK_STR(out.state, "s1");
    SK_CHECK_STR(out.nonce, "n1");
    SK_CHECK_STR(out.verifier, "v1");
    SK_CHECK_STR(out.return_to, "/back?x=1");
    SK_CHECK_INT(out.created, 1700000000);
    SK_CHECK_INT(out.silent, 1);
    SK_CHECK_STR(out.params, "organization_id=org_1&prompt=login");
    SK_CHECK_STR(out.switch_to, "org_1");
    SK_CHECK_STR(out.redirect_uri, "https://b.example.com/cb");
    sk_login_state plain = { "s1", "n1", "v1", "/", 1700000000, 0, NULL, NULL, NULL };
    SK_CHECK_INT(sk_login_state_open(pool(), k, sk_login_state_seal(pool(), k, &plain), &out),
                 APR_SUCCESS);
    SK_CHECK(out.params == NULL && out.switch_to == NULL && out.redirect_uri == NULL);
}

SK_TEST(state_switch_mark)
{
    sk_sealer *k = sk_sealer_create(pool(), "secret", "label");
    const char *r, *o;
    int64_t t;
    char *mark = sk_switch_mark_seal(pool(), k, "/b/?x=1", "org_b org_c", 1700000000);
    SK_REQUIRE(mark);
    SK_CHECK_INT(sk_switch_mark_open(pool(), k, mark, &r, &o, &t), APR_SUCCESS);
    SK_CHECK_STR(r, "/b/?x=1");
    SK_CHECK_STR(o, "org_b org_c");
    SK_CHECK_INT(t, 1700000000);
    /* A login state does not open as a mark, nor a mark as a login state. */
    sk_login_state in = { "s1", "n1", "v1", "/", 1700000000, 0, NULL, NULL, NULL }, out;
    SK_CHECK(sk_switch_mark_open(pool(), k, sk_login_state_seal(pool(), k, &in), &r, &o, &t)
             != APR_SUCCESS);
    SK_CHECK(sk_login_state_open(pool(), k, mark, &out) != APR_SUCCESS);
}

SK_TEST(state_tampering_refused)
{
    sk_sealer *k = sk_sealer_create(pool(), "secret", "label");
    sk_sealer *other = sk_sealer_create(pool(), "secret2", "label");
    sk_sealer *other_label = sk_sealer_create(pool(), "secret", "label2");
    sk_login_state in = { "s1", "n1", "v1", "/", 1700000000, 0, NULL, NULL, NULL }, out;
    char *sealed = sk_login_state_seal(pool(), k, &in);
    SK_REQUIRE(sealed);
    size_t n = strlen(sealed);
    SK_CHECK(sk_login_state_open(pool(), other, sealed, &out) != APR_SUCCESS);
    SK_CHECK(sk_login_state_open(pool(), other_label, sealed, &out) != APR_SUCCESS);
    for (size_t i = 0; i < n; i++) {          /* every single-character change */
        char *t = apr_pstrdup(pool(), sealed);
        t[i] = t[i] == 'A' ? 'B' : 'A';
        SK_CHECK(sk_login_state_open(pool(), k, t, &out) != APR_SUCCESS);
    }
    for (size_t len = 0; len < n; len += 7)   /* truncations */
        SK_CHECK(sk_login_state_open(pool(), k, apr_pstrndup(pool(), sealed, len), &out)
                 != APR_SUCCESS);
    SK_CHECK(sk_login_state_open(pool(), k, "", &out) != APR_SUCCESS);
    SK_CHECK(sk_login_state_open(pool(), k, "not base64!", &out) != APR_SUCCESS);
    /* a sealed value that is not a complete login state */
    SK_CHECK(sk_login_state_open(pool(), k, sk_seal(pool(), k, "{}", 2), &out) != APR_SUCCESS);
    SK_CHECK(sk_login_state_open(pool(), k, sk_seal(pool(), k, "[", 1), &out) != APR_SUCCESS);
}

SK_TEST(state_seals_differ)
{
    sk_sealer *k = sk_sealer_create(pool(), "secret", "label");
    char *a = sk_seal(pool(), k, "same", 4), *b = sk_seal(pool(), k, "same", 4);
    SK_CHECK(strcmp(a, b) != 0);               /* fresh IV each time */
}

SK_TEST(state_bound_seal_opens_only_in_its_context)
{
    sk_sealer *k = sk_sealer_create(pool(), "secret", "record");
    const char *plain = "{\"a\":\"token\"}";
    char *sealed = sk_seal_bound(pool(), k, "key-1:s", plain, strlen(plain));
    size_t len = 0;
    SK_REQUIRE(sealed);
    SK_CHECK(strstr(sealed, "token") == NULL);
    char *back = sk_unseal_bound(pool(), k, "key-1:s", sealed, 65536, &len);
    SK_REQUIRE(back);
    SK_CHECK_STR(back, plain);
    SK_CHECK_INT(len, strlen(plain));
    /* moved under another key, or opened without one, or too long: refused */
    SK_CHECK(sk_unseal_bound(pool(), k, "key-2:s", sealed, 65536, &len) == NULL);
    SK_CHECK(sk_unseal_bound(pool(), k, NULL, sealed, 65536, &len) == NULL);
    SK_CHECK(sk_unseal(pool(), k, sealed, &len) == NULL);
    SK_CHECK(sk_unseal_bound(pool(), k, "key-1:s", sealed, strlen(sealed) - 1, &len) == NULL);
    /* one changed character anywhere */
    for (size_t i = 0; i < strlen(sealed); i++) {
        char *t = apr_pstrdup(pool(), sealed);
        t[i] = t[i] == 'A' ? 'B' : 'A';
        SK_CHECK(sk_unseal_bound(pool(), k, "key-1:s", t, 65536, &len) == NULL);
    }
}
