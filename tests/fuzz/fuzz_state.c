/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_state.c: libFuzzer target for the sealed login-state cookie.
 * The first input byte picks a mode, the rest is its material:
 *   0  the rest is a cookie value an attacker sends: sk_login_state_open
 *      with the module's fixed sealer. Nothing the fuzzer writes can carry a
 *      valid AES-GCM tag, so it must never open; the b64 and length paths
 *      are what it exercises.
 *   1  the rest is the PLAIN text inside a genuine seal (what a key holder
 *      could put there): sealed with the right key, then opened. An opened
 *      state always has all four strings non-empty and created set.
 *   2  round trip: the rest is split at NUL bytes into state, nonce,
 *      verifier, return_to and two numbers; seal then open must give back
 *      exactly those fields (when the sealed value fits the cookie limit),
 *      under another key or label it must not open, and no truncation of it
 *      opens.
 *   3  the rest is a cookie value sealed under ANOTHER key's text: same as 0
 *      with the second sealer, and a real seal under key 2 never opens
 *      under key 1.
 *   4  a session record bound to its store key: the rest is context NUL
 *      plain text. It opens under that context and gives the text back; it
 *      never opens under another context, another key, or unbound (an empty
 *      context is no context). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>

#include "sk_state.h"

#define SEALED_MAX 8192          /* state.c refuses longer cookie values */

static apr_pool_t *pool;
static sk_sealer *key, *other_key, *other_label;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    apr_initialize();
    apr_pool_create(&pool, NULL);
    key = sk_sealer_create(pool, "fuzz-client-secret", "mod_scalekit state cookie v1");
    other_key = sk_sealer_create(pool, "fuzz-client-secreT", "mod_scalekit state cookie v1");
    other_label = sk_sealer_create(pool, "fuzz-client-secret", "mod_scalekit state cookie v2");
    if (!key || !other_key || !other_label)
        abort();
    return 0;
}

static void check_opened(const sk_login_state *st)
{
    if (!st->state || !*st->state || !st->nonce || !*st->nonce || !st->verifier
        || !*st->verifier || !st->return_to || !*st->return_to || !st->created)
        abort();
}

static void attacker_value(apr_pool_t *p, const sk_sealer *k, const unsigned char *d, size_t n)
{
    char *v = apr_pstrmemdup(p, (const char *)d, n);    /* a cookie value ends at NUL */
    sk_login_state st;
    size_t len;
    if (sk_login_state_open(p, k, v, &st) == APR_SUCCESS)
        abort();                                        /* forged a GCM tag? */
    if (sk_unseal(p, k, v, &len) != NULL)
        abort();
    /* A failed open leaves nothing behind for a careless caller. */
    if (st.state || st.nonce || st.verifier || st.return_to || st.created || st.silent) {
        /* sk_login_state_open fills out only when it unsealed: after a
         * failed unseal everything must be zero. */
        abort();
    }
}

static void inner_text(apr_pool_t *p, const unsigned char *d, size_t n)
{
    char *sealed = sk_seal(p, key, (const char *)d, n);
    if (!sealed)
        abort();
    size_t len = 0;
    char *plain = sk_unseal(p, key, sealed, &len);
    if (strlen(sealed) <= SEALED_MAX) {
        if (!plain || len != n || memcmp(plain, d, n) || plain[n] != '\0')
            abort();
    } else if (plain) {
        abort();                                        /* over the size limit */
    }
    sk_login_state st;
    if (sk_login_state_open(p, key, sealed, &st) == APR_SUCCESS)
        check_opened(&st);
}

/* Next NUL-terminated field of [*d, end), or NULL at the end. */
static const char *field(apr_pool_t *p, const unsigned char **d, const unsigned char *end)
{
    if (*d >= end)
        return NULL;
    const unsigned char *z = memchr(*d, 0, (size_t)(end - *d));
    const unsigned char *e = z ? z : end;
    const char *s = apr_pstrmemdup(p, (const char *)*d, (size_t)(e - *d));
    *d = z ? z + 1 : end;
    return s;
}

static void round_trip(apr_pool_t *p, const unsigned char *d, size_t n)
{
    const unsigned char *end = d + n;
    sk_login_state in = { 0 }, out;
    in.state = field(p, &d, end);
    in.nonce = field(p, &d, end);
    in.verifier = field(p, &d, end);
    in.return_to = field(p, &d, end);       /* NULL: sealed as "/" */
    int64_t created = 1700000000;
    int silent = 0;
    if (end - d >= 8) {
        uint64_t u;
        memcpy(&u, d, 8);
        /* |created| < 10^15: cJSON prints a number with 15 digits when that reads
         * back within an epsilon, so 16-digit integers may come back off by one;
         * a real created time has 10 digits. */
        created = (int64_t)(u % 1000000000000000ULL) * ((u >> 63) ? -1 : 1);
        d += 8;
    }
    if (d < end)
        silent = *d;
    in.created = created;
    in.silent = silent;
    if (!in.state || !in.nonce || !in.verifier)
        return;                              /* the module always has all three */

    char *sealed = sk_login_state_seal(p, key, &in);
    if (!sealed)
        abort();
    size_t slen = strlen(sealed);
    int opened = sk_login_state_open(p, key, sealed, &out) == APR_SUCCESS;
    const char *want_r = in.return_to ? in.return_to : "/";
    /* A created time outside [1, 10^12) is refused (state.c keeps the cast defined). */
    int complete = *in.state && *in.nonce && *in.verifier && *want_r && in.created >= 1
                   && in.created < 1000000000000LL;
    if (slen > SEALED_MAX) {
        if (opened)
            abort();
    } else if (opened != complete) {
        abort();
    } else if (opened) {
        if (strcmp(out.state, in.state) || strcmp(out.nonce, in.nonce)
            || strcmp(out.verifier, in.verifier) || strcmp(out.return_to, want_r)
            || out.created != in.created || out.silent != (in.silent != 0))
            abort();
    }
    /* Never under another key or another label. */
    if (sk_login_state_open(p, other_key, sealed, &out) == APR_SUCCESS
        || sk_login_state_open(p, other_label, sealed, &out) == APR_SUCCESS)
        abort();
    /* No truncation opens (a cut-off cookie), nor one changed character. */
    if (slen) {
        size_t cut = (size_t)(silent * 131u + slen / 3) % slen;
        char *t = apr_pstrndup(p, sealed, cut);
        if (sk_login_state_open(p, key, t, &out) == APR_SUCCESS)
            abort();
        t = apr_pstrdup(p, sealed);
        t[cut] = t[cut] == 'A' ? 'B' : 'A';
        if (sk_login_state_open(p, key, t, &out) == APR_SUCCESS)
            abort();
    }
}

static void bound_trip(apr_pool_t *p, const unsigned char *d, size_t n)
{
    const unsigned char *end = d + n;
    const char *bound = field(p, &d, end);
    if (!bound)
        return;
    size_t n_plain = (size_t)(end - d), len = 0;
    char *sealed = sk_seal_bound(p, key, bound, (const char *)d, n_plain);
    if (!sealed)
        abort();
    size_t max = strlen(sealed);
    char *plain = sk_unseal_bound(p, key, bound, sealed, max, &len);
    if (!plain || len != n_plain || memcmp(plain, d, n_plain) || plain[len] != '\0')
        abort();
    if (max && sk_unseal_bound(p, key, bound, sealed, max - 1, NULL))
        abort();                                        /* over its size limit */
    if (sk_unseal_bound(p, key, apr_pstrcat(p, bound, "x", NULL), sealed, max, NULL)
        || sk_unseal_bound(p, other_key, bound, sealed, max, NULL)
        || (sk_unseal_bound(p, key, NULL, sealed, max, NULL) != NULL) != (*bound == '\0'))
        abort();
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    if (size == 0)
        return 0;
    apr_pool_t *p;
    apr_pool_create(&p, pool);
    const unsigned char *d = data + 1;
    size_t n = size - 1;
    switch (data[0] % 5) {
    case 0:
        attacker_value(p, key, d, n);
        break;
    case 1:
        inner_text(p, d, n);
        break;
    case 2:
        round_trip(p, d, n);
        break;
    case 3: {
        attacker_value(p, other_key, d, n);
        char *sealed = sk_seal(p, other_key, (const char *)d, n);
        sk_login_state st;
        if (!sealed || sk_unseal(p, key, sealed, NULL) || sk_login_state_open(p, key, sealed, &st) == APR_SUCCESS)
            abort();
        break;
    }
    case 4:
        bound_trip(p, d, n);
        break;
    }
    apr_pool_destroy(p);
    return 0;
}
