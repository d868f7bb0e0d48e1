/* SPDX-License-Identifier: Apache-2.0 */
/* text.c: claim values made safe for the environment, headers and logs (see
 * sk_text.h). */
#include <apr_strings.h>
#include "sk_text.h"

int sk_is_plain(const char *v)
{
    const unsigned char *c = (const unsigned char *)v;
    while (*c && *c >= 0x20 && *c < 0x7f)
        c++;
    return !*c;
}

/* Most values are clean ASCII: one pass finds that, and nothing is copied. */
const char *sk_env_safe(apr_pool_t *p, const char *v)
{
    if (sk_is_plain(v))
        return v;
    char *copy = apr_pstrdup(p, v);
    unsigned char *d = (unsigned char *)copy;
    while (*d) {
        int n = *d < 0x20 || *d == 0x7f ? 0 : sk_utf8_len(d);
        if (!n) {
            *d++ = '?';
            continue;
        }
        d += n;
    }
    return copy;
}
