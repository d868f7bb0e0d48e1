/* SPDX-License-Identifier: Apache-2.0 */
/* test_jwt.c: token parsing, signatures and claims: a known answer from
 * RFC 7515, a table of hostile tokens each refused for its own reason, and
 * the claims a good token yields. */
#include <stdlib.h>

#include "sk_b64.h"
#include "sk_jwt.h"
#include "sk_keys.h"
#include "sk_test.h"
#include "sk_test_keys.h"

#define NOW 1700000000
#define ISS "https://acme.scalekit.dev"
#define GOOD_PAY "{\"iss\":\"" ISS "\",\"aud\":[\"skc_client1\"],\"sub\":\"usr_1\"," \
                 "\"exp\":1700000300,\"iat\":1699999990,\"nbf\":1699999990}"
#define PAY(extra) "{\"iss\":\"" ISS "\",\"aud\":[\"skc_client1\"],\"sub\":\"usr_1\"," extra "}"
#define EXP_OK "\"exp\":1700000300"
#define HDR_RS "{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"rsa1\"}"

static const char *const audiences[] = {"skc_client1", "api://orders"};

static sk_policy policy(unsigned algs)
{
    sk_policy p = {ISS, audiences, 2, algs, 30, 1, 0, 0, NULL, 0};
    return p;
}

/* rsa1: RSA key 0 (alg RS256); rsa2: RSA key 1 (no alg); ec1: P-256 key 0;
 * ps1: RSA key 2 (alg PS256). No fetcher: an unknown kid stays unknown. */
static sk_keystore *test_store(void)
{
    char *jwk[4] = {
        skt_jwk(skt_rsa(0), "rsa1", "RS256", "\"use\":\"sig\""),
        skt_jwk(skt_rsa(1), "rsa2", NULL, NULL),
        skt_jwk(skt_ec(0), "ec1", "ES256", NULL),
        skt_jwk(skt_rsa(2), "ps1", "PS256", NULL),
    };
    char *doc = skt_jwks(4, jwk);
    sk_keystore *s = sk_keystore_create(NULL, NULL, 1000000000, 60);
    sk_keystore_put(s, sk_keyset_parse(doc, strlen(doc), NULL, 0), NOW);
    for (int i = 0; i < 4; i++)
        free(jwk[i]);
    free(doc);
    return s;
}

/* ---- RFC 7515 appendix A.2 ---- */

static const char a2_jws[] =
    "eyJhbGciOiJSUzI1NiJ9"
    ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
    ".cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2"
    "Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBM"
    "Hlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w"
    "9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw";
static const char a2_jwks[] =
    "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddx"
    "HmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9w"
    "Gzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlx"
    "vb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRW"
    "yuXpoQ\",\"e\":\"AQAB\"}]}";

/* A.2's payload has no aud, so the known answer is checked at the signature
 * layer (sk_jwt_verify); the claim layer then refuses it for aud alone. */
SK_TEST(jwt_rfc7515_a2_known_answer)
{
    sk_keystore *s = sk_keystore_create(NULL, NULL, 1000000000, 60);
    const char *aud[] = {"joe-client"};
    sk_policy p = {"joe", aud, 1, SK_ALG_RS256, 0, 1, 0, 0, NULL, 0};
    int64_t t = 1300819000;                        /* before its exp */
    cJSON *payload = NULL;
    sk_keystore_put(s, sk_keyset_parse(a2_jwks, strlen(a2_jwks), NULL, 0), t);

    SK_CHECK_INT(sk_jwt_verify(a2_jws, strlen(a2_jws), &p, s, t, &payload, NULL, NULL), SK_JWT_OK);
    SK_REQUIRE(payload != NULL);
    SK_CHECK_STR(cJSON_GetObjectItem(payload, "iss")->valuestring, "joe");
    SK_CHECK_INT(cJSON_GetObjectItem(payload, "exp")->valuedouble, 1300819380);
    SK_CHECK(cJSON_IsTrue(cJSON_GetObjectItem(payload, "http://example.com/is_root")));
    SK_CHECK_INT(sk_jwt_check_claims(payload, &p, t), SK_JWT_E_AUD);
    cJSON_AddStringToObject(payload, "aud", "joe-client");   /* the rest is good */
    SK_CHECK_INT(sk_jwt_check_claims(payload, &p, t), SK_JWT_OK);
    SK_CHECK_INT(sk_jwt_check_claims(payload, &p, 1300819380), SK_JWT_E_EXPIRED);
    cJSON_Delete(payload);

    /* One byte changed in each part. */
    size_t len = strlen(a2_jws);
    const char *d1 = strchr(a2_jws, '.'), *d2 = strchr(d1 + 1, '.');
    size_t at[3] = {5, (size_t)(d1 - a2_jws) + 10, (size_t)(d2 - a2_jws) + 20};
    sk_jwt_err want[3] = {SK_JWT_E__COUNT, SK_JWT_E_SIGNATURE, SK_JWT_E_SIGNATURE};
    for (int i = 0; i < 3; i++) {
        char *bad = strdup(a2_jws);
        bad[at[i]] = bad[at[i]] == 'A' ? 'B' : 'A';
        sk_jwt_err rc = sk_jwt_verify(bad, len, &p, s, t, &payload, NULL, NULL);
        SK_CHECK(rc != SK_JWT_OK);
        SK_CHECK(payload == NULL);
        if (want[i] != SK_JWT_E__COUNT)
            SK_CHECK_INT(rc, want[i]);
        free(bad);
    }
    /* The same signature checked as PS256 is refused (alg is not negotiable). */
    p.algs = SK_ALG_PS256;
    SK_CHECK_INT(sk_jwt_verify(a2_jws, len, &p, s, t, &payload, NULL, NULL), SK_JWT_E_ALG);
    sk_keystore_destroy(s);
}

/* RFC 7515 A.3: ES256 with the JOSE raw r||s signature. */
static const char a3_jws[] =
    "eyJhbGciOiJFUzI1NiJ9"
    ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
    ".DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";
static const char a3_jwks[] =
    "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\","
    "\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
    "\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"}]}";

SK_TEST(jwt_rfc7515_a3_known_answer)
{
    sk_keystore *s = sk_keystore_create(NULL, NULL, 1000000000, 60);
    const char *aud[] = {"x"};
    sk_policy p = {"joe", aud, 1, SK_ALG_ES256, 0, 1, 0, 0, NULL, 0};
    int64_t t = 1300819000;
    cJSON *payload = NULL;
    sk_keystore_put(s, sk_keyset_parse(a3_jwks, strlen(a3_jwks), NULL, 0), t);
    SK_CHECK_INT(sk_jwt_verify(a3_jws, strlen(a3_jws), &p, s, t, &payload, NULL, NULL), SK_JWT_OK);
    SK_REQUIRE(payload != NULL);
    SK_CHECK_STR(cJSON_GetObjectItem(payload, "iss")->valuestring, "joe");
    cJSON_Delete(payload);
    /* A changed payload byte, and an all-zero r||s, are bad signatures. */
    char *bad = strdup(a3_jws);
    char *pl = strchr(bad, '.') + 8;
    *pl = *pl == 'A' ? 'B' : 'A';
    SK_CHECK_INT(sk_jwt_verify(bad, strlen(bad), &p, s, t, &payload, NULL, NULL), SK_JWT_E_SIGNATURE);
    free(bad);
    char zero[SK_B64URL_ENCLEN(64) + 1];
    unsigned char z[64] = {0};
    sk_b64url_encode(zero, z, 64);
    char *hp = strdup(a3_jws);
    *strrchr(hp, '.') = '\0';
    char *zt = skt_fmt("%s.%s", hp, zero);
    SK_CHECK_INT(sk_jwt_verify(zt, strlen(zt), &p, s, t, &payload, NULL, NULL), SK_JWT_E_SIGNATURE);
    free(zt);
    free(hp);
    sk_keystore_destroy(s);
}

/* ---- hostile tokens ---- */

enum { S_RS0, S_RS1, S_PS2, S_PS0, S_EC0, S_EC0_DER, S_NONE, S_HS_PEM, S_HS_DER, S_HS384,
       S_HS512, S_RAW };
enum { M_NONE, M_APPEND, M_TRUNC, M_SET_CHAR, M_EMPTY_SIG, M_SIG_OF, M_PAD_HDR };

typedef struct {
    const char *name;
    int signer;
    const char *hdr, *pay;
    int mut;
    const char *arg;       /* M_APPEND text; M_SET_CHAR "<part><char>"; M_SIG_OF payload */
    unsigned algs;         /* 0: RS256 only */
    sk_jwt_err want;
} tcase;

#define ALL (SK_ALG_RS256 | SK_ALG_PS256 | SK_ALG_ES256)

static const tcase cases[] = {
    /* controls */
    {"valid RS256", S_RS0, NULL, NULL, M_NONE, NULL, 0, SK_JWT_OK},
    {"valid PS256", S_PS2, "{\"alg\":\"PS256\",\"kid\":\"ps1\"}", NULL, M_NONE, NULL, ALL, SK_JWT_OK},
    {"valid ES256", S_EC0, "{\"alg\":\"ES256\",\"kid\":\"ec1\"}", NULL, M_NONE, NULL, ALL, SK_JWT_OK},
    {"valid, key without JWK alg", S_RS1, "{\"alg\":\"RS256\",\"kid\":\"rsa2\"}", NULL, M_NONE, NULL, 0, SK_JWT_OK},
    {"valid, typ at+JWT", S_RS0, "{\"alg\":\"RS256\",\"kid\":\"rsa1\",\"typ\":\"AT+JWT\"}", NULL, M_NONE, NULL, 0, SK_JWT_OK},
    {"valid, typ jwt", S_RS0, "{\"alg\":\"RS256\",\"kid\":\"rsa1\",\"typ\":\"jwt\"}", NULL, M_NONE, NULL, 0, SK_JWT_OK},
    {"valid, aud string", S_RS0, NULL, "{\"iss\":\"" ISS "\",\"aud\":\"api://orders\"," EXP_OK "}", M_NONE, NULL, 0, SK_JWT_OK},
    {"valid, aud list with others", S_RS0, NULL, "{\"iss\":\"" ISS "\",\"aud\":[\"x\",\"skc_client1\"]," EXP_OK "}", M_NONE, NULL, 0, SK_JWT_OK},
    {"valid, real exp", S_RS0, NULL, PAY("\"exp\":1700000300.5"), M_NONE, NULL, 0, SK_JWT_OK},
    {"valid, exp within leeway", S_RS0, NULL, PAY("\"exp\":1699999971"), M_NONE, NULL, 0, SK_JWT_OK},
    /* algorithm attacks */
    {"alg none, no signature", S_NONE, "{\"alg\":\"none\",\"kid\":\"rsa1\"}", NULL, M_NONE, NULL, ALL, SK_JWT_E_ALG},
    {"alg none, with signature", S_RS0, "{\"alg\":\"none\",\"kid\":\"rsa1\"}", NULL, M_NONE, NULL, ALL, SK_JWT_E_ALG},
    {"alg None", S_NONE, "{\"alg\":\"None\"}", NULL, M_NONE, NULL, ALL, SK_JWT_E_ALG},
    {"alg NONE", S_NONE, "{\"alg\":\"NONE\"}", NULL, M_NONE, NULL, ALL, SK_JWT_E_ALG},
    {"alg missing", S_RS0, "{\"kid\":\"rsa1\"}", NULL, M_NONE, NULL, ALL, SK_JWT_E_ALG},
    {"alg not a string", S_RS0, "{\"alg\":1,\"kid\":\"rsa1\"}", NULL, M_NONE, NULL, ALL, SK_JWT_E_ALG},
    {"alg rs256 lower case", S_RS0, "{\"alg\":\"rs256\",\"kid\":\"rsa1\"}", NULL, M_NONE, NULL, ALL, SK_JWT_E_ALG},
    {"HS256 keyed with PEM public key", S_HS_PEM, "{\"alg\":\"HS256\",\"kid\":\"rsa1\"}", NULL, M_NONE, NULL, ALL, SK_JWT_E_ALG},
    {"HS256 keyed with DER public key", S_HS_DER, "{\"alg\":\"HS256\",\"kid\":\"rsa1\"}", NULL, M_NONE, NULL, ALL, SK_JWT_E_ALG},
    {"HS384", S_HS384, "{\"alg\":\"HS384\",\"kid\":\"rsa1\"}", NULL, M_NONE, NULL, ALL, SK_JWT_E_ALG},
    {"HS512", S_HS512, "{\"alg\":\"HS512\",\"kid\":\"rsa1\"}", NULL, M_NONE, NULL, ALL, SK_JWT_E_ALG},
    {"RS512", S_RS0, "{\"alg\":\"RS512\",\"kid\":\"rsa1\"}", NULL, M_NONE, NULL, ALL, SK_JWT_E_ALG},
    {"PS256 when only RS256 allowed", S_PS2, "{\"alg\":\"PS256\",\"kid\":\"ps1\"}", NULL, M_NONE, NULL, 0, SK_JWT_E_ALG},
    {"ES256 when only RS256 allowed", S_EC0, "{\"alg\":\"ES256\",\"kid\":\"ec1\"}", NULL, M_NONE, NULL, 0, SK_JWT_E_ALG},
    /* keys */
    {"unknown kid", S_RS0, "{\"alg\":\"RS256\",\"kid\":\"snk_rotated\"}", NULL, M_NONE, NULL, 0, SK_JWT_E_KID_UNKNOWN},
    {"empty kid", S_RS0, "{\"alg\":\"RS256\",\"kid\":\"\"}", NULL, M_NONE, NULL, 0, SK_JWT_E_KID_UNKNOWN},
    {"missing kid, several keys", S_RS0, "{\"alg\":\"RS256\"}", NULL, M_NONE, NULL, 0, SK_JWT_E_KID_MISSING},
    {"kid not a string", S_RS0, "{\"alg\":\"RS256\",\"kid\":5}", NULL, M_NONE, NULL, 0, SK_JWT_E_HEADER},
    {"kid with NUL escape", S_RS0, "{\"alg\":\"RS256\",\"kid\":\"rsa1\\u0000x\"}", NULL, M_NONE, NULL, 0, SK_JWT_E_HEADER},
    {"same kid, another key", S_RS1, HDR_RS, NULL, M_NONE, NULL, 0, SK_JWT_E_SIGNATURE},
    {"RS256 naming an EC key", S_RS0, "{\"alg\":\"RS256\",\"kid\":\"ec1\"}", NULL, M_NONE, NULL, ALL, SK_JWT_E_KEY_TYPE},
    {"ES256 naming an RSA key", S_EC0, "{\"alg\":\"ES256\",\"kid\":\"rsa2\"}", NULL, M_NONE, NULL, ALL, SK_JWT_E_KEY_TYPE},
    {"RS256 naming a PS256-only key", S_RS0, "{\"alg\":\"RS256\",\"kid\":\"ps1\"}", NULL, M_NONE, NULL, ALL, SK_JWT_E_KEY_TYPE},
    {"PS256 naming an RS256-only key", S_PS0, "{\"alg\":\"PS256\",\"kid\":\"rsa1\"}", NULL, M_NONE, NULL, ALL, SK_JWT_E_KEY_TYPE},
    /* header */
    {"crit header", S_RS0, "{\"alg\":\"RS256\",\"kid\":\"rsa1\",\"crit\":[\"exp\"],\"exp\":1}", NULL, M_NONE, NULL, 0, SK_JWT_E_CRIT},
    {"crit with b64 false", S_RS0, "{\"alg\":\"RS256\",\"kid\":\"rsa1\",\"b64\":false,\"crit\":[\"b64\"]}", NULL, M_NONE, NULL, 0, SK_JWT_E_CRIT},
    {"typ logout+jwt (not a logout policy)", S_RS0, "{\"alg\":\"RS256\",\"kid\":\"rsa1\",\"typ\":\"logout+jwt\"}", NULL, M_NONE, NULL, 0, SK_JWT_E_HEADER},
    {"typ JWS", S_RS0, "{\"alg\":\"RS256\",\"kid\":\"rsa1\",\"typ\":\"JWS\"}", NULL, M_NONE, NULL, 0, SK_JWT_E_HEADER},
    {"typ not a string", S_RS0, "{\"alg\":\"RS256\",\"kid\":\"rsa1\",\"typ\":[\"JWT\"]}", NULL, M_NONE, NULL, 0, SK_JWT_E_HEADER},
    {"header not JSON", S_RS0, "hello", NULL, M_NONE, NULL, 0, SK_JWT_E_HEADER},
    {"header JSON array", S_RS0, "[\"RS256\"]", NULL, M_NONE, NULL, 0, SK_JWT_E_HEADER},
    {"header JSON string", S_RS0, "\"RS256\"", NULL, M_NONE, NULL, 0, SK_JWT_E_HEADER},
    {"header with trailing bytes", S_RS0, HDR_RS "x", NULL, M_NONE, NULL, 0, SK_JWT_E_HEADER},
    {"header duplicate alg", S_RS0, "{\"alg\":\"RS256\",\"kid\":\"rsa1\",\"alg\":\"none\"}", NULL, M_NONE, NULL, 0, SK_JWT_E_HEADER},
    {"header duplicate kid", S_RS0, "{\"alg\":\"RS256\",\"kid\":\"rsa2\",\"kid\":\"rsa1\"}", NULL, M_NONE, NULL, 0, SK_JWT_E_HEADER},
    /* structure and encoding */
    {"1 segment", S_RAW, NULL, NULL, M_NONE, "eyJhbGciOiJSUzI1NiJ9", 0, SK_JWT_E_SEGMENTS},
    {"2 segments", S_RAW, NULL, NULL, M_NONE, "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJqb2UifQ", 0, SK_JWT_E_SEGMENTS},
    {"4 segments", S_RS0, NULL, NULL, M_APPEND, ".AAAA", 0, SK_JWT_E_SEGMENTS},
    {"5 segments", S_RS0, NULL, NULL, M_APPEND, ".AAAA.BBBB", 0, SK_JWT_E_SEGMENTS},
    {"empty token", S_RAW, NULL, NULL, M_NONE, "", 0, SK_JWT_E_SEGMENTS},
    {"only dots", S_RAW, NULL, NULL, M_NONE, "..", 0, SK_JWT_E_SEGMENTS},
    {"empty header", S_RAW, NULL, NULL, M_NONE, ".eyJpc3MiOiJqb2UifQ.AAAA", 0, SK_JWT_E_SEGMENTS},
    {"empty payload", S_RAW, NULL, NULL, M_NONE, "eyJhbGciOiJSUzI1NiJ9..AAAA", 0, SK_JWT_E_SEGMENTS},
    {"empty signature", S_RS0, NULL, NULL, M_EMPTY_SIG, NULL, 0, SK_JWT_E_SIGNATURE},
    {"'+' in header", S_RS0, NULL, NULL, M_SET_CHAR, "0+", 0, SK_JWT_E_BASE64},
    {"'/' in payload", S_RS0, NULL, NULL, M_SET_CHAR, "1/", 0, SK_JWT_E_BASE64},
    {"space in signature", S_RS0, NULL, NULL, M_SET_CHAR, "2 ", 0, SK_JWT_E_BASE64},
    {"'%' in payload", S_RS0, NULL, NULL, M_SET_CHAR, "1%", 0, SK_JWT_E_BASE64},
    {"high byte in signature", S_RS0, NULL, NULL, M_SET_CHAR, "2\xff", 0, SK_JWT_E_BASE64},
    {"'=' padding on header", S_RS0, NULL, NULL, M_PAD_HDR, NULL, 0, SK_JWT_E_BASE64},
    {"'=' padding on signature", S_RS0, NULL, NULL, M_APPEND, "==", 0, SK_JWT_E_BASE64},
    {"signature length % 4 == 1", S_RS0, NULL, NULL, M_APPEND, "AAA", 0, SK_JWT_E_BASE64},
    {"truncated signature", S_RS0, NULL, NULL, M_TRUNC, NULL, 0, SK_JWT_E_SIGNATURE},
    {"signature of another payload", S_RS0, NULL, NULL, M_SIG_OF, PAY("\"exp\":1800000000"), 0, SK_JWT_E_SIGNATURE},
    {"ES256 signature in DER", S_EC0_DER, "{\"alg\":\"ES256\",\"kid\":\"ec1\"}", NULL, M_NONE, NULL, ALL, SK_JWT_E_SIGNATURE},
    {"ES256 signature by another EC key", S_RS0, "{\"alg\":\"ES256\",\"kid\":\"ec1\"}", NULL, M_NONE, NULL, ALL, SK_JWT_E_SIGNATURE},
    /* payload */
    {"payload JSON array", S_RS0, NULL, "[\"" ISS "\"]", M_NONE, NULL, 0, SK_JWT_E_PAYLOAD},
    {"payload JSON string", S_RS0, NULL, "\"sub\"", M_NONE, NULL, 0, SK_JWT_E_PAYLOAD},
    {"payload not JSON", S_RS0, NULL, "iss=joe", M_NONE, NULL, 0, SK_JWT_E_PAYLOAD},
    {"payload trailing garbage", S_RS0, NULL, GOOD_PAY "{}", M_NONE, NULL, 0, SK_JWT_E_PAYLOAD},
    {"payload duplicate iss", S_RS0, NULL, PAY(EXP_OK ",\"iss\":\"https://evil\""), M_NONE, NULL, 0, SK_JWT_E_PAYLOAD},
    {"payload duplicate exp", S_RS0, NULL, PAY(EXP_OK ",\"exp\":1900000000"), M_NONE, NULL, 0, SK_JWT_E_PAYLOAD},
    {"payload iss with NUL escape", S_RS0, NULL, "{\"iss\":\"" ISS "\\u0000.evil\",\"aud\":\"skc_client1\"," EXP_OK "}", M_NONE, NULL, 0, SK_JWT_E_PAYLOAD},
    /* time claims */
    {"exp missing", S_RS0, NULL, PAY("\"iat\":1699999990"), M_NONE, NULL, 0, SK_JWT_E_EXP_MISSING},
    {"exp past leeway", S_RS0, NULL, PAY("\"exp\":1699999900"), M_NONE, NULL, 0, SK_JWT_E_EXPIRED},
    {"exp exactly at leeway", S_RS0, NULL, PAY("\"exp\":1699999970"), M_NONE, NULL, 0, SK_JWT_E_EXPIRED},
    {"exp as a string", S_RS0, NULL, PAY("\"exp\":\"1700000300\""), M_NONE, NULL, 0, SK_JWT_E_EXP_INVALID},
    {"exp null", S_RS0, NULL, PAY("\"exp\":null"), M_NONE, NULL, 0, SK_JWT_E_EXP_INVALID},
    {"exp true", S_RS0, NULL, PAY("\"exp\":true"), M_NONE, NULL, 0, SK_JWT_E_EXP_INVALID},
    {"exp 1e400 (infinite)", S_RS0, NULL, PAY("\"exp\":1e400"), M_NONE, NULL, 0, SK_JWT_E_EXP_INVALID},
    {"exp 1e300", S_RS0, NULL, PAY("\"exp\":1e300"), M_NONE, NULL, 0, SK_JWT_E_EXP_INVALID},
    {"exp 2^63", S_RS0, NULL, PAY("\"exp\":9223372036854775808"), M_NONE, NULL, 0, SK_JWT_E_EXP_INVALID},
    {"exp negative", S_RS0, NULL, PAY("\"exp\":-1"), M_NONE, NULL, 0, SK_JWT_E_EXP_INVALID},
    {"exp NaN literal", S_RS0, NULL, PAY("\"exp\":NaN"), M_NONE, NULL, 0, SK_JWT_E_PAYLOAD},
    {"nbf in the future", S_RS0, NULL, PAY(EXP_OK ",\"nbf\":1700000600"), M_NONE, NULL, 0, SK_JWT_E_NBF},
    {"nbf as a string", S_RS0, NULL, PAY(EXP_OK ",\"nbf\":\"0\""), M_NONE, NULL, 0, SK_JWT_E_EXP_INVALID},
    {"iat far in the future", S_RS0, NULL, PAY(EXP_OK ",\"iat\":1800000000"), M_NONE, NULL, 0, SK_JWT_E_IAT},
    {"iat as a string", S_RS0, NULL, PAY(EXP_OK ",\"iat\":\"now\""), M_NONE, NULL, 0, SK_JWT_E_EXP_INVALID},
    /* issuer and audience */
    {"iss with trailing slash", S_RS0, NULL, "{\"iss\":\"" ISS "/\",\"aud\":\"skc_client1\"," EXP_OK "}", M_NONE, NULL, 0, SK_JWT_E_ISS},
    {"iss different case", S_RS0, NULL, "{\"iss\":\"https://ACME.scalekit.dev\",\"aud\":\"skc_client1\"," EXP_OK "}", M_NONE, NULL, 0, SK_JWT_E_ISS},
    {"iss missing", S_RS0, NULL, "{\"aud\":\"skc_client1\"," EXP_OK "}", M_NONE, NULL, 0, SK_JWT_E_ISS},
    {"iss not a string", S_RS0, NULL, "{\"iss\":[\"" ISS "\"],\"aud\":\"skc_client1\"," EXP_OK "}", M_NONE, NULL, 0, SK_JWT_E_ISS},
    {"aud missing", S_RS0, NULL, "{\"iss\":\"" ISS "\"," EXP_OK "}", M_NONE, NULL, 0, SK_JWT_E_AUD},
    {"aud other client", S_RS0, NULL, "{\"iss\":\"" ISS "\",\"aud\":[\"skc_other\"]," EXP_OK "}", M_NONE, NULL, 0, SK_JWT_E_AUD},
    {"aud prefix of ours", S_RS0, NULL, "{\"iss\":\"" ISS "\",\"aud\":\"skc_client\"," EXP_OK "}", M_NONE, NULL, 0, SK_JWT_E_AUD},
    {"aud empty string", S_RS0, NULL, "{\"iss\":\"" ISS "\",\"aud\":\"\"," EXP_OK "}", M_NONE, NULL, 0, SK_JWT_E_AUD},
    {"aud empty array", S_RS0, NULL, "{\"iss\":\"" ISS "\",\"aud\":[]," EXP_OK "}", M_NONE, NULL, 0, SK_JWT_E_AUD},
    {"aud array of non-strings", S_RS0, NULL, "{\"iss\":\"" ISS "\",\"aud\":[1,2]," EXP_OK "}", M_NONE, NULL, 0, SK_JWT_E_AUD},
    {"aud ours plus a non-string", S_RS0, NULL, "{\"iss\":\"" ISS "\",\"aud\":[\"skc_client1\",null]," EXP_OK "}", M_NONE, NULL, 0, SK_JWT_E_AUD},
    {"aud an object", S_RS0, NULL, "{\"iss\":\"" ISS "\",\"aud\":{\"skc_client1\":1}," EXP_OK "}", M_NONE, NULL, 0, SK_JWT_E_AUD},
};

static char *sign_with(int signer, const char *hdr, const char *pay)
{
    size_t n;
    void *secret;
    char *t;
    switch (signer) {
    case S_RS0: return skt_sign(skt_rsa(0), "RS256", hdr, pay);
    case S_RS1: return skt_sign(skt_rsa(1), "RS256", hdr, pay);
    case S_PS2: return skt_sign(skt_rsa(2), "PS256", hdr, pay);
    case S_PS0: return skt_sign(skt_rsa(0), "PS256", hdr, pay);
    case S_EC0: return skt_sign(skt_ec(0), "ES256", hdr, pay);
    case S_EC0_DER: return skt_sign(skt_ec(0), "ES256-DER", hdr, pay);
    case S_NONE: return skt_sign(NULL, "none", hdr, pay);
    case S_HS_PEM:
    case S_HS_DER:
        secret = signer == S_HS_PEM ? (void *)skt_pubkey_pem(skt_rsa(0), &n)
                                    : (void *)skt_pubkey_der(skt_rsa(0), &n);
        t = skt_sign_hmac("SHA256", secret, n, hdr, pay);
        free(secret);
        return t;
    case S_HS384: return skt_sign_hmac("SHA384", "secret", 6, hdr, pay);
    case S_HS512: return skt_sign_hmac("SHA512", "secret", 6, hdr, pay);
    }
    return NULL;
}

static char *build(const tcase *c)
{
    const char *hdr = c->hdr ? c->hdr : HDR_RS, *pay = c->pay ? c->pay : GOOD_PAY;
    char *t, *u;
    if (c->signer == S_RAW)
        return strdup(c->arg);
    t = sign_with(c->signer, hdr, pay);
    switch (c->mut) {
    case M_APPEND:
        u = skt_fmt("%s%s", t, c->arg);
        free(t);
        return u;
    case M_TRUNC:
        t[strlen(t) - 2] = '\0';             /* 342 -> 340 chars: 255 bytes */
        return t;
    case M_EMPTY_SIG:
        strrchr(t, '.')[1] = '\0';
        return t;
    case M_SET_CHAR: {
        char *p = t;
        for (int i = 0; i < c->arg[0] - '0'; i++)
            p = strchr(p, '.') + 1;
        p[3] = c->arg[1];
        return t;
    }
    case M_SIG_OF: {
        char *other = sign_with(c->signer, hdr, c->arg);
        *strrchr(t, '.') = '\0';
        u = skt_fmt("%s%s", t, strrchr(other, '.'));
        free(other);
        free(t);
        return u;
    }
    case M_PAD_HDR: {
        char *dot = strchr(t, '.');
        *dot = '\0';
        u = skt_fmt("%s==.%s", t, dot + 1);
        free(t);
        return u;
    }
    }
    return t;
}

SK_TEST(jwt_hostile_table)
{
    sk_keystore *s = test_store();
    sk_policy p_rs = policy(0), p_all = policy(ALL);
    sk_validator *v_rs = sk_validator_create(&p_rs, s, 64);
    sk_validator *v_all = sk_validator_create(&p_all, s, 64);
    int refused = 0, n = (int)(sizeof cases / sizeof *cases);

    for (int i = 0; i < n; i++) {
        const tcase *c = &cases[i];
        char *t = build(c);
        sk_claims *cl = (sk_claims *)1;
        sk_jwt_err rc = sk_validate(c->algs ? v_all : v_rs, t, strlen(t), NOW, &cl);
        if (rc != c->want) {
            *sk_failed_ = 1;
            fprintf(stderr, "  case \"%s\": got %s, expected %s\n", c->name,
                    sk_jwt_err_str(rc), sk_jwt_err_str(c->want));
        }
        /* Claims come back on success and on EXPIRED only. */
        SK_CHECK((cl != NULL) == (rc == SK_JWT_OK || rc == SK_JWT_E_EXPIRED));
        if (cl && rc == SK_JWT_E_EXPIRED)
            SK_CHECK_STR(cl->sub, "usr_1");
        sk_claims_unref(cl);
        refused += c->want != SK_JWT_OK;
        free(t);
    }
    SK_CHECK(refused >= 40);
    fprintf(stderr, "  %d hostile tokens refused, %d controls accepted\n", refused, n - refused);
    sk_validator_destroy(v_rs);
    sk_validator_destroy(v_all);
    sk_keystore_destroy(s);
}

/* Tokens too big to write inline. */
SK_TEST(jwt_hostile_sizes_and_depth)
{
    sk_keystore *s = test_store();
    sk_policy p = policy(0);
    sk_validator *v = sk_validator_create(&p, s, 64);
    sk_claims *cl;
    char *t, *filler = malloc(20001);

    memset(filler, 'a', 20000);
    filler[20000] = '\0';
    /* A header over 2 KiB decoded. */
    filler[2100] = '\0';
    char *hdr = skt_fmt("{\"alg\":\"RS256\",\"kid\":\"rsa1\",\"x\":\"%s\"}", filler);
    t = skt_sign(skt_rsa(0), "RS256", hdr, GOOD_PAY);
    SK_CHECK_INT(sk_validate(v, t, strlen(t), NOW, &cl), SK_JWT_E_TOO_LARGE);
    free(t);
    free(hdr);
    /* Just under the header limit is fine. */
    filler[1900] = '\0';
    hdr = skt_fmt("{\"alg\":\"RS256\",\"kid\":\"rsa1\",\"x\":\"%s\"}", filler);
    t = skt_sign(skt_rsa(0), "RS256", hdr, GOOD_PAY);
    SK_CHECK_INT(sk_validate(v, t, strlen(t), NOW, &cl), SK_JWT_OK);
    sk_claims_unref(cl);
    free(t);
    free(hdr);
    /* A token over 16 KiB, signed and otherwise fine. */
    filler[13000] = 'a';
    filler[13000] = '\0';
    memset(filler, 'a', 13000);
    char *pay = skt_fmt(PAY(EXP_OK ",\"pad\":\"%s\""), filler);
    t = skt_sign(skt_rsa(0), "RS256", HDR_RS, pay);
    SK_CHECK(strlen(t) > 16384);
    SK_CHECK_INT(sk_validate(v, t, strlen(t), NOW, &cl), SK_JWT_E_TOO_LARGE);
    SK_CHECK(cl == NULL);
    free(t);
    free(pay);
    /* A nested payload 5000 arrays deep (cJSON stops at 1000). */
    char *deep = malloc(10001);
    memset(deep, '[', 5000);
    memset(deep + 5000, ']', 5000);
    deep[10000] = '\0';
    pay = skt_fmt(PAY(EXP_OK ",\"deep\":%s"), deep);
    t = skt_sign(skt_rsa(0), "RS256", HDR_RS, pay);
    SK_CHECK(strlen(t) < 16384);
    SK_CHECK_INT(sk_validate(v, t, strlen(t), NOW, &cl), SK_JWT_E_PAYLOAD);
    free(t);
    free(pay);
    /* ... and a header 1000 objects deep. */
    deep[0] = '\0';
    for (int i = 0; i < 1000; i++)
        strcat(deep, "[");
    hdr = skt_fmt("{\"alg\":\"RS256\",\"kid\":\"rsa1\",\"d\":%s", deep);
    t = skt_sign(skt_rsa(0), "RS256", hdr, GOOD_PAY);
    SK_CHECK_INT(sk_validate(v, t, strlen(t), NOW, &cl), SK_JWT_E_HEADER);
    free(t);
    free(hdr);
    free(deep);
    /* A payload with many members, one duplicated at the end (sorted check). */
    size_t cap = 16384, off = 0;
    pay = malloc(cap);
    off += (size_t)snprintf(pay + off, cap - off, "{\"iss\":\"%s\",\"aud\":\"skc_client1\"," EXP_OK, ISS);
    for (int i = 0; i < 300; i++)
        off += (size_t)snprintf(pay + off, cap - off, ",\"m%d\":%d", i, i);
    snprintf(pay + off, cap - off, ",\"m7\":0}");
    t = skt_sign(skt_rsa(0), "RS256", HDR_RS, pay);
    SK_CHECK_INT(sk_validate(v, t, strlen(t), NOW, &cl), SK_JWT_E_PAYLOAD);
    free(t);
    pay[off] = '}';
    pay[off + 1] = '\0';
    t = skt_sign(skt_rsa(0), "RS256", HDR_RS, pay);
    SK_CHECK_INT(sk_validate(v, t, strlen(t), NOW, &cl), SK_JWT_OK);
    sk_claims_unref(cl);
    free(t);
    free(pay);
    /* A smaller policy limit applies. */
    p.max_token_len = 200;
    sk_validator *small = sk_validator_create(&p, s, 0);
    t = skt_sign(skt_rsa(0), "RS256", HDR_RS, GOOD_PAY);
    SK_CHECK_INT(sk_validate(small, t, strlen(t), NOW, &cl), SK_JWT_E_TOO_LARGE);
    free(t);
    sk_validator_destroy(small);
    free(filler);
    sk_validator_destroy(v);
    sk_keystore_destroy(s);
}

SK_TEST(jwt_time_boundaries)
{
    sk_policy p = policy(0);
    static const struct { const char *pay; sk_jwt_err want; } t[] = {
        {PAY("\"exp\":1699999971"), SK_JWT_OK},             /* exp + 30 > now */
        {PAY("\"exp\":1699999970"), SK_JWT_E_EXPIRED},      /* exp + 30 == now */
        {PAY(EXP_OK ",\"nbf\":1700000030"), SK_JWT_OK},
        {PAY(EXP_OK ",\"nbf\":1700000031"), SK_JWT_E_NBF},
        {PAY(EXP_OK ",\"iat\":1700000030"), SK_JWT_OK},
        {PAY(EXP_OK ",\"iat\":1700000031"), SK_JWT_E_IAT},
        {PAY(EXP_OK ",\"nbf\":0,\"iat\":0"), SK_JWT_OK},
        /* Expired wins last: an expired token with a bad aud is a bad aud. */
        {"{\"iss\":\"" ISS "\",\"aud\":\"nope\",\"exp\":1}", SK_JWT_E_AUD},
    };
    for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
        cJSON *o = cJSON_Parse(t[i].pay);
        SK_REQUIRE(o != NULL);
        SK_CHECK_INT(sk_jwt_check_claims(o, &p, NOW), t[i].want);
        cJSON_Delete(o);
    }
    /* A policy without issuer or audiences refuses everything. */
    cJSON *o = cJSON_Parse(GOOD_PAY);
    sk_policy q = p;
    q.issuer = NULL;
    SK_CHECK_INT(sk_jwt_check_claims(o, &q, NOW), SK_JWT_E_ISS);
    q = p;
    q.n_audiences = 0;
    SK_CHECK_INT(sk_jwt_check_claims(o, &q, NOW), SK_JWT_E_AUD);
    /* check_exp = 0: exp is not looked at, even when missing or odd. */
    q = p;
    q.check_exp = 0;
    SK_CHECK_INT(sk_jwt_check_claims(o, &q, NOW + 100000), SK_JWT_OK);
    cJSON_DeleteItemFromObject(o, "exp");
    SK_CHECK_INT(sk_jwt_check_claims(o, &q, NOW), SK_JWT_OK);
    cJSON_AddStringToObject(o, "exp", "soon");
    SK_CHECK_INT(sk_jwt_check_claims(o, &q, NOW), SK_JWT_OK);
    SK_CHECK_INT(sk_jwt_check_claims(o, &p, NOW), SK_JWT_E_EXP_INVALID);
    cJSON_Delete(o);
}

/* Both kinds share iss and aud: an access policy tells an ID token by the
 * claims only ID tokens carry, and an ID policy checks azp when present. */
SK_TEST(jwt_token_kinds)
{
    sk_policy access = policy(0), id = policy(0);
    access.access_only = 1;
    id.azp = "skc_client1";
    static const struct { const char *pay; sk_jwt_err access, id; } t[] = {
        {PAY(EXP_OK ",\"jti\":\"tkn_1\",\"client_id\":\"skc_client1\""), SK_JWT_OK, SK_JWT_OK},
        {PAY(EXP_OK ",\"nonce\":\"n1\""), SK_JWT_E_KIND, SK_JWT_OK},
        {PAY(EXP_OK ",\"at_hash\":\"h\""), SK_JWT_E_KIND, SK_JWT_OK},
        {PAY(EXP_OK ",\"c_hash\":\"h\""), SK_JWT_E_KIND, SK_JWT_OK},
        {PAY(EXP_OK ",\"nonce\":null"), SK_JWT_E_KIND, SK_JWT_OK},   /* present is enough */
        {PAY(EXP_OK ",\"azp\":\"skc_client1\""), SK_JWT_OK, SK_JWT_OK},
        {PAY(EXP_OK ",\"azp\":\"skc_other\""), SK_JWT_OK, SK_JWT_E_KIND},
        {PAY(EXP_OK ",\"azp\":[\"skc_client1\"]"), SK_JWT_OK, SK_JWT_E_KIND},
        {PAY(EXP_OK ",\"azp\":\"\""), SK_JWT_OK, SK_JWT_E_KIND},
        /* A logout token is neither. */
        {PAY(EXP_OK ",\"events\":{}"), SK_JWT_E_KIND, SK_JWT_E_KIND},
        {PAY(EXP_OK ",\"events\":null"), SK_JWT_E_KIND, SK_JWT_E_KIND},
        /* OIDC Core 3.1.3.7: several audiences need azp naming the client. */
        {"{\"iss\":\"" ISS "\",\"aud\":[\"skc_client1\",\"x\"]," EXP_OK "}", SK_JWT_OK,
         SK_JWT_E_KIND},
        {"{\"iss\":\"" ISS "\",\"aud\":[\"skc_client1\",\"x\"],\"azp\":\"skc_client1\","
         EXP_OK "}", SK_JWT_OK, SK_JWT_OK},
        {"{\"iss\":\"" ISS "\",\"aud\":[\"skc_client1\"]," EXP_OK "}", SK_JWT_OK, SK_JWT_OK},
        {"{\"iss\":\"" ISS "\",\"aud\":\"skc_client1\"," EXP_OK "}", SK_JWT_OK, SK_JWT_OK},
    };
    for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
        cJSON *o = cJSON_Parse(t[i].pay);
        SK_REQUIRE(o != NULL);
        SK_CHECK_INT(sk_jwt_check_claims(o, &access, NOW), t[i].access);
        SK_CHECK_INT(sk_jwt_check_claims(o, &id, NOW), t[i].id);
        cJSON_Delete(o);
    }
    SK_CHECK(!strcmp(sk_jwt_err_str(SK_JWT_E_KIND), "wrong-token-kind"));
    /* The logout policy takes events. */
    sk_policy logout = policy(0);
    logout.logout = 1;
    cJSON *o = cJSON_Parse(PAY(EXP_OK ",\"events\":{}"));
    SK_REQUIRE(o != NULL);
    SK_CHECK_INT(sk_jwt_check_claims(o, &logout, NOW), SK_JWT_OK);
    cJSON_Delete(o);
}

SK_TEST(jwt_claims_fields)
{
    sk_keystore *s = test_store();
    sk_policy p = policy(0);
    sk_validator *v = sk_validator_create(&p, s, 16);
    sk_claims *c = NULL;
    const char *pay =
        "{\"iss\":\"" ISS "\",\"aud\":[\"skc_client1\"],\"sub\":\"usr_42\",\"oid\":\"org_7\","
        "\"sid\":\"ses_9\",\"jti\":\"tkn_1\",\"exp\":1700000300,\"iat\":1699999990,"
        "\"nbf\":1699999991,\"client_id\":\"skc_client1\",\"email\":\"a@b.example\","
        "\"name\":\"Ada\",\"roles\":[\"admin\",7,\"viewer\"],"
        "\"permissions\":[\"orders:read\",\"orders:write\"],\"scope\":\"openid profile\","
        "\"scopes\":[\"ignored\"],\"xoid\":\"x\"}";
    char *t = skt_sign(skt_rsa(0), "RS256", HDR_RS, pay);
    SK_REQUIRE(sk_validate(v, t, strlen(t), NOW, &c) == SK_JWT_OK);
    SK_CHECK_STR(c->sub, "usr_42");
    SK_CHECK_STR(c->oid, "org_7");
    SK_CHECK_STR(c->sid, "ses_9");
    SK_CHECK_STR(c->iss, ISS);
    SK_CHECK_STR(c->client_id, "skc_client1");
    SK_CHECK_STR(c->email, "a@b.example");
    SK_CHECK_STR(c->name, "Ada");
    SK_CHECK_STR(c->roles, "admin,viewer");
    SK_CHECK_STR(c->permissions, "orders:read,orders:write");
    SK_CHECK_STR(c->scope, "openid profile");
    SK_CHECK_INT(c->exp, 1700000300);
    SK_CHECK_INT(c->iat, 1699999990);
    SK_CHECK_INT(c->nbf, 1699999991);
    cJSON *tree = sk_claims_parse(c);
    SK_REQUIRE(tree != NULL);
    SK_CHECK_STR(cJSON_GetObjectItem(tree, "jti")->valuestring, "tkn_1");
    SK_CHECK_STR(c->payload, pay);          /* the decoded text, kept as it came */
    SK_CHECK_INT(c->payload_len, strlen(pay));
    cJSON_Delete(tree);
    sk_claims_unref(c);
    free(t);

    /* A machine token: scopes array, no roles, no email. */
    pay = "{\"iss\":\"" ISS "\",\"aud\":\"skc_client1\",\"sub\":\"m2morg_1\",\"oid\":\"org_7\","
          "\"exp\":1700000300,\"scopes\":[\"orders:read\",{},\"orders:write\"],\"roles\":[]}";
    t = skt_sign(skt_rsa(0), "RS256", HDR_RS, pay);
    SK_REQUIRE(sk_validate(v, t, strlen(t), NOW, &c) == SK_JWT_OK);
    SK_CHECK_STR(c->scope, "orders:read orders:write");
    SK_CHECK_STR(c->roles, "");
    SK_CHECK(c->permissions == NULL);
    SK_CHECK(c->email == NULL && c->name == NULL && c->sid == NULL);
    SK_CHECK_INT(c->iat, 0);
    SK_CHECK_INT(c->nbf, 0);
    sk_claims_unref(c);
    free(t);
    sk_validator_destroy(v);
    sk_keystore_destroy(s);
}

/* The claims keep no pointer into the tree they were made from (valgrind
 * sees a use after free), and sk_claims_parse gives back every claim. */
SK_TEST(jwt_claims_parse_roundtrip)
{
    const char *pay =
        "{\"sub\":\"usr_\\u00e9\\\"q\",\"email\":\"a@b.example\",\"name\":\"Ada\","
        "\"oid\":\"org_7\",\"sid\":\"ses_9\",\"iss\":\"" ISS "\",\"client_id\":\"skc_1\","
        "\"roles\":\"solo\",\"permissions\":[],\"scopes\":[\"a\",\"b\"],\"exp\":1700000300,"
        "\"custom\":{\"tier\":[1,2.5,true,null,\"gold\"],\"deep\":{\"x\":-3}},\"n\":12345678901}";
    cJSON *want = cJSON_Parse(pay);
    SK_REQUIRE(want != NULL);
    sk_claims *c = sk_claims_new(cJSON_Parse(pay), pay, strlen(pay));  /* tree freed in there */
    SK_REQUIRE(c != NULL);
    SK_CHECK_STR(c->sub, "usr_\xc3\xa9\"q");
    SK_CHECK_STR(c->email, "a@b.example");
    SK_CHECK_STR(c->name, "Ada");
    SK_CHECK_STR(c->oid, "org_7");
    SK_CHECK_STR(c->sid, "ses_9");
    SK_CHECK_STR(c->iss, ISS);
    SK_CHECK_STR(c->client_id, "skc_1");
    SK_CHECK_STR(c->roles, "solo");
    SK_CHECK_STR(c->permissions, "");
    SK_CHECK_STR(c->scope, "a b");
    SK_CHECK_INT(c->exp, 1700000300);
    /* One block: every string lies in the claims object itself. */
    const char *end = c->payload + c->payload_len + 1;
    const char *fields[] = {c->sub, c->email, c->name, c->oid, c->sid, c->iss, c->client_id,
                            c->roles, c->permissions, c->scope};
    SK_CHECK(c->payload == c->buf);
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++)
        SK_CHECK(fields[i] >= end && fields[i] < end + 100);   /* 79 bytes of copies */
    for (int i = 0; i < 2; i++) {                     /* each call a fresh tree */
        cJSON *got = sk_claims_parse(c);
        SK_REQUIRE(got != NULL);
        SK_CHECK(cJSON_Compare(got, want, 1));
        SK_CHECK_INT(cJSON_GetObjectItem(cJSON_GetObjectItem(got, "custom"), "deep")->child
                         ->valueint, -3);
        cJSON_Delete(got);
    }
    sk_claims *ref = sk_claims_ref(c);
    sk_claims_unref(c);
    SK_CHECK_STR(ref->name, "Ada");                   /* still held */
    sk_claims_unref(ref);
    SK_CHECK(sk_claims_parse(NULL) == NULL);
    cJSON_Delete(want);
}

SK_TEST(jwt_expired_returns_claims)
{
    sk_keystore *s = test_store();
    sk_policy p = policy(0);
    sk_validator *v = sk_validator_create(&p, s, 16);
    sk_claims *c = NULL;
    char *t = skt_sign(skt_rsa(0), "RS256", HDR_RS,
                       PAY("\"sid\":\"ses_1\",\"exp\":1699990000"));
    SK_CHECK_INT(sk_validate(v, t, strlen(t), NOW, &c), SK_JWT_E_EXPIRED);
    SK_REQUIRE(c != NULL);
    SK_CHECK_STR(c->sid, "ses_1");
    sk_claims_unref(c);
    /* Expired results are not cached: still a cold refusal next time. */
    sk_validator_stats st;
    sk_validator_get_stats(v, &st);
    SK_CHECK_INT(st.cache_entries, 0);
    SK_CHECK_INT(st.failures[SK_JWT_E_EXPIRED], 1);
    free(t);
    sk_validator_destroy(v);
    sk_keystore_destroy(s);
}

SK_TEST(jwt_single_key_without_kid)
{
    char *jwk = skt_jwk(skt_rsa(0), NULL, NULL, NULL);
    char *doc = skt_jwks(1, &jwk);
    sk_keystore *s = sk_keystore_create(NULL, NULL, 3600, 60);
    sk_policy p = policy(0);
    cJSON *pl = NULL;
    sk_keystore_put(s, sk_keyset_parse(doc, strlen(doc), NULL, 0), NOW);
    char *t = skt_sign(skt_rsa(0), "RS256", "{\"alg\":\"RS256\"}", GOOD_PAY);
    SK_CHECK_INT(sk_jwt_verify(t, strlen(t), &p, s, NOW, &pl, NULL, NULL), SK_JWT_OK);
    cJSON_Delete(pl);
    free(t);
    t = skt_sign(skt_rsa(0), "RS256", HDR_RS, GOOD_PAY);      /* kid given, key has none */
    SK_CHECK_INT(sk_jwt_verify(t, strlen(t), &p, s, NOW, &pl, NULL, NULL), SK_JWT_E_KID_UNKNOWN);
    free(t);
    sk_keystore_destroy(s);
    /* No key store at all. */
    t = skt_sign(skt_rsa(0), "RS256", HDR_RS, GOOD_PAY);
    SK_CHECK_INT(sk_jwt_verify(t, strlen(t), &p, NULL, NOW, &pl, NULL, NULL), SK_JWT_E_NO_KEYS);
    s = sk_keystore_create(NULL, NULL, 3600, 60);
    SK_CHECK_INT(sk_jwt_verify(t, strlen(t), &p, s, NOW, &pl, NULL, NULL), SK_JWT_E_NO_KEYS);
    sk_keystore_destroy(s);
    free(t);
    free(jwk);
    free(doc);
}

SK_TEST(jwt_peek_payload)
{
    char *t = skt_sign(NULL, "none", "{\"alg\":\"none\"}", "{\"sid\":\"ses_1\"}");
    cJSON *o = sk_jwt_peek_payload(t, strlen(t), NULL, NULL);
    SK_REQUIRE(o != NULL);
    SK_CHECK_STR(cJSON_GetObjectItem(o, "sid")->valuestring, "ses_1");
    cJSON_Delete(o);
    free(t);
    static const char *bad[] = {"", "a", "a.b", "a.b.c.d", "e30.W10.x", "e30.e30=.x", "e30..x"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        SK_CHECK(sk_jwt_peek_payload(bad[i], strlen(bad[i]), NULL, NULL) == NULL);
    SK_CHECK(sk_jwt_peek_payload(NULL, 0, NULL, NULL) == NULL);
    o = sk_jwt_peek_payload("x.e30.", 6, NULL, NULL);       /* {} with no signature: fine to peek */
    SK_CHECK(o != NULL && cJSON_IsObject(o));
    cJSON_Delete(o);
}

SK_TEST(jwt_token_hash_and_err_str)
{
    char h[13];
    sk_token_hash("abc", 3, h);
    SK_CHECK_STR(h, "ba7816bf8f01");           /* SHA-256("abc") */
    sk_token_hash("", 0, h);
    SK_CHECK_STR(h, "e3b0c44298fc");
    for (int i = 0; i < SK_JWT_E__COUNT; i++) {
        const char *s = sk_jwt_err_str((sk_jwt_err)i);
        SK_CHECK(s && *s && strcmp(s, "unknown-error"));
        for (const char *q = s; *q; q++)
            SK_CHECK((*q >= 'a' && *q <= 'z') || (*q >= '0' && *q <= '9') || *q == '-');
        for (int j = 0; j < i; j++)
            SK_CHECK(strcmp(s, sk_jwt_err_str((sk_jwt_err)j)) != 0);
    }
    SK_CHECK_STR(sk_jwt_err_str(SK_JWT_E_EXPIRED), "expired");
    SK_CHECK_STR(sk_jwt_err_str(SK_JWT_E_SIGNATURE), "bad-signature");
    SK_CHECK_STR(sk_jwt_err_str(SK_JWT_E_KID_UNKNOWN), "unknown-kid");
    SK_CHECK_STR(sk_jwt_err_str(SK_JWT_E_ALG), "alg-not-allowed");
    SK_CHECK_STR(sk_jwt_err_str(SK_JWT_E__COUNT), "unknown-error");
    SK_CHECK_STR(sk_jwt_err_str((sk_jwt_err)-1), "unknown-error");
}

SK_TEST(jwt_alg_bit_exact_names_only)
{
    SK_CHECK_INT(sk_alg_bit("RS256"), SK_ALG_RS256);
    SK_CHECK_INT(sk_alg_bit("PS256"), SK_ALG_PS256);
    SK_CHECK_INT(sk_alg_bit("ES256"), SK_ALG_ES256);
    const char *bad[] = { "none", "None", "rs256", "HS256", "RS256 ", "", "RS384", "ES256K" };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        SK_CHECK_INT(sk_alg_bit(bad[i]), 0);
}

SK_TEST(jwt_policy_token_max_default)
{
    sk_policy p = { 0 };
    SK_CHECK_INT(sk_policy_token_max(&p), SK_TOKEN_MAX_DEFAULT);
    SK_CHECK_INT(SK_TOKEN_MAX_DEFAULT, 16384);
    p.max_token_len = 200;
    SK_CHECK_INT(sk_policy_token_max(&p), 200);
}

static sk_claims *claims_of(const char *json)
{
    return sk_claims_new(cJSON_Parse(json), json, strlen(json));
}

SK_TEST(jwt_claims_lookup_access_then_id)
{
    sk_claims *a = claims_of("{\"sub\":\"u\",\"plan\":\"pro\",\"n\":null}");
    sk_claims *id = claims_of("{\"sub\":\"u\",\"plan\":\"free\",\"given_name\":\"Ada\",\"n\":1}");
    SK_REQUIRE(a && id);
    SK_CHECK_STR(sk_claims_lookup(a, id, "plan")->valuestring, "pro");      /* access first */
    SK_CHECK_STR(sk_claims_lookup(a, id, "given_name")->valuestring, "Ada"); /* else the ID's */
    SK_CHECK(cJSON_IsNull(sk_claims_lookup(a, id, "n")));   /* present, even as null */
    SK_CHECK(sk_claims_lookup(a, id, "missing") == NULL);
    SK_CHECK(sk_claims_lookup(a, NULL, "given_name") == NULL);
    sk_claims_unref(a);
    sk_claims_unref(id);
}

SK_TEST(jwt_sha256_status)
{
    unsigned char md[32];
    SK_CHECK_INT(sk_sha256("abc", 3, md), APR_SUCCESS);
    SK_CHECK_INT(md[0], 0xba);                  /* SHA-256("abc") = ba7816bf... */
    SK_CHECK_INT(md[31], 0xad);
}
