/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_jwks.c: libFuzzer target. The input is a JWKS document for
 * sk_keyset_parse; a set that parses is looked up by a few kids and freed. */
#include <stdlib.h>
#include <string.h>

#include "sk_jwt.h"
#include "sk_keys.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    static const char *const kids[] = {"rsa1", "ec1", "ps1", "snk_8e3f1a2b", "", NULL};
    char err[128];
    char *doc = malloc(size ? size : 1);         /* exactly size bytes, no NUL */
    if (!doc)
        return 0;
    memcpy(doc, data, size);
    sk_keyset *ks = sk_keyset_parse(doc, size, err, sizeof err);
    if (ks) {
        if (sk_keyset_size(ks) == 0)
            abort();                             /* an empty set is refused */
        for (size_t i = 0; i < sizeof kids / sizeof *kids; i++) {
            unsigned alg = 0;
            EVP_PKEY *k = sk_keyset_find(ks, kids[i], &alg);
            if (k && alg & ~(unsigned)(SK_ALG_RS256 | SK_ALG_PS256 | SK_ALG_ES256))
                abort();
            if (k && EVP_PKEY_get_base_id(k) == EVP_PKEY_RSA && EVP_PKEY_get_bits(k) < 2048)
                abort();                         /* small RSA keys never get in */
        }
        sk_keyset_free(ks);
    } else if (!memchr(err, '\0', sizeof err) || !err[0]) {
        abort();                                 /* a failure always says why */
    }
    free(doc);
    return 0;
}
