/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for text.c: UTF-8 lengths and values made safe for the
 * environment, headers and logs. */
#include <apr_pools.h>
#include "sk_test.h"
#include "sk_text.h"

static int ulen(const char *s)
{
    return sk_utf8_len((const unsigned char *)s);
}

SK_TEST(text_utf8_len)
{
    SK_CHECK_INT(ulen("a"), 1);
    SK_CHECK_INT(ulen("\xc3\xa9"), 2);                  /* é */
    SK_CHECK_INT(ulen("\xe2\x82\xac"), 3);              /* € */
    SK_CHECK_INT(ulen("\xf0\x9f\x98\x80"), 4);          /* U+1F600 */
    SK_CHECK_INT(ulen("\xf4\x8f\xbf\xbf"), 4);          /* U+10FFFF, the last */
    SK_CHECK_INT(ulen("\xc0\xaf"), 0);                  /* overlong '/' */
    SK_CHECK_INT(ulen("\xc1\xbf"), 0);
    SK_CHECK_INT(ulen("\xe0\x80\xaf"), 0);              /* overlong, 3 bytes */
    SK_CHECK_INT(ulen("\xf0\x80\x80\xaf"), 0);          /* overlong, 4 bytes */
    SK_CHECK_INT(ulen("\xed\xa0\x80"), 0);              /* a surrogate, U+D800 */
    SK_CHECK_INT(ulen("\xf4\x90\x80\x80"), 0);          /* past U+10FFFF */
    SK_CHECK_INT(ulen("\xf5\x80\x80\x80"), 0);
    SK_CHECK_INT(ulen("\x80"), 0);                      /* a lone continuation byte */
    SK_CHECK_INT(ulen("\xc3"), 0);                      /* cut short (NUL follows) */
    SK_CHECK_INT(ulen("\xe2\x82"), 0);
    SK_CHECK_INT(ulen("\xc3\x28"), 0);                  /* not a continuation */
}

SK_TEST(text_env_safe)
{
    apr_pool_t *p = sk_test_pool();
    const char *clean = "usr_123@example.com";
    SK_CHECK(sk_env_safe(p, clean) == clean);           /* clean: the very pointer */
    SK_CHECK_STR(sk_env_safe(p, ""), "");
    SK_CHECK_STR(sk_env_safe(p, "Ren\xc3\xa9 \xe2\x82\xac"), "Ren\xc3\xa9 \xe2\x82\xac");
    SK_CHECK_STR(sk_env_safe(p, "a\r\nX-Evil: 1"), "a??X-Evil: 1");
    SK_CHECK_STR(sk_env_safe(p, "tab\there\x7f"), "tab?here?");
    SK_CHECK_STR(sk_env_safe(p, "bad\xc0\xafutf8"), "bad??utf8");
    SK_CHECK_STR(sk_env_safe(p, "\xed\xa0\x80"), "???");
    SK_CHECK_STR(sk_env_safe(p, "cut\xe2\x82"), "cut??");
    const char *dirty = "x\n";
    const char *safe = sk_env_safe(p, dirty);
    SK_CHECK(safe != dirty);
    SK_CHECK_STR(dirty, "x\n");                         /* the input is left alone */
}
