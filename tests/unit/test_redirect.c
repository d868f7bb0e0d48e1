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
