/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_jwt.c: libFuzzer target. The input is a token: it goes through
 * sk_validate with three fixed in-memory key sets (kids, no kid, EC only)
 * and policies, and through sk_jwt_peek_payload, whose unverified payload
 * is then run through the claim checks so those are fuzzed too (a fuzzer
 * cannot forge signatures). Keys are RFC 7515 A.2 (RSA) and A.3 (P-256);
 * tests/fuzz/make_seeds.py signs the seed tokens with them. */
#include <stdlib.h>
#include <string.h>

#include "sk_jwt.h"
#include "sk_keys.h"

#define NOW 1300819000          /* before the RFC examples' exp */

#define A2_N "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJ" \
    "PMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kp" \
    "aSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_" \
    "I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ"
#define A3_XY "\"crv\":\"P-256\",\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\"," \
    "\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\""

static const char multi_jwks[] =
    "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"rsa1\",\"use\":\"sig\",\"alg\":\"RS256\",\"n\":\"" A2_N
    "\",\"e\":\"AQAB\"},{\"kty\":\"RSA\",\"kid\":\"ps1\",\"alg\":\"PS256\",\"n\":\"" A2_N
    "\",\"e\":\"AQAB\"},{\"kty\":\"EC\",\"kid\":\"ec1\",\"alg\":\"ES256\"," A3_XY "}]}";
static const char rsa_jwks[] = "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"" A2_N "\",\"e\":\"AQAB\"}]}";
static const char ec_jwks[] = "{\"keys\":[{\"kty\":\"EC\"," A3_XY "}]}";

static const char *const auds[] = {"fuzz-aud", "other-aud"};
static sk_keystore *stores[3];
static sk_validator *validators[3];

static sk_keystore *store_of(const char *doc)
{
    sk_keystore *s = sk_keystore_create(NULL, NULL, 1000000000, 60);
    sk_keyset *ks = sk_keyset_parse(doc, strlen(doc), NULL, 0);
    if (!s || !ks)
        abort();
    sk_keystore_put(s, ks, NOW);
    return s;
}

static void setup(void)
{
    static const sk_policy p_exp = {"joe", auds, 2, SK_ALG_RS256 | SK_ALG_PS256 | SK_ALG_ES256,
                                    30, 1, 0};
    static const sk_policy p_noexp = {"joe", auds, 2, SK_ALG_RS256 | SK_ALG_ES256, 0, 0, 4096};
    stores[0] = store_of(multi_jwks);
    stores[1] = store_of(rsa_jwks);
    stores[2] = store_of(ec_jwks);
    /* Small caches, so eviction runs too. */
    validators[0] = sk_validator_create(&p_exp, stores[0], 8);
    validators[1] = sk_validator_create(&p_exp, stores[1], 2);
    validators[2] = sk_validator_create(&p_noexp, stores[2], 1);
}

static void check_claims(const char *tok, size_t len)
{
    static const sk_policy p = {"joe", auds, 2, 0, 30, 1, 0, 1, "client-1", 0};   /* kind checks too */
    char *text = NULL;
    size_t text_len = 0;
    cJSON *o = sk_jwt_peek_payload(tok, len, &text, &text_len);
    if (!o)
        return;
    sk_jwt_check_claims(o, &p, NOW);
    sk_claims *c = sk_claims_new(o, text, text_len);    /* the path of sk_validate_vouched */
    free(text);
    if (c && c->roles && strlen(c->roles) > 1000000)
        abort();                    /* touch the joined strings */
    cJSON *tree = sk_claims_parse(c);
    if (c && c->sub && !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(tree, "sub")))
        abort();                    /* the kept text reads back as the payload */
    cJSON_Delete(tree);
    sk_claims_unref(c);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    char tok_hash[13];
    if (!validators[0])
        setup();
    /* A private copy of exactly size bytes: no terminator to lean on. */
    char *tok = malloc(size ? size : 1);
    if (!tok)
        return 0;
    memcpy(tok, data, size);
    for (int i = 0; i < 3; i++) {
        sk_claims *c = NULL;
        sk_jwt_err rc = sk_validate(validators[i], tok, size, NOW, &c);
        if ((c != NULL) != (rc == SK_JWT_OK || rc == SK_JWT_E_EXPIRED))
            abort();
        if (c && rc == SK_JWT_OK && (!c->iss || strcmp(c->iss, "joe")))
            abort();                /* accepted means the issuer matched */
        if (c) {
            cJSON *tree = sk_claims_parse(c);
            const cJSON *iss = cJSON_GetObjectItemCaseSensitive(tree, "iss");
            if (c->iss && (!cJSON_IsString(iss) || strcmp(iss->valuestring, c->iss)))
                abort();            /* the kept text is the payload validated */
            cJSON_Delete(tree);
        }
        sk_claims_unref(c);
        if (!sk_jwt_err_str(rc))
            abort();
    }
    check_claims(tok, size);
    sk_token_hash(tok, size, tok_hash);
    free(tok);
    return 0;
}
