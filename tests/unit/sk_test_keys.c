/* SPDX-License-Identifier: Apache-2.0 */
/* sk_test_keys.c: run-time keys and token signing for the unit tests. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE              /* vasprintf */
#endif
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "sk_b64.h"
#include "sk_test_keys.h"

static EVP_PKEY *rsa_keys[3], *ec_keys[2];

EVP_PKEY *skt_rsa_new(int bits)
{
    return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
}

EVP_PKEY *skt_rsa(int which)
{
    if (!rsa_keys[which])
        rsa_keys[which] = skt_rsa_new(2048);
    return rsa_keys[which];
}

EVP_PKEY *skt_ec(int which)
{
    if (!ec_keys[which])
        ec_keys[which] = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    return ec_keys[which];
}

/* Free the cached keys at exit so valgrind sees no leak. */
__attribute__((destructor)) static void free_keys(void)
{
    for (int i = 0; i < 3; i++)
        EVP_PKEY_free(rsa_keys[i]);
    for (int i = 0; i < 2; i++)
        EVP_PKEY_free(ec_keys[i]);
}

char *skt_b64(const void *data, size_t n)
{
    char *s = malloc(SK_B64URL_ENCLEN(n) + 1);
    sk_b64url_encode(s, data, n);
    return s;
}

char *skt_fmt(const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    return s;
}

static char *bn_b64(EVP_PKEY *key, const char *param, int pad)
{
    BIGNUM *bn = NULL;
    unsigned char buf[1024];
    int n;
    EVP_PKEY_get_bn_param(key, param, &bn);
    n = pad ? BN_bn2binpad(bn, buf, pad) : BN_bn2bin(bn, buf);
    BN_free(bn);
    return skt_b64(buf, (size_t)n);
}

char *skt_jwk(EVP_PKEY *key, const char *kid, const char *alg, const char *extra)
{
    char *a, *b, *out;
    char *kidm = kid ? skt_fmt("\"kid\":\"%s\",", kid) : strdup("");
    char *algm = alg ? skt_fmt("\"alg\":\"%s\",", alg) : strdup("");
    char *extram = extra ? skt_fmt("%s,", extra) : strdup("");

    if (EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA) {
        a = bn_b64(key, OSSL_PKEY_PARAM_RSA_N, 0);
        b = bn_b64(key, OSSL_PKEY_PARAM_RSA_E, 0);
        out = skt_fmt("{%s%s%s\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"%s\"}", kidm, algm, extram, a, b);
    } else {
        a = bn_b64(key, OSSL_PKEY_PARAM_EC_PUB_X, 32);
        b = bn_b64(key, OSSL_PKEY_PARAM_EC_PUB_Y, 32);
        out = skt_fmt("{%s%s%s\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"}",
                      kidm, algm, extram, a, b);
    }
    free(a);
    free(b);
    free(kidm);
    free(algm);
    free(extram);
    return out;
}

char *skt_jwks(int n, char *const *jwks)
{
    size_t len = 16;
    for (int i = 0; i < n; i++)
        len += strlen(jwks[i]) + 1;
    char *out = malloc(len);
    strcpy(out, "{\"keys\":[");
    for (int i = 0; i < n; i++) {
        if (i)
            strcat(out, ",");
        strcat(out, jwks[i]);
    }
    strcat(out, "]}");
    return out;
}

static char *signing_input(const char *header, const char *payload)
{
    char *h = skt_b64(header, strlen(header)), *p = skt_b64(payload, strlen(payload));
    char *s = skt_fmt("%s.%s", h, p);
    free(h);
    free(p);
    return s;
}

static char *finish(char *input, const unsigned char *sig, size_t n)
{
    char *s = skt_b64(sig, n), *t = skt_fmt("%s.%s", input, s);
    free(s);
    free(input);
    return t;
}

/* DER ECDSA signature to JOSE raw r||s. */
static size_t der_to_raw(unsigned char *raw, const unsigned char *der, size_t n)
{
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &der, (long)n);
    const BIGNUM *r, *s;
    ECDSA_SIG_get0(es, &r, &s);
    BN_bn2binpad(r, raw, 32);
    BN_bn2binpad(s, raw + 32, 32);
    ECDSA_SIG_free(es);
    return 64;
}

char *skt_sign(EVP_PKEY *key, const char *method, const char *header, const char *payload)
{
    char *input = signing_input(header, payload);
    unsigned char sig[1024], raw[64];
    size_t n = sizeof sig;
    EVP_MD_CTX *ctx;
    EVP_PKEY_CTX *pctx;

    if (!strcmp(method, "none"))
        return finish(input, sig, 0);
    ctx = EVP_MD_CTX_new();
    EVP_DigestSignInit(ctx, &pctx, EVP_sha256(), NULL, key);
    if (!strcmp(method, "PS256")) {
        EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
        EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32);
    }
    EVP_DigestSign(ctx, sig, &n, (unsigned char *)input, strlen(input));
    EVP_MD_CTX_free(ctx);
    if (!strcmp(method, "ES256"))
        return finish(input, raw, der_to_raw(raw, sig, n));
    return finish(input, sig, n);
}

char *skt_sign_hmac(const char *md, const void *secret, size_t n, const char *header,
                    const char *payload)
{
    char *input = signing_input(header, payload);
    unsigned char mac[64];
    size_t maclen = 0;
    EVP_Q_mac(NULL, "HMAC", NULL, md, NULL, secret, n, (unsigned char *)input,
              strlen(input), mac, sizeof mac, &maclen);
    return finish(input, mac, maclen);
}

char *skt_pubkey_pem(EVP_PKEY *key, size_t *n)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *data, *out;
    long len;
    PEM_write_bio_PUBKEY(b, key);
    len = BIO_get_mem_data(b, &data);
    out = malloc((size_t)len + 1);
    memcpy(out, data, (size_t)len);
    out[len] = '\0';
    *n = (size_t)len;
    BIO_free(b);
    return out;
}

unsigned char *skt_pubkey_der(EVP_PKEY *key, size_t *n)
{
    unsigned char *der = NULL;
    int len = i2d_PUBKEY(key, &der);
    unsigned char *out = malloc((size_t)len);
    memcpy(out, der, (size_t)len);
    OPENSSL_free(der);
    *n = (size_t)len;
    return out;
}
