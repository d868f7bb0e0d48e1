/* SPDX-License-Identifier: Apache-2.0 */
/* b64.c: strict base64url encode/decode (see sk_b64.h). */
#include <stdint.h>
#include <stdlib.h>

#include "sk_b64.h"

static const char enc_tab[64] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* 0xff marks bytes outside the alphabet. Built by hand so the table is
 * const and needs no initialisation race. */
#define X 0xff
static const uint8_t dec_tab[256] = {
    X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
    X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
    X, X, X, X, X, X, X, X, X, X, X, X, X, 62, X, X,          /* '-' */
    52, 53, 54, 55, 56, 57, 58, 59, 60, 61, X, X, X, X, X, X, /* 0-9 */
    X, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,      /* A-O */
    15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, X, X, X, X, 63, /* P-Z, '_' */
    X, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
    41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, X, X, X, X, X,
    X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
    X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
    X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
    X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
    X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
    X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
    X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
    X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
};
#undef X

size_t sk_b64url_encode(char *out, const unsigned char *in, size_t len)
{
    char *p = out;
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *p++ = enc_tab[v >> 18];
        *p++ = enc_tab[(v >> 12) & 63];
        *p++ = enc_tab[(v >> 6) & 63];
        *p++ = enc_tab[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        *p++ = enc_tab[v >> 18];
        *p++ = enc_tab[(v >> 12) & 63];
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        *p++ = enc_tab[v >> 18];
        *p++ = enc_tab[(v >> 12) & 63];
        *p++ = enc_tab[(v >> 6) & 63];
    }
    *p = '\0';
    return (size_t)(p - out);
}

sk_b64_err sk_b64url_decode(unsigned char *out, size_t cap, const char *in, size_t len,
                            size_t *outlen)
{
    const unsigned char *s = (const unsigned char *)in;
    size_t rem = len % 4, full = len - rem, o = 0;

    if (rem == 1)
        return SK_B64_EBAD;
    if (SK_B64URL_DECLEN(len) > cap)
        return SK_B64_ESPACE;
    for (size_t i = 0; i < full; i += 4) {
        uint32_t a = dec_tab[s[i]], b = dec_tab[s[i + 1]];
        uint32_t c = dec_tab[s[i + 2]], d = dec_tab[s[i + 3]];
        if ((a | b | c | d) & 0x80)  /* any 0xff marks a bad byte */
            return SK_B64_EBAD;
        uint32_t v = a << 18 | b << 12 | c << 6 | d;
        out[o++] = (unsigned char)(v >> 16);
        out[o++] = (unsigned char)(v >> 8);
        out[o++] = (unsigned char)v;
    }
    if (rem) {
        uint32_t a = dec_tab[s[full]], b = dec_tab[s[full + 1]];
        uint32_t c = rem == 3 ? dec_tab[s[full + 2]] : 0;
        if ((a | b | c) & 0x80)
            return SK_B64_EBAD;
        uint32_t v = a << 18 | b << 12 | c << 6;
        /* The bits past the last whole byte must be zero: one encoding per input. */
        if (rem == 2 ? (v & 0xffff) : (v & 0xff))
            return SK_B64_EBAD;
        out[o++] = (unsigned char)(v >> 16);
        if (rem == 3)
            out[o++] = (unsigned char)(v >> 8);
    }
    if (outlen)
        *outlen = o;
    return SK_B64_OK;
}

unsigned char *sk_b64url_decode_alloc(const char *in, size_t len, size_t *outlen)
{
    size_t cap = SK_B64URL_DECLEN(len), n;
    unsigned char *buf = malloc(cap + 1);
    if (!buf)
        return NULL;
    if (sk_b64url_decode(buf, cap, in, len, &n) != SK_B64_OK) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    if (outlen)
        *outlen = n;
    return buf;
}
