/* SPDX-License-Identifier: Apache-2.0 */
/* test_b64.c: strict base64url. */
#include <stdlib.h>

#include "sk_b64.h"
#include "sk_test.h"

static int dec(const char *in, unsigned char *out, size_t cap, size_t *n)
{
    return sk_b64url_decode(out, cap, in, strlen(in), n);
}

SK_TEST(b64_rfc4648_vectors)
{
    static const char *plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *enc[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        char out[16];
        unsigned char back[16];
        size_t n = 99;
        size_t w = sk_b64url_encode(out, (const unsigned char *)plain[i], strlen(plain[i]));
        SK_CHECK_STR(out, enc[i]);
        SK_CHECK_INT(w, strlen(enc[i]));
        SK_CHECK_INT(SK_B64URL_ENCLEN(strlen(plain[i])), strlen(enc[i]));
        SK_CHECK_INT(dec(enc[i], back, sizeof back, &n), SK_B64_OK);
        SK_CHECK_INT(n, strlen(plain[i]));
        SK_CHECK(memcmp(back, plain[i], n) == 0);
    }
}

SK_TEST(b64_url_alphabet)
{
    const unsigned char in[] = {0xfb, 0xff, 0xbf};
    char out[8];
    unsigned char back[4];
    size_t n;
    sk_b64url_encode(out, in, 3);
    SK_CHECK_STR(out, "-_-_");
    SK_CHECK_INT(dec("-_-_", back, sizeof back, &n), SK_B64_OK);
    SK_CHECK(n == 3 && memcmp(back, in, 3) == 0);
}

SK_TEST(b64_round_trip_all_lengths)
{
    unsigned char in[300], back[300];
    char enc[SK_B64URL_ENCLEN(300) + 1];
    for (int i = 0; i < 300; i++)
        in[i] = (unsigned char)(i * 7 + 3);
    for (size_t len = 0; len <= 300; len++) {
        size_t n = 0, w = sk_b64url_encode(enc, in, len);
        SK_CHECK_INT(w, SK_B64URL_ENCLEN(len));
        SK_CHECK_INT(SK_B64URL_DECLEN(w), len);
        SK_CHECK_INT(sk_b64url_decode(back, len, enc, w, &n), SK_B64_OK);
        SK_CHECK(n == len && memcmp(in, back, len) == 0);
    }
}

SK_TEST(b64_every_byte_value)
{
    /* Exactly the 64 alphabet bytes decode; every other byte is refused. */
    const char *alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    int good = 0;
    for (int c = 0; c < 256; c++) {
        char in[4] = {(char)c, 'A', 'A', 'A'};
        unsigned char out[3];
        int rc = sk_b64url_decode(out, 3, in, 4, NULL);
        int want = c != 0 && strchr(alpha, c) != NULL;
        SK_CHECK_INT(rc == SK_B64_OK, want);
        good += rc == SK_B64_OK;
        if (want)
            SK_CHECK_INT(out[0] >> 2, strchr(alpha, c) - alpha);
    }
    SK_CHECK_INT(good, 64);
}

SK_TEST(b64_refuses_non_strict)
{
    static const char *bad[] = {
        "Zg==", "Zg=", "Zm9=", "Zm9v=",     /* padding */
        "Zm+v", "Zm/v", "+/+/",             /* standard alphabet */
        "Zm9v Yg", " Zm9v", "Zm9v\n", "Zm9v\t", "Zm9v\r\n", /* white space */
        "Zm9v%", "Zm9v.", "Zm9v\x80", "Zm9v\xff", /* outside the alphabet */
        "Z", "Zm9vY", "Zm9vYmFyZ",         /* len % 4 == 1 */
        "Zh", "Zm9", "Zm9vYh", "Zm9vYmF",  /* non-zero trailing bits: Zh vs Zg ... */
        "AB", "AAB",                       /* 'B' leaves a set bit after the last byte */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        unsigned char out[16];
        int rc = dec(bad[i], out, sizeof out, NULL);
        if (rc != SK_B64_EBAD)
            fprintf(stderr, "  accepted \"%s\"\n", bad[i]);
        SK_CHECK_INT(rc, SK_B64_EBAD);
    }
    /* An embedded NUL is just another bad byte. */
    unsigned char out[4];
    SK_CHECK_INT(sk_b64url_decode(out, 4, "Zm\0v", 4, NULL), SK_B64_EBAD);
}

SK_TEST(b64_capacity)
{
    unsigned char out[8];
    size_t n = 0;
    SK_CHECK_INT(dec("Zm9vYmFy", out, 5, &n), SK_B64_ESPACE);
    SK_CHECK_INT(dec("Zm9vYmFy", out, 6, &n), SK_B64_OK);
    SK_CHECK_INT(n, 6);
    SK_CHECK_INT(dec("", out, 0, &n), SK_B64_OK);
    SK_CHECK_INT(n, 0);
}

SK_TEST(b64_decode_alloc)
{
    size_t n = 0;
    unsigned char *p = sk_b64url_decode_alloc("Zm9vYmE", 7, &n);
    SK_REQUIRE(p != NULL);
    SK_CHECK_INT(n, 5);
    SK_CHECK_STR((char *)p, "fooba");
    free(p);
    SK_CHECK(sk_b64url_decode_alloc("Zm9vYmE=", 8, &n) == NULL);
    p = sk_b64url_decode_alloc("", 0, &n);
    SK_REQUIRE(p != NULL);
    SK_CHECK_INT(n, 0);
    SK_CHECK_INT(p[0], 0);
    free(p);
}
