/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests: return_to / post-logout targets stay on the site. The shared
 * corpus is replayed by the integration suite through the real httpd; here
 * the rules themselves. */
#include <apr_general.h>
#include <apr_strings.h>
#include "sk_test.h"
#include "sk_redirect.h"

#define pool() sk_test_pool()

SK_TEST(redirect_local_paths)
{
    SK_CHECK(sk_local_path_ok("/"));
    SK_CHECK(sk_local_path_ok("/dashboard/?tab=1#x"));
    SK_CHECK(sk_local_path_ok("/a%20b"));
    static const char *bad[] = {
        "", "dashboard", "//evil.example", "/\\evil.example", "/%2f%2fevil.example",
        "/%2F/evil.example", "/%5cevil.example", "/%252f%252fevil.example",
        "/\tevil", "/a\r\nSet-Cookie: x", "javascript:alert(1)", "data:text/html,x",
        "https://evil.example/", "http:/evil.example", "/%", "/%zz", "/a\\b",
        "/%09/evil.example", "/ /evil", "\\\\evil.example", "/\xe2\x80\xa8x", "/\xef\xbc\x8f",
        "/%25252f%25252fevil.example",
        /* A decoded NUL would end the next layer's check before the "//". */
        "/%00//evil.example", "/%2500%2F%2Fevil.example", "/%252500%252F%252Fevil.example",
        "/a%00", "/%2500",
        NULL };
    for (int i = 0; bad[i]; i++) {
        if (sk_local_path_ok(bad[i])) {
            *sk_failed_ = 1;
            fprintf(stderr, "  accepted: %s\n", bad[i]);
        }
    }
    char *longp = apr_palloc(pool(), SK_RETURN_TO_MAX + 2);
    memset(longp, 'a', SK_RETURN_TO_MAX + 1);
    longp[0] = '/';
    longp[SK_RETURN_TO_MAX + 1] = 0;
    SK_CHECK(!sk_local_path_ok(longp));
}

SK_TEST(redirect_origins)
{
    apr_array_header_t *o = apr_array_make(pool(), 2, sizeof(char *));
    APR_ARRAY_PUSH(o, const char *) = "https://docs.example.com";
    SK_CHECK(sk_redirect_ok(pool(), "/x", o));
    SK_CHECK(sk_redirect_ok(pool(), "https://docs.example.com/a", o));
    SK_CHECK(sk_redirect_ok(pool(), "https://docs.example.com", o));
    SK_CHECK(!sk_redirect_ok(pool(), "https://docs.example.com.evil.io/", o));
    SK_CHECK(!sk_redirect_ok(pool(), "https://docs.example.com@evil.io/", o));
    SK_CHECK(!sk_redirect_ok(pool(), "https://docs.example.com//evil.io", o));
    SK_CHECK(!sk_redirect_ok(pool(), "https://evil.io/", o));
    SK_CHECK(!sk_redirect_ok(pool(), "http://docs.example.com/", o));
    SK_CHECK(!sk_redirect_ok(pool(), "https://evil.io/", NULL));
    SK_CHECK(!sk_redirect_ok(pool(), "/%2500%2F%2Fevil.io", o));
    SK_CHECK(!sk_redirect_ok(pool(), "https://docs.example.com/%00//evil.io", o));
}

SK_TEST(redirect_loopback_host)
{
    SK_CHECK(sk_is_loopback_host("localhost"));
    SK_CHECK(sk_is_loopback_host("LocalHost"));
    SK_CHECK(sk_is_loopback_host("127.0.0.1"));
    SK_CHECK(sk_is_loopback_host("127.1.2.3"));
    SK_CHECK(sk_is_loopback_host("::1"));
    SK_CHECK(!sk_is_loopback_host("127.evil.example"));  /* never by prefix */
    SK_CHECK(!sk_is_loopback_host("localhost.evil.example"));
    SK_CHECK(!sk_is_loopback_host("128.0.0.1"));
    SK_CHECK(!sk_is_loopback_host("10.0.0.1"));
    SK_CHECK(!sk_is_loopback_host(""));
    SK_CHECK(!sk_is_loopback_host(NULL));
}

SK_TEST(redirect_url_problem)
{
    apr_pool_t *p = sk_test_pool();
    SK_CHECK(sk_url_problem(p, "https://acme.scalekit.dev") == NULL);
    SK_CHECK(sk_url_problem(p, "https://app.example.com/api/auth/callback") == NULL);
    SK_CHECK(sk_url_problem(p, "http://localhost:8080/cb") == NULL);
    SK_CHECK(sk_url_problem(p, "http://127.0.0.1:9000") == NULL);
    const struct { const char *url, *why; } bad[] = {
        { "/cb", "is not an absolute URL" },
        { "acme.scalekit.dev", "is not an absolute URL" },
        { "ftp://acme.example", "must be an https URL" },
        { "https://acme.example/cb?x=1", "must not carry a query" },
        { "https://acme.example/cb#f", "must not carry a query" },
        { "https://user@acme.example", "must not carry a query" },
        { "https://u:p@acme.example", "must not carry a query" },
        { "http://acme.example", "uses http:// for a host that is not loopback" },
        { "http://127.evil.example", "uses http:// for a host that is not loopback" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const char *why = sk_url_problem(p, bad[i].url);
        SK_CHECK(why && strstr(why, bad[i].why) && strstr(why, bad[i].url));
    }
}

SK_TEST(redirect_uri_path_ok)
{
    SK_CHECK(sk_redirect_uri_path_ok("/api/auth/callback"));
    SK_CHECK(sk_redirect_uri_path_ok("/cb"));
    SK_CHECK(!sk_redirect_uri_path_ok("api/auth/callback"));
    SK_CHECK(!sk_redirect_uri_path_ok("//evil.example/cb"));
    SK_CHECK(!sk_redirect_uri_path_ok("/cb?x=1"));
    SK_CHECK(!sk_redirect_uri_path_ok("/cb#f"));
    SK_CHECK(!sk_redirect_uri_path_ok("/c%62"));
    SK_CHECK(!sk_redirect_uri_path_ok("/c\\b"));
    SK_CHECK(!sk_redirect_uri_path_ok("https://app.example.com/cb"));
}
