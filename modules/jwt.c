/* SPDX-License-Identifier: Apache-2.0 */
/* jwt.c: compact-JWS parsing, signature verification and claim checks
 * (see sk_jwt.h). Everything here runs before a token is trusted, so each
 * step bounds its input and refuses rather than guesses. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE              /* memmem */
#endif
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/rsa.h>

#include "sk_b64.h"
#include "sk_json.h"
#include "sk_jwt.h"
#include "sk_keys.h"

#define HEADER_MAX 2048                /* decoded header bytes */
#define SIG_MAX 1024                   /* RSA-8192 */
#define PEEK_MAX 65536
#define TIME_MAX 253402300799.0        /* 9999-12-31: later is not a time */

/* ---- small helpers ---- */

static pthread_once_t md_once = PTHREAD_ONCE_INIT;
static EVP_MD *md_sha256;

/* Fetch SHA-256 once: an implicit fetch per verify costs a lookup each time. */
static void md_init(void)
{
    md_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static const EVP_MD *sha256(void)
{
    pthread_once(&md_once, md_init);
    return md_sha256;
}

static const char *const err_names[SK_JWT_E__COUNT] = {
    [SK_JWT_OK] = "ok",
    [SK_JWT_E_TOO_LARGE] = "too-large",
    [SK_JWT_E_SEGMENTS] = "malformed",
    [SK_JWT_E_BASE64] = "bad-base64",
    [SK_JWT_E_HEADER] = "bad-header",
    [SK_JWT_E_ALG] = "alg-not-allowed",
    [SK_JWT_E_CRIT] = "crit-header",
    [SK_JWT_E_KID_MISSING] = "kid-missing",
    [SK_JWT_E_KID_UNKNOWN] = "unknown-kid",
    [SK_JWT_E_KEY_TYPE] = "key-type-mismatch",
    [SK_JWT_E_SIGNATURE] = "bad-signature",
    [SK_JWT_E_PAYLOAD] = "bad-payload",
    [SK_JWT_E_EXP_MISSING] = "exp-missing",
    [SK_JWT_E_EXP_INVALID] = "bad-time-claim",
    [SK_JWT_E_EXPIRED] = "expired",
    [SK_JWT_E_NBF] = "not-yet-valid",
    [SK_JWT_E_IAT] = "iat-in-future",
    [SK_JWT_E_ISS] = "bad-issuer",
    [SK_JWT_E_AUD] = "bad-audience",
    [SK_JWT_E_KIND] = "wrong-token-kind",
    [SK_JWT_E_SIGNED_OUT] = "signed-out",
    [SK_JWT_E_NO_KEYS] = "no-keys",
    [SK_JWT_E_INTERNAL] = "internal-error",
};

const char *sk_jwt_err_str(sk_jwt_err e)
{
    if ((unsigned)e >= SK_JWT_E__COUNT || !err_names[e])
        return "unknown-error";
    return err_names[e];
}

apr_status_t sk_sha256(const void *data, size_t len, unsigned char out[32])
{
    unsigned int n = 0;
    if (EVP_Digest(data, len, out, &n, sha256(), NULL) && n == 32)
        return APR_SUCCESS;
    /* the slow way, looked up anew */
    return SHA256(data, len, out) ? APR_SUCCESS : APR_EGENERAL;
}

void sk_token_hash(const char *token, size_t len, char out[13])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char d[32];

    if (sk_sha256(token, len, d) != APR_SUCCESS) {
        strcpy(out, "000000000000");
        return;
    }
    for (int i = 0; i < 6; i++) {
        out[2 * i] = hex[d[i] >> 4];
        out[2 * i + 1] = hex[d[i] & 15];
    }
    out[12] = '\0';
}

/* ---- strict JSON objects ---- */

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static uint32_t name_hash(const char *s)
{
    uint32_t h = 2166136261u;              /* FNV-1a: only a pre-filter */
    while (*s)
        h = (h ^ (unsigned char)*s++) * 16777619u;
    return h;
}

/* Big objects: sort the names, compare neighbours. */
static int dup_sorted(const cJSON *o)
{
    size_t n = 0, i = 0;
    const cJSON *a;
    int dup = 0;

    for (a = o->child; a; a = a->next)
        n++;
    const char **names = malloc(n * sizeof *names);
    if (!names)
        return 1;
    for (a = o->child; a; a = a->next)
        names[i++] = a->string;
    qsort(names, n, sizeof *names, name_cmp);
    for (i = 1; i < n && !dup; i++)
        dup = !strcmp(names[i - 1], names[i]);
    free(names);
    return dup;
}

/* Two members of one name are read differently by different parsers (first
 * or last wins): such a token is refused, not interpreted. Small objects
 * (every real token) compare name hashes pairwise, strcmp only on a match. */
static int has_dup_names(const cJSON *o)
{
    uint32_t hs[64];
    const char *ns[64];
    size_t n = 0;
    const cJSON *a;

    for (a = o->child; a; a = a->next, n++) {
        if (n == 64)
            return dup_sorted(o);
        ns[n] = a->string;
        hs[n] = name_hash(a->string);
        for (size_t i = 0; i < n; i++)
            if (hs[i] == hs[n] && !strcmp(ns[i], ns[n]))
                return 1;
    }
    return 0;
}

/* Parse exactly n bytes as one JSON object. NUL bytes (raw or \u0000) are
 * refused: cJSON would cut a string there, so "iss":"a\u0000b" would read as
 * "a". Trailing bytes other than white space are refused too. */
static cJSON *parse_object(const char *buf, size_t n)
{
    cJSON *o;

    if (memchr(buf, '\0', n) || memmem(buf, n, "\\u0000", 6))
        return NULL;
    o = sk_json_parse_exact(buf, n);
    if (!o)
        return NULL;
    if (!cJSON_IsObject(o) || has_dup_names(o)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static const cJSON *member(const cJSON *o, const char *name)
{
    return cJSON_GetObjectItemCaseSensitive(o, name);
}

static const char *member_str(const cJSON *o, const char *name)
{
    const cJSON *it = member(o, name);
    return cJSON_IsString(it) ? it->valuestring : NULL;
}

/* ---- the compact serialisation ---- */

typedef struct {
    const char *seg[3];
    size_t len[3];
    unsigned alg;
    cJSON *hdr;
    const char *kid;                   /* points into hdr */
    char *payload;                     /* decoded, NUL-terminated */
    size_t payload_len;
    unsigned char sig[SIG_MAX];
    size_t sig_len;
} jws;

static void jws_free(jws *j)
{
    cJSON_Delete(j->hdr);
    free(j->payload);
}

/* Exactly three segments; header and payload never empty. */
static sk_jwt_err split(const char *t, size_t len, jws *j)
{
    const char *end = t + len, *d1, *d2;

    d1 = memchr(t, '.', len);
    if (!d1)
        return SK_JWT_E_SEGMENTS;
    d2 = memchr(d1 + 1, '.', (size_t)(end - d1 - 1));
    if (!d2 || memchr(d2 + 1, '.', (size_t)(end - d2 - 1)))
        return SK_JWT_E_SEGMENTS;
    j->seg[0] = t;
    j->len[0] = (size_t)(d1 - t);
    j->seg[1] = d1 + 1;
    j->len[1] = (size_t)(d2 - d1 - 1);
    j->seg[2] = d2 + 1;
    j->len[2] = (size_t)(end - d2 - 1);
    if (!j->len[0] || !j->len[1])
        return SK_JWT_E_SEGMENTS;
    return SK_JWT_OK;
}

unsigned sk_alg_bit(const char *alg)
{
    if (!strcmp(alg, "RS256"))
        return SK_ALG_RS256;
    if (!strcmp(alg, "PS256"))
        return SK_ALG_PS256;
    if (!strcmp(alg, "ES256"))
        return SK_ALG_ES256;
    return 0;
}

/* typ, when present: JWT, at+jwt (RFC 9068 access tokens), and logout+jwt
 * only where logout tokens are expected (OIDC Back-Channel Logout 1.0,
 * section 2.4: explicit typing keeps them from passing as other tokens). */
static int typ_ok(const char *typ, const sk_policy *p)
{
    return !strcasecmp(typ, "JWT") || !strcasecmp(typ, "at+jwt")
           || (p->logout && !strcasecmp(typ, "logout+jwt"));
}

static sk_jwt_err check_header(jws *j, const sk_policy *p)
{
    unsigned allowed = p->algs ? p->algs : SK_ALG_RS256;
    const cJSON *alg = member(j->hdr, "alg"), *kid = member(j->hdr, "kid");
    const cJSON *typ = member(j->hdr, "typ");

    /* The algorithm is settled before any key is looked at. */
    if (!cJSON_IsString(alg) || !(j->alg = sk_alg_bit(alg->valuestring) & allowed))
        return SK_JWT_E_ALG;
    if (member(j->hdr, "crit"))
        return SK_JWT_E_CRIT;
    if (kid && !cJSON_IsString(kid))
        return SK_JWT_E_HEADER;
    j->kid = kid ? kid->valuestring : NULL;
    if (typ && !(cJSON_IsString(typ) && typ_ok(typ->valuestring, p)))
        return SK_JWT_E_HEADER;
    return SK_JWT_OK;
}

static sk_jwt_err parse_header(jws *j, const sk_policy *p)
{
    char buf[HEADER_MAX + 1];
    size_t n;

    if (j->len[0] > SK_B64URL_ENCLEN(HEADER_MAX))
        return SK_JWT_E_TOO_LARGE;
    if (sk_b64url_decode((unsigned char *)buf, HEADER_MAX, j->seg[0], j->len[0], &n) != SK_B64_OK)
        return SK_JWT_E_BASE64;
    j->hdr = parse_object(buf, n);
    if (!j->hdr)
        return SK_JWT_E_HEADER;
    return check_header(j, p);
}

/* Decoding the payload and signature before the key lookup makes a garbled
 * token fail as such, not as a bad signature. */
static sk_jwt_err decode_rest(jws *j)
{
    size_t n;
    if (j->len[2] > SK_B64URL_ENCLEN(SIG_MAX))
        return SK_JWT_E_SIGNATURE;             /* longer than any key we take */
    if (sk_b64url_decode(j->sig, sizeof j->sig, j->seg[2], j->len[2], &j->sig_len) != SK_B64_OK)
        return SK_JWT_E_BASE64;
    n = SK_B64URL_DECLEN(j->len[1]);
    j->payload = malloc(n + 1);
    if (!j->payload)
        return SK_JWT_E_INTERNAL;
    if (sk_b64url_decode((unsigned char *)j->payload, n, j->seg[1], j->len[1], &j->payload_len)
        != SK_B64_OK)
        return SK_JWT_E_BASE64;
    j->payload[j->payload_len] = '\0';
    return SK_JWT_OK;
}

/* ---- signatures ---- */

/* One DER INTEGER from a big-endian unsigned value. */
static size_t der_int(unsigned char *p, const unsigned char *v, size_t n)
{
    size_t i = 0;
    while (n > 1 && v[0] == 0) {              /* minimal encoding */
        v++;
        n--;
    }
    p[i++] = 0x02;
    p[i++] = (unsigned char)(n + (v[0] >> 7));
    if (v[0] & 0x80)                            /* stay positive */
        p[i++] = 0x00;
    memcpy(p + i, v, n);
    return i + n;
}

/* JOSE writes ECDSA signatures as raw r||s; OpenSSL wants DER. */
static size_t ecdsa_raw_to_der(unsigned char der[72], const unsigned char raw[64])
{
    size_t n = 2;
    n += der_int(der + n, raw, 32);
    n += der_int(der + n, raw + 32, 32);
    der[0] = 0x30;
    der[1] = (unsigned char)(n - 2);           /* at most 70: short form */
    return n;
}

static int key_fits(EVP_PKEY *pkey, unsigned alg, unsigned key_alg)
{
    int id = EVP_PKEY_get_base_id(pkey);
    if (key_alg && key_alg != alg)
        return 0;
    if (alg == SK_ALG_ES256)
        return id == EVP_PKEY_EC;             /* only P-256 keys are imported */
    return id == EVP_PKEY_RSA;
}

static int verify_sig(EVP_PKEY *pkey, unsigned alg, const jws *j)
{
    const unsigned char *sig = j->sig;
    size_t sig_len = j->sig_len;
    unsigned char der[72];
    EVP_MD_CTX *ctx;
    EVP_PKEY_CTX *pctx = NULL;
    int ok = 0;

    if (alg == SK_ALG_ES256) {
        if (sig_len != 64)
            return 0;
        sig_len = ecdsa_raw_to_der(der, sig);
        sig = der;
    } else if (sig_len != (size_t)EVP_PKEY_get_size(pkey)) {
        return 0;
    }
    ctx = EVP_MD_CTX_new();
    if (!ctx || !sha256())
        goto out;
    if (EVP_DigestVerifyInit(ctx, &pctx, sha256(), NULL, pkey) != 1)
        goto out;
    if (alg == SK_ALG_PS256 &&
        (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) <= 0 ||
         EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32) <= 0 ||
         EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, sha256()) <= 0))
        goto out;
    /* The signing input is the first two segments exactly as received. */
    ok = EVP_DigestVerify(ctx, sig, sig_len, (const unsigned char *)j->seg[0],
                          j->len[0] + 1 + j->len[1]) == 1;
out:
    EVP_MD_CTX_free(ctx);
    return ok;
}

static sk_jwt_err check_signature(jws *j, struct sk_keystore *keys, int64_t now)
{
    const sk_keyset *held = NULL;
    unsigned key_alg = 0;
    int why = SK_JWT_E_NO_KEYS;
    sk_jwt_err rc = SK_JWT_OK;
    EVP_PKEY *pkey;

    if (!keys)
        return SK_JWT_E_NO_KEYS;
    pkey = sk_keystore_get(keys, j->kid, now, &held, &key_alg, &why);
    if (!pkey)
        return (sk_jwt_err)why;
    if (!key_fits(pkey, j->alg, key_alg))
        rc = SK_JWT_E_KEY_TYPE;
    else if (!verify_sig(pkey, j->alg, j))
        rc = SK_JWT_E_SIGNATURE;
    sk_keystore_release(keys, held);
    return rc;
}

sk_jwt_err sk_jwt_verify(const char *token, size_t len, const sk_policy *policy,
                         struct sk_keystore *keys, int64_t now, cJSON **payload,
                         char **text, size_t *text_len)
{
    jws j;
    sk_jwt_err rc;

    *payload = NULL;
    if (text) {
        *text = NULL;
        *text_len = 0;
    }
    if (!token)
        return SK_JWT_E_SEGMENTS;
    if (len > sk_policy_token_max(policy))
        return SK_JWT_E_TOO_LARGE;
    memset(&j, 0, offsetof(jws, sig));
    j.sig_len = 0;
    if ((rc = split(token, len, &j)) ||
        (rc = parse_header(&j, policy)) ||
        (rc = decode_rest(&j)) ||
        (rc = check_signature(&j, keys, now)))
        goto out;
    *payload = parse_object(j.payload, j.payload_len);
    if (!*payload) {
        rc = SK_JWT_E_PAYLOAD;
        goto out;
    }
    if (text) {
        *text = j.payload;              /* handed over: jws_free must not free it */
        *text_len = j.payload_len;
        j.payload = NULL;
    }
out:
    jws_free(&j);
    return rc;
}

cJSON *sk_jwt_peek_payload(const char *token, size_t len, char **text, size_t *text_len)
{
    jws j;
    char *buf;
    size_t n;
    cJSON *o = NULL;

    if (text) {
        *text = NULL;
        *text_len = 0;
    }
    memset(&j, 0, offsetof(jws, sig));
    if (!token || len > PEEK_MAX || split(token, len, &j))
        return NULL;
    buf = (char *)sk_b64url_decode_alloc(j.seg[1], j.len[1], &n);
    if (buf)
        o = parse_object(buf, n);
    if (!o || !text) {
        free(buf);
        return o;
    }
    *text = buf;
    *text_len = n;
    return o;
}

/* ---- claims ---- */

/* A time claim: 0 absent, 1 set in *v, -1 present but not a usable number
 * (a string, NaN/Infinity from an overflowing literal, negative, past 9999). */
static int time_claim(const cJSON *o, const char *name, int64_t *v)
{
    const cJSON *it = member(o, name);
    if (!it)
        return 0;
    if (!cJSON_IsNumber(it) || !(it->valuedouble >= 0 && it->valuedouble <= TIME_MAX))
        return -1;
    *v = (int64_t)it->valuedouble;      /* >= 0: truncation is floor */
    return 1;
}

static int aud_match(const char *aud, const sk_policy *p)
{
    for (size_t i = 0; i < p->n_audiences; i++)
        if (p->audiences[i] && !strcmp(aud, p->audiences[i]))
            return 1;
    return 0;
}

/* Several audiences: an array of more than one member. */
static int aud_several(const cJSON *o)
{
    const cJSON *aud = member(o, "aud");
    return cJSON_IsArray(aud) && aud->child && aud->child->next;
}

/* An ID token's aud and iss are an access token's too, and a logout token's:
 * their own claims give them away (events only in logout tokens; nonce,
 * at_hash, c_hash only in ID tokens). azp, when there is one, names the
 * client the token was issued to; an ID token for several audiences must
 * name it (OIDC Core 3.1.3.7, items 3 to 5). audless: the token has no aud
 * (sk_jwt_check_claims_audless). */
static int check_kind(const cJSON *o, const sk_policy *p, int audless)
{
    static const char *const id_only[] = { "nonce", "at_hash", "c_hash", NULL };
    if (!p->logout && member(o, "events"))
        return 1;
    for (int i = 0; p->access_only && id_only[i]; i++)
        if (member(o, id_only[i]))
            return 1;
    const cJSON *azp = member(o, "azp");
    /* azp is an ID token's mark too: an aud-less token taken as a machine
     * client's must not carry it. */
    if (azp && audless)
        return 1;
    if (p->azp && !azp)
        return aud_several(o);
    return p->azp && !(cJSON_IsString(azp) && !strcmp(azp->valuestring, p->azp));
}

/* aud is one string or an array of strings; one of them must be ours. */
static sk_jwt_err check_aud(const cJSON *o, const sk_policy *p)
{
    const cJSON *aud = member(o, "aud"), *it;
    int found = 0;

    if (cJSON_IsString(aud))
        return aud->valuestring[0] && aud_match(aud->valuestring, p) ? SK_JWT_OK : SK_JWT_E_AUD;
    if (!cJSON_IsArray(aud) || !aud->child)
        return SK_JWT_E_AUD;
    cJSON_ArrayForEach(it, aud) {
        if (!cJSON_IsString(it))
            return SK_JWT_E_AUD;             /* a malformed list is not trusted */
        found |= aud_match(it->valuestring, p);
    }
    return found ? SK_JWT_OK : SK_JWT_E_AUD;
}

/* aud_optional: a payload without aud passes the audience check. */
static sk_jwt_err check_claims(const cJSON *o, const sk_policy *p, int64_t now, int aud_optional)
{
    int64_t exp = 0, nbf = 0, iat = 0;
    int64_t leeway = p->leeway > 0 ? p->leeway : 0;
    int has_exp = 0, has_nbf, has_iat;
    const char *iss;

    if (!cJSON_IsObject(o))
        return SK_JWT_E_PAYLOAD;
    if (p->check_exp) {
        has_exp = time_claim(o, "exp", &exp);
        if (has_exp == 0)
            return SK_JWT_E_EXP_MISSING;
        if (has_exp < 0)
            return SK_JWT_E_EXP_INVALID;
    }
    has_nbf = time_claim(o, "nbf", &nbf);
    has_iat = time_claim(o, "iat", &iat);
    if (has_nbf < 0 || has_iat < 0)
        return SK_JWT_E_EXP_INVALID;
    iss = member_str(o, "iss");
    if (!p->issuer || !iss || strcmp(iss, p->issuer))
        return SK_JWT_E_ISS;                 /* exact: no slash or case folding */
    int audless = aud_optional && !member(o, "aud");
    if (!audless && check_aud(o, p))
        return SK_JWT_E_AUD;
    if (check_kind(o, p, audless))
        return SK_JWT_E_KIND;
    if (has_nbf && nbf - leeway > now)
        return SK_JWT_E_NBF;
    if (has_iat && iat - leeway > now)
        return SK_JWT_E_IAT;
    /* RFC 7519: the token is good only before exp. */
    if (has_exp && exp + leeway <= now)
        return SK_JWT_E_EXPIRED;
    return SK_JWT_OK;
}

sk_jwt_err sk_jwt_check_claims(const cJSON *o, const sk_policy *p, int64_t now)
{
    return check_claims(o, p, now, 0);
}

sk_jwt_err sk_jwt_check_claims_audless(const cJSON *o, const sk_policy *p, int64_t now)
{
    return check_claims(o, p, now, 1);
}

/* ---- the claims object: two passes over the payload, the first (base
 * NULL) measuring the block, the second filling it ---- */

typedef struct {
    char *base;                        /* NULL while measuring */
    size_t used;
} sk_block;

/* n bytes of s and a NUL; NULL while measuring. */
static const char *block_put(sk_block *b, const char *s, size_t n)
{
    char *p = b->base ? b->base + b->used : NULL;
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    b->used += n + 1;
    return p;
}

static const char *block_str(sk_block *b, const cJSON *o, const char *name)
{
    const char *s = member_str(o, name);
    return s ? block_put(b, s, strlen(s)) : NULL;
}

/* The string members of an array claim joined with sep (or a lone string);
 * "" for an array without strings, NULL when absent or of another type. */
static const char *block_join(sk_block *b, const cJSON *o, const char *name, char sep)
{
    const cJSON *a = member(o, name), *it;
    char *start = b->base ? b->base + b->used : NULL;
    size_t n = 0;

    if (cJSON_IsString(a))
        return block_put(b, a->valuestring, strlen(a->valuestring));
    if (!cJSON_IsArray(a))
        return NULL;
    cJSON_ArrayForEach(it, a) {
        if (!cJSON_IsString(it))
            continue;
        size_t l = strlen(it->valuestring);
        if (start) {
            if (n)
                start[n - 1] = sep;     /* over the previous item's NUL */
            memcpy(start + n, it->valuestring, l + 1);
        }
        n += l + 1;
    }
    if (!n && start)
        *start = '\0';
    b->used += n ? n : 1;
    return start;
}

static int64_t time_or_zero(const cJSON *o, const char *name)
{
    int64_t v = 0;
    return time_claim(o, name, &v) == 1 ? v : 0;
}

static void claims_fill(sk_claims *c, sk_block *b, const cJSON *o, const char *text,
                        size_t text_len)
{
    c->payload = block_put(b, text, text_len);
    c->payload_len = text_len;
    c->sub = block_str(b, o, "sub");
    c->email = block_str(b, o, "email");
    c->name = block_str(b, o, "name");
    c->oid = block_str(b, o, "oid");
    c->sid = block_str(b, o, "sid");
    c->iss = block_str(b, o, "iss");
    c->client_id = block_str(b, o, "client_id");
    c->roles = block_join(b, o, "roles", ',');
    c->permissions = block_join(b, o, "permissions", ',');
    c->scope = cJSON_IsString(member(o, "scope")) ? block_join(b, o, "scope", ' ')
                                                  : block_join(b, o, "scopes", ' ');
}

sk_claims *sk_claims_new(cJSON *o, const char *text, size_t text_len)
{
    sk_claims probe, *c = NULL;
    sk_block b = {NULL, 0};

    if (!text)
        goto out;
    claims_fill(&probe, &b, o, text, text_len);
    c = malloc(sizeof *c + b.used);
    if (!c)
        goto out;
    b = (sk_block){c->buf, 0};
    claims_fill(c, &b, o, text, text_len);
    c->exp = time_or_zero(o, "exp");
    c->iat = time_or_zero(o, "iat");
    c->nbf = time_or_zero(o, "nbf");
    c->has_aud = member(o, "aud") != NULL;
    c->refs = 1;
    c->checked = 0;
    c->plain = 0;
    c->tree = NULL;
out:
    cJSON_Delete(o);
    return c;
}

cJSON *sk_claims_parse(const sk_claims *c)
{
    return c ? cJSON_ParseWithLength(c->payload, c->payload_len) : NULL;
}

const cJSON *sk_claims_tree(const sk_claims *c)
{
    if (!c)
        return NULL;
    cJSON **slot = &((sk_claims *)c)->tree;    /* a cache beside the immutable claims */
    cJSON *t = __atomic_load_n(slot, __ATOMIC_ACQUIRE), *mine;
    if (t || !(mine = sk_claims_parse(c)))
        return t;
    cJSON *none = NULL;
    if (__atomic_compare_exchange_n(slot, &none, mine, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        return mine;
    cJSON_Delete(mine);                 /* another thread's parse won */
    return none;
}

const cJSON *sk_claims_lookup(const sk_claims *a, const sk_claims *id, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(sk_claims_tree(a), name);
    return v || !id ? v : cJSON_GetObjectItemCaseSensitive(sk_claims_tree(id), name);
}

sk_claims *sk_claims_ref(sk_claims *c)
{
    if (c)
        __atomic_fetch_add(&c->refs, 1, __ATOMIC_RELAXED);
    return c;
}

void sk_claims_unref(sk_claims *c)
{
    if (!c || __atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    cJSON_Delete(c->tree);
    free(c);
}
