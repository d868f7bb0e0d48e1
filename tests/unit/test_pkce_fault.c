/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests: a failing SHA-256 makes no PKCE challenge. sk_sha256 fails
 * only when OpenSSL does, so this file interposes OpenSSL's two SHA-256
 * entry points for the whole test binary: they pass through to libcrypto
 * (dlsym RTLD_NEXT) unless sk_fail_sha256 is set. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE             /* RTLD_NEXT */
#endif
#include <dlfcn.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include "sk_test.h"
#include "sk_oauth.h"

static int sk_fail_sha256;

int EVP_Digest(const void *data, size_t count, unsigned char *md, unsigned int *size,
               const EVP_MD *type, ENGINE *impl)
{
    static int (*real)(const void *, size_t, unsigned char *, unsigned int *,
                       const EVP_MD *, ENGINE *);
    if (sk_fail_sha256)
        return 0;
    if (!real)
        *(void **)&real = dlsym(RTLD_NEXT, "EVP_Digest");
    return real(data, count, md, size, type, impl);
}

unsigned char *SHA256(const unsigned char *d, size_t n, unsigned char *md)
{
    static unsigned char *(*real)(const unsigned char *, size_t, unsigned char *);
    if (sk_fail_sha256)
        return NULL;
    if (!real)
        *(void **)&real = dlsym(RTLD_NEXT, "SHA256");
    return real(d, n, md);
}

SK_TEST(oauth_pkce_without_sha256)
{
    const char *v = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    /* The pass-through works: the RFC 7636 value as usual. */
    SK_CHECK_STR(sk_pkce_challenge(sk_test_pool(), v), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    sk_fail_sha256 = 1;
    char *c = sk_pkce_challenge(sk_test_pool(), v);
    sk_fail_sha256 = 0;
    SK_CHECK(c == NULL);
}
