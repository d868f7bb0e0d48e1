/* SPDX-License-Identifier: Apache-2.0 */
/* sk_b64.h: strict base64url (RFC 4648 section 5, no padding), as JOSE uses it.
 * Decoding refuses anything a conforming encoder would not have written. */
#ifndef SK_B64_H
#define SK_B64_H

#include <stddef.h>

/* Characters needed to encode n bytes (no padding, no NUL). */
#define SK_B64URL_ENCLEN(n) (((n) / 3) * 4 + ((n) % 3 ? (n) % 3 + 1 : 0))
/* Bytes a well-formed input of n characters decodes to (an upper bound for
 * any input of that length). */
#define SK_B64URL_DECLEN(n) (((n) / 4) * 3 + ((n) % 4 > 1 ? (n) % 4 - 1 : 0))

/* Encode len bytes; out must hold SK_B64URL_ENCLEN(len) + 1 characters.
 * Writes a NUL terminator and returns the characters written before it. */
size_t sk_b64url_encode(char *out, const unsigned char *in, size_t len);

/* Decode len characters of strict base64url into out (capacity cap).
 * Refused (SK_B64_EBAD): padding '=', '+', '/', whitespace, any byte outside
 * A-Z a-z 0-9 - _, len % 4 == 1, non-zero unused trailing bits.
 * SK_B64_ESPACE: cap too small (nothing useful in out). *outlen may be NULL. */
typedef enum { SK_B64_OK = 0, SK_B64_EBAD, SK_B64_ESPACE } sk_b64_err;
sk_b64_err sk_b64url_decode(unsigned char *out, size_t cap, const char *in, size_t len,
                            size_t *outlen);

/* Decode into a fresh malloc'd buffer, NUL-terminated (not counted in
 * *outlen) so text can be handed to string functions. NULL when malformed. */
unsigned char *sk_b64url_decode_alloc(const char *in, size_t len, size_t *outlen);

#endif
