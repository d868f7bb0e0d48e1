/* SPDX-License-Identifier: Apache-2.0 */
/* sk_test_keys.h: keys made at run time and tokens signed with them, so the
 * tests craft every token themselves (no network, no fixtures to go stale). */
#ifndef SK_TEST_KEYS_H
#define SK_TEST_KEYS_H

#include <stddef.h>
#include <openssl/evp.h>

/* Keys generated once per process and kept: RSA-2048 0..2, P-256 0..1. */
EVP_PKEY *skt_rsa(int which);
EVP_PKEY *skt_ec(int which);
/* A fresh RSA key of the given size; the caller frees it. */
EVP_PKEY *skt_rsa_new(int bits);

/* base64url of data, malloc'd. */
char *skt_b64(const void *data, size_t n);
/* printf into a malloc'd string. */
char *skt_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* One JWK object (public part) for key; kid/alg NULL to leave them out;
 * extra (may be NULL) is spliced in as more members, e.g. "\"use\":\"enc\"". */
char *skt_jwk(EVP_PKEY *key, const char *kid, const char *alg, const char *extra);
/* {"keys":[a,b,...]} from n JWK strings. */
char *skt_jwks(int n, char *const *jwks);

/* header.payload (both JSON texts, base64url'd) signed with key by method
 * "RS256", "PS256", "ES256" (raw r||s), "ES256-DER" (wrongly DER), or "none"
 * (empty signature); returns a malloc'd token. */
char *skt_sign(EVP_PKEY *key, const char *method, const char *header, const char *payload);
/* HMAC-signed token with an arbitrary secret (md "SHA256", "SHA384", ...). */
char *skt_sign_hmac(const char *md, const void *secret, size_t n, const char *header,
                    const char *payload);
/* The public key as PEM text / DER bytes (malloc'd), for key-confusion attacks. */
char *skt_pubkey_pem(EVP_PKEY *key, size_t *n);
unsigned char *skt_pubkey_der(EVP_PKEY *key, size_t *n);

#endif
