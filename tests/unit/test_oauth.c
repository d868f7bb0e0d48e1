/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests: OAuth messages (authorization URL, token bodies and answers). */
#include <apr_general.h>
#include <apr_strings.h>
#include "sk_test.h"
#include "sk_oauth.h"

#define pool() sk_test_pool()

SK_TEST(oauth_authorize_url_order_and_encoding)
{
    sk_authorize_req q = { 0 };
    q.env_url = "https://acme.scalekit.dev";
    q.client_id = "skc_1";
    q.redirect_uri = "https://app.example.com/api/auth/callback";
    q.scope = "openid profile email offline_access";
    q.state = "st";
    q.nonce = "no";
    q.login_hint = "a b+c@x.y";
    q.domain_hint = "x.y";
    q.organization_id = "org_1";
    q.code_challenge = "ch";
    q.prompt = "login";
    SK_CHECK_STR(sk_oauth_authorize_url(pool(), &q),
        "https://acme.scalekit.dev/oauth/authorize?response_type=code&client_id=skc_1"
        "&redirect_uri=https%3A%2F%2Fapp.example.com%2Fapi%2Fauth%2Fcallback"
        "&scope=openid%20profile%20email%20offline_access&state=st&nonce=no"
        "&login_hint=a%20b%2Bc%40x.y&domain_hint=x.y&domain=x.y&organization_id=org_1"
        "&code_challenge=ch&code_challenge_method=S256&prompt=login");
}

SK_TEST(oauth_login_params)
{
    SK_CHECK_INT(sk_login_param_index("organization_id"), SK_LP_ORGANIZATION);
    SK_CHECK_INT(sk_login_param_index("prompt"), SK_LP_PROMPT);
    SK_CHECK_INT(sk_login_param_index("domain"), -1);
    SK_CHECK(sk_login_param_problem(SK_LP_LOGIN_HINT, "a+b@x.y") == NULL);
    SK_CHECK(sk_login_param_problem(SK_LP_PROMPT, "select_account") == NULL);
    SK_CHECK(sk_login_param_problem(SK_LP_PROVIDER, "gitlab") == NULL);
    SK_CHECK(sk_login_param_problem(SK_LP_PROMPT, "consent") != NULL);
    SK_CHECK(sk_login_param_problem(SK_LP_PROVIDER, "okta") != NULL);
    SK_CHECK(sk_login_param_problem(SK_LP_ORGANIZATION, "") != NULL);
    SK_CHECK(sk_login_param_problem(SK_LP_ORGANIZATION, "org 1") != NULL);
    SK_CHECK(sk_login_param_problem(SK_LP_ORGANIZATION, "org\"1") != NULL);
    SK_CHECK(sk_login_param_problem(SK_LP_DOMAIN_HINT, "x.y\r\n") != NULL);
    SK_CHECK(sk_login_param_problem(-1, "x") != NULL);
    sk_login_params lp = { { "org_1", NULL, "x.y", "a&b@x.y", NULL, "login" } }, back;
    const char *q = sk_login_params_query(pool(), &lp);
    SK_CHECK_STR(q, "organization_id=org_1&domain_hint=x.y&login_hint=a%26b%40x.y&prompt=login");
    sk_login_params_parse(pool(), q, &back);
    SK_CHECK_STR(back.v[SK_LP_LOGIN_HINT], "a&b@x.y");
    SK_CHECK(back.v[SK_LP_CONNECTION] == NULL && back.v[SK_LP_PROVIDER] == NULL);
    sk_login_params_parse(pool(), "prompt=consent&provider=google", &back);
    SK_CHECK(back.v[SK_LP_PROMPT] == NULL);                     /* not a value Scalekit takes */
    SK_CHECK_STR(back.v[SK_LP_PROVIDER], "google");
}

SK_TEST(oauth_bodies)
{
    SK_CHECK_STR(sk_oauth_code_body(pool(), "skc_1", "s&e=c", "c0de", "https://a/cb", "ver"),
                 "code=c0de&redirect_uri=https%3A%2F%2Fa%2Fcb&grant_type=authorization_code"
                 "&client_id=skc_1&client_secret=s%26e%3Dc&code_verifier=ver");
    SK_CHECK_STR(sk_oauth_refresh_body(pool(), "skc_1", "sec", "rt"),
                 "grant_type=refresh_token&client_id=skc_1&client_secret=sec&refresh_token=rt");
}

SK_TEST(oauth_token_response)
{
    sk_token_set ts;
    const char *why = NULL;
    const char *ok = "{\"access_token\":\"a\",\"id_token\":\"i\",\"refresh_token\":\"r\","
                     "\"expires_in\":299}";
    SK_CHECK_INT(sk_oauth_parse_token_response(pool(), 200, ok, strlen(ok), &ts, &why), APR_SUCCESS);
    SK_CHECK_STR(ts.access_token, "a");
    SK_CHECK_STR(ts.id_token, "i");
    SK_CHECK_STR(ts.refresh_token, "r");
    SK_CHECK_INT(ts.expires_in, 299);
    const char *err = "{\"error\":\"invalid_grant\",\"error_description\":\"used\\n\"}";
    SK_CHECK(sk_oauth_parse_token_response(pool(), 400, err, strlen(err), &ts, &why) != APR_SUCCESS);
    SK_CHECK_STR(why, "status 400, invalid_grant: used?");
    SK_CHECK(sk_oauth_parse_token_response(pool(), 200, "<html>", 6, &ts, &why) != APR_SUCCESS);
    SK_CHECK(sk_oauth_parse_token_response(pool(), 200, "{}", 2, &ts, &why) != APR_SUCCESS);
    SK_CHECK(sk_oauth_parse_token_response(pool(), 500, NULL, 0, &ts, &why) != APR_SUCCESS);
}

SK_TEST(oauth_logout_url)
{
    SK_CHECK_STR(sk_oauth_logout_url(pool(), "https://e", "tok", "https://a/", NULL),
                 "https://e/oidc/logout?id_token_hint=tok&post_logout_redirect_uri=https%3A%2F%2Fa%2F");
    SK_CHECK_STR(sk_oauth_logout_url(pool(), "https://e", NULL, NULL, NULL),
                 "https://e/oidc/logout");
}

SK_TEST(oauth_query_and_pkce)
{
    SK_CHECK_STR(sk_query_get(pool(), "a=1&return_to=%2Fx%3Fy%3D1&b", "return_to"), "/x?y=1");
    SK_CHECK_STR(sk_query_get(pool(), "a=1&b", "b"), "");
    SK_CHECK(sk_query_get(pool(), "a=1", "ab") == NULL);
    SK_CHECK(sk_query_get(pool(), "a=%zz", "a") == NULL);
    SK_CHECK(sk_query_get(pool(), "a=%00", "a") == NULL);
    SK_CHECK(sk_query_get(pool(), "a=%4", "a") == NULL);
    /* RFC 7636 appendix B */
    SK_CHECK_STR(sk_pkce_challenge(pool(), "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
                 "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    char *a = sk_random_b64url(pool(), 32), *b = sk_random_b64url(pool(), 32);
    SK_CHECK_INT(strlen(a), 43);
    SK_CHECK(strcmp(a, b) != 0);
}
