/* SPDX-License-Identifier: Apache-2.0 */
/* sk_text.h: text from tokens made safe for where it goes (the environment,
 * request headers, log lines). Links without httpd. */
#ifndef SK_TEXT_H
#define SK_TEXT_H

#include <apr_pools.h>

/* Length of the valid UTF-8 sequence at s (1 to 4), or 0 when it is not one
 * (overlong forms, surrogates and code points past U+10FFFF included). */
static inline int sk_utf8_len(const unsigned char *s)
{
    if (s[0] < 0x80)
        return 1;
    int n = s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 ? 2 : 0;
    if (!n || s[0] > 0xf4)
        return 0;
    for (int i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    if ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] >= 0xa0)
        || (s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] >= 0x90))
        return 0;
    return n;
}

/* 1 when v is printable ASCII only: safe anywhere as it is. */
int sk_is_plain(const char *v);

/* A claim value made safe for the environment, headers and logs: control
 * bytes and bytes that are not valid UTF-8 become '?'. Most values are clean
 * and are returned as they are (no copy); others are copied into p. */
const char *sk_env_safe(apr_pool_t *p, const char *v);

#endif
