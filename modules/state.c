/* SPDX-License-Identifier: Apache-2.0 */
/* state.c: AES-256-GCM sealed cookies and the login state inside them. */
#include <string.h>
#include <apr_strings.h>
#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>
#include "sk_state.h"
#include "sk_b64.h"
#include "sk_json.h"

#define SK_IV_LEN  12
#define SK_TAG_LEN 16
#define SK_SEALED_MAX 8192          /* a login state is a few hundred bytes */

struct sk_sealer {
    unsigned char key[32];
    unsigned char iv_key[32];   /* synthetic IVs (sk_seal_bound_same) */
};

sk_sealer *sk_sealer_create(apr_pool_t *p, const char *secret, const char *label)
{
    sk_sealer *k = apr_pcalloc(p, sizeof(*k));
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL);
    unsigned char both[64];     /* HKDF: the first 32 bytes are the same for any length */
    size_t klen = sizeof(both);
    int ok = c && EVP_PKEY_derive_init(c) > 0
        && EVP_PKEY_CTX_set_hkdf_md(c, EVP_sha256()) > 0
        && EVP_PKEY_CTX_set1_hkdf_salt(c, (const unsigned char *)"mod_scalekit", 12) > 0
        && EVP_PKEY_CTX_set1_hkdf_key(c, (const unsigned char *)secret, (int)strlen(secret)) > 0
        && EVP_PKEY_CTX_add1_hkdf_info(c, (const unsigned char *)label, (int)strlen(label)) > 0
        && EVP_PKEY_derive(c, both, &klen) > 0;
    EVP_PKEY_CTX_free(c);
    memcpy(k->key, both, sizeof(k->key));
    memcpy(k->iv_key, both + sizeof(k->key), sizeof(k->iv_key));
    OPENSSL_cleanse(both, sizeof(both));
    return ok ? k : NULL;
}

/* AES-256-GCM with the IV in raw's first bytes; bound (may be NULL) is
 * authenticated but not stored: the value opens only where the same bound
 * is given. */
static char *sk_seal_with_iv(apr_pool_t *p, const sk_sealer *k, unsigned char *raw,
                             const char *bound, const char *plain, size_t len)
{
    size_t raw_len = SK_IV_LEN + len + SK_TAG_LEN;
    int outl = 0, fin = 0, aadl = 0;
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int ok = c && EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, k->key, raw) == 1
        && (!bound || EVP_EncryptUpdate(c, NULL, &aadl, (const unsigned char *)bound,
                                        (int)strlen(bound)) == 1)
        && EVP_EncryptUpdate(c, raw + SK_IV_LEN, &outl, (const unsigned char *)plain,
                             (int)len) == 1
        && EVP_EncryptFinal_ex(c, raw + SK_IV_LEN + outl, &fin) == 1
        && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, SK_TAG_LEN,
                               raw + SK_IV_LEN + len) == 1;
    EVP_CIPHER_CTX_free(c);
    if (!ok)
        return NULL;
    char *out = apr_palloc(p, SK_B64URL_ENCLEN(raw_len) + 1);
    sk_b64url_encode(out, raw, raw_len);
    return out;
}

/* A fresh random IV. */
char *sk_seal_bound(apr_pool_t *p, const sk_sealer *k, const char *bound, const char *plain,
                    size_t len)
{
    unsigned char *raw = apr_palloc(p, SK_IV_LEN + len + SK_TAG_LEN);
    if (RAND_bytes(raw, SK_IV_LEN) != 1)
        return NULL;
    return sk_seal_with_iv(p, k, raw, bound, plain, len);
}

/* A synthetic IV: HMAC-SHA256 of bound and plain under a key of its own, so
 * an IV repeats only with the same input (and then so does the value). */
char *sk_seal_bound_same(apr_pool_t *p, const sk_sealer *k, const char *bound,
                         const char *plain, size_t len)
{
    unsigned char *raw = apr_palloc(p, SK_IV_LEN + len + SK_TAG_LEN);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    size_t blen = bound ? strlen(bound) + 1 : 0;    /* its NUL separates it from plain */
    unsigned char *in = apr_palloc(p, blen + len + 1);
    if (bound)
        memcpy(in, bound, blen);
    memcpy(in + blen, plain, len);
    if (!HMAC(EVP_sha256(), k->iv_key, (int)sizeof(k->iv_key), in, blen + len, mac, &mac_len)
        || mac_len < SK_IV_LEN)
        return NULL;
    memcpy(raw, mac, SK_IV_LEN);
    return sk_seal_with_iv(p, k, raw, bound, plain, len);
}

char *sk_unseal_bound(apr_pool_t *p, const sk_sealer *k, const char *bound, const char *sealed,
                      size_t max, size_t *len)
{
    size_t slen = strlen(sealed), raw_len = 0;
    if (slen > max)
        return NULL;
    unsigned char *raw = apr_palloc(p, slen);
    if (sk_b64url_decode(raw, slen, sealed, slen, &raw_len) != SK_B64_OK
        || raw_len < SK_IV_LEN + SK_TAG_LEN)
        return NULL;
    size_t ct_len = raw_len - SK_IV_LEN - SK_TAG_LEN;
    char *plain = apr_palloc(p, ct_len + 1);
    int outl = 0, fin = 0, aadl = 0;
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int ok = c && EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, k->key, raw) == 1
        && (!bound || EVP_DecryptUpdate(c, NULL, &aadl, (const unsigned char *)bound,
                                        (int)strlen(bound)) == 1)
        && EVP_DecryptUpdate(c, (unsigned char *)plain, &outl, raw + SK_IV_LEN,
                             (int)ct_len) == 1
        && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, SK_TAG_LEN,
                               raw + SK_IV_LEN + ct_len) == 1
        && EVP_DecryptFinal_ex(c, (unsigned char *)plain + outl, &fin) == 1;
    EVP_CIPHER_CTX_free(c);
    if (!ok)
        return NULL;
    plain[ct_len] = '\0';
    if (len)
        *len = ct_len;
    return plain;
}

char *sk_seal(apr_pool_t *p, const sk_sealer *k, const char *plain, size_t len)
{
    return sk_seal_bound(p, k, NULL, plain, len);
}

char *sk_unseal(apr_pool_t *p, const sk_sealer *k, const char *sealed, size_t *len)
{
    return sk_unseal_bound(p, k, NULL, sealed, SK_SEALED_MAX, len);
}

char *sk_login_state_seal(apr_pool_t *p, const sk_sealer *k, const sk_login_state *s)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "s", s->state);
    cJSON_AddStringToObject(j, "n", s->nonce);
    cJSON_AddStringToObject(j, "v", s->verifier);
    cJSON_AddStringToObject(j, "r", s->return_to ? s->return_to : "/");
    cJSON_AddNumberToObject(j, "t", (double)s->created);
    cJSON_AddNumberToObject(j, "q", s->silent);
    if (s->params && *s->params)
        cJSON_AddStringToObject(j, "p", s->params);
    if (s->switch_to)
        cJSON_AddStringToObject(j, "z", s->switch_to);
    if (s->redirect_uri)
        cJSON_AddStringToObject(j, "u", s->redirect_uri);
    char *text = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!text)
        return NULL;
    char *sealed = sk_seal(p, k, text, strlen(text));
    cJSON_free(text);
    return sealed;
}

apr_status_t sk_login_state_open(apr_pool_t *p, const sk_sealer *k, const char *sealed,
                                 sk_login_state *out)
{
    size_t len = 0;
    char *plain = sk_unseal(p, k, sealed, &len);
    memset(out, 0, sizeof(*out));
    if (!plain)
        return APR_EINVAL;
    cJSON *j = cJSON_ParseWithLength(plain, len);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "t");
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(j, "q");
    out->state = sk_json_string(p, j, "s");
    out->nonce = sk_json_string(p, j, "n");
    out->verifier = sk_json_string(p, j, "v");
    out->return_to = sk_json_string(p, j, "r");
    out->redirect_uri = sk_json_string(p, j, "u");
    /* In range before the cast: a double past int64_t is undefined behaviour. */
    out->created = cJSON_IsNumber(t) && t->valuedouble >= 1 && t->valuedouble < 1e12
                   ? (int64_t)t->valuedouble : 0;
    out->silent = cJSON_IsNumber(q) && q->valuedouble != 0;
    out->params = sk_json_string(p, j, "p");
    out->switch_to = sk_json_string(p, j, "z");
    cJSON_Delete(j);
    return out->state && out->nonce && out->verifier && out->return_to && out->created
           ? APR_SUCCESS : APR_EINVAL;
}

/* The mark is sealed bound to its use: neither it nor a state cookie opens
 * as the other. */
#define SK_SWITCH_BOUND "mod_scalekit organization switch"

char *sk_switch_mark_seal(apr_pool_t *p, const sk_sealer *k, const char *return_to,
                          const char *orgs, int64_t when)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "r", return_to);
    cJSON_AddStringToObject(j, "z", orgs);
    cJSON_AddNumberToObject(j, "t", (double)when);
    char *text = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!text)
        return NULL;
    char *sealed = sk_seal_bound(p, k, SK_SWITCH_BOUND, text, strlen(text));
    cJSON_free(text);
    return sealed;
}

apr_status_t sk_switch_mark_open(apr_pool_t *p, const sk_sealer *k, const char *sealed,
                                 const char **return_to, const char **orgs, int64_t *when)
{
    size_t len = 0;
    char *plain = sk_unseal_bound(p, k, SK_SWITCH_BOUND, sealed, SK_SEALED_MAX, &len);
    if (!plain)
        return APR_EINVAL;
    cJSON *j = cJSON_ParseWithLength(plain, len);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "t");
    *return_to = sk_json_string(p, j, "r");
    *orgs = sk_json_string(p, j, "z");
    *when = cJSON_IsNumber(t) && t->valuedouble >= 1 && t->valuedouble < 1e12
            ? (int64_t)t->valuedouble : 0;
    cJSON_Delete(j);
    return *return_to && *orgs && *when ? APR_SUCCESS : APR_EINVAL;
}
