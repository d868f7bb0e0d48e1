/* SPDX-License-Identifier: Apache-2.0 */
/* keys.c: JWKS parsing (each key imported once into an EVP_PKEY) and the
 * thread-safe key store that keeps the current set fresh (see sk_keys.h). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/param_build.h>

#include "sk_b64.h"
#include "sk_json.h"
#include "sk_jwt.h"
#include "sk_keys.h"

#define JWKS_MAX_BYTES (1024 * 1024)
#define JWKS_MAX_KEYS 256          /* more is not a key set, it is an attack */
#define KID_MAX 256
#define RSA_MIN_BITS 2048
#define RSA_MAX_BITS 8192          /* bigger moduli only make verify slow */

typedef struct {
    char *kid;                     /* NULL when the JWK has none */
    EVP_PKEY *pkey;
    unsigned alg;                  /* SK_ALG_* from the JWK "alg", 0 if absent */
    size_t order;                  /* position in the document */
} jwk_key;

struct sk_keyset {
    int refs;                      /* atomic; the key store and readers share sets */
    size_t n;
    jwk_key *keys;                 /* sorted by kid; kid-less keys last */
};

/* ---- JWK import ---- */

static void set_err(char *err, size_t errlen, const char *msg)
{
    if (err && errlen)
        snprintf(err, errlen, "%s", msg);
}

static const char *jstr(const cJSON *o, const char *name)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(it) ? it->valuestring : NULL;
}

/* Decode a base64url member into a malloc'd buffer; NULL if absent or bad. */
static unsigned char *jb64(const cJSON *o, const char *name, size_t *n)
{
    const char *s = jstr(o, name);
    return s ? sk_b64url_decode_alloc(s, strlen(s), n) : NULL;
}

static EVP_PKEY *pkey_fromdata(const char *type, OSSL_PARAM *params)
{
    EVP_PKEY *pkey = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    if (!ctx || EVP_PKEY_fromdata_init(ctx) <= 0 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
        pkey = NULL;
    EVP_PKEY_CTX_free(ctx);
    return pkey;
}

static EVP_PKEY *import_rsa(const cJSON *jwk)
{
    size_t nlen = 0, elen = 0;
    unsigned char *n = jb64(jwk, "n", &nlen), *e = jb64(jwk, "e", &elen);
    BIGNUM *bn_n = NULL, *bn_e = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    OSSL_PARAM *params = NULL;
    EVP_PKEY *pkey = NULL;

    if (!n || !e || elen == 0 || elen > 8)
        goto out;
    bn_n = BN_bin2bn(n, (int)nlen, NULL);
    bn_e = BN_bin2bn(e, (int)elen, NULL);
    if (!bn_n || !bn_e || BN_num_bits(bn_n) < RSA_MIN_BITS || BN_num_bits(bn_n) > RSA_MAX_BITS)
        goto out;
    /* A public exponent is odd and at least 3; anything else is a broken key. */
    if (!BN_is_odd(bn_e) || BN_is_one(bn_e))
        goto out;
    bld = OSSL_PARAM_BLD_new();
    if (!bld || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e))
        goto out;
    params = OSSL_PARAM_BLD_to_param(bld);
    if (params)
        pkey = pkey_fromdata("RSA", params);
out:
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn_n);
    BN_free(bn_e);
    free(n);
    free(e);
    return pkey;
}

/* The point must be on the curve: checked once here, not per token. */
static int ec_point_ok(EVP_PKEY *pkey)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    int ok = ctx && EVP_PKEY_public_check(ctx) == 1;
    EVP_PKEY_CTX_free(ctx);
    return ok;
}

static EVP_PKEY *import_ec(const cJSON *jwk)
{
    const char *crv = jstr(jwk, "crv");
    size_t xlen = 0, ylen = 0;
    unsigned char *x = jb64(jwk, "x", &xlen), *y = jb64(jwk, "y", &ylen);
    unsigned char pt[65];
    EVP_PKEY *pkey = NULL;

    if (crv && !strcmp(crv, "P-256") && x && y && xlen == 32 && ylen == 32) {
        char group[] = "prime256v1";
        pt[0] = 0x04;                          /* uncompressed point */
        memcpy(pt + 1, x, 32);
        memcpy(pt + 33, y, 32);
        OSSL_PARAM params[] = {
            OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0),
            OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof pt),
            OSSL_PARAM_construct_end(),
        };
        pkey = pkey_fromdata("EC", params);
        if (pkey && !ec_point_ok(pkey)) {
            EVP_PKEY_free(pkey);
            pkey = NULL;
        }
    }
    free(x);
    free(y);
    return pkey;
}

/* use / key_ops, when present, must allow verifying signatures. */
static int usable_for_sig(const cJSON *jwk)
{
    const cJSON *use = cJSON_GetObjectItemCaseSensitive(jwk, "use");
    const cJSON *ops = cJSON_GetObjectItemCaseSensitive(jwk, "key_ops");
    if (use && !(cJSON_IsString(use) && !strcmp(use->valuestring, "sig")))
        return 0;
    if (ops) {
        const cJSON *op;
        if (!cJSON_IsArray(ops))
            return 0;
        cJSON_ArrayForEach(op, ops) {
            if (cJSON_IsString(op) && !strcmp(op->valuestring, "verify"))
                return 1;
        }
        return 0;
    }
    return 1;
}

/* Import one JWK into *k; 0 when skipped. */
static int import_jwk(const cJSON *jwk, jwk_key *k)
{
    const char *kty = jstr(jwk, "kty");
    const cJSON *kid = cJSON_GetObjectItemCaseSensitive(jwk, "kid");
    const cJSON *alg = cJSON_GetObjectItemCaseSensitive(jwk, "alg");
    int rsa;

    if (!cJSON_IsObject(jwk) || !kty || !usable_for_sig(jwk))
        return 0;
    if (strcmp(kty, "RSA") && strcmp(kty, "EC"))
        return 0;                                      /* oct, OKP, ...: never */
    rsa = !strcmp(kty, "RSA");
    if (kid && !(cJSON_IsString(kid) && strlen(kid->valuestring) <= KID_MAX))
        return 0;
    k->alg = 0;
    if (alg) {
        /* An alg we do not implement, or one that does not fit kty, makes the
         * key useless for every token: skip it. */
        k->alg = cJSON_IsString(alg) ? sk_alg_bit(alg->valuestring) : 0;
        if (!k->alg || (rsa ? k->alg == SK_ALG_ES256 : k->alg != SK_ALG_ES256))
            return 0;
    }
    k->pkey = rsa ? import_rsa(jwk) : import_ec(jwk);
    if (!k->pkey)
        return 0;
    k->kid = kid ? strdup(kid->valuestring) : NULL;
    if (kid && !k->kid) {
        EVP_PKEY_free(k->pkey);
        return 0;
    }
    return 1;
}

/* ---- the key set ---- */

static int key_cmp(const void *a, const void *b)
{
    const jwk_key *x = a, *y = b;
    if (!x->kid || !y->kid) {
        if (x->kid != y->kid)
            return x->kid ? -1 : 1;
    } else {
        int c = strcmp(x->kid, y->kid);
        if (c)
            return c;
    }
    return x->order < y->order ? -1 : x->order > y->order;
}

/* Sort by kid and drop later duplicates: the first in the document wins, as
 * the IdP lists its current key first during a rotation. */
static void sort_and_dedup(sk_keyset *ks)
{
    size_t w = 0;
    qsort(ks->keys, ks->n, sizeof *ks->keys, key_cmp);
    for (size_t r = 0; r < ks->n; r++) {
        jwk_key *k = &ks->keys[r];
        if (w > 0 && k->kid && ks->keys[w - 1].kid && !strcmp(k->kid, ks->keys[w - 1].kid)) {
            EVP_PKEY_free(k->pkey);
            free(k->kid);
            continue;
        }
        ks->keys[w++] = *k;
    }
    ks->n = w;
}

static cJSON *parse_doc(const char *json, size_t len, char *err, size_t errlen)
{
    cJSON *root;

    if (len > JWKS_MAX_BYTES) {
        set_err(err, errlen, "JWKS document over 1 MiB");
        return NULL;
    }
    root = sk_json_parse_exact(json, len);
    if (!root)
        set_err(err, errlen, "JWKS document is not JSON");
    return root;
}

sk_keyset *sk_keyset_parse(const char *json, size_t len, char *err, size_t errlen)
{
    cJSON *root = parse_doc(json, len, err, errlen), *keys, *jwk;
    sk_keyset *ks = NULL;
    size_t max;

    if (!root)
        return NULL;
    keys = cJSON_GetObjectItemCaseSensitive(root, "keys");
    if (!cJSON_IsObject(root) || !cJSON_IsArray(keys)) {
        set_err(err, errlen, "JWKS document has no \"keys\" array");
        goto out;
    }
    max = (size_t)cJSON_GetArraySize(keys);
    if (max > JWKS_MAX_KEYS)
        max = JWKS_MAX_KEYS;
    ks = calloc(1, sizeof *ks);
    if (!ks || !(ks->keys = calloc(max ? max : 1, sizeof *ks->keys))) {
        free(ks);
        ks = NULL;
        set_err(err, errlen, "out of memory");
        goto out;
    }
    ks->refs = 1;
    cJSON_ArrayForEach(jwk, keys) {
        if (ks->n == max)
            break;
        ks->keys[ks->n].order = ks->n;
        if (import_jwk(jwk, &ks->keys[ks->n]))
            ks->n++;
    }
    sort_and_dedup(ks);
    if (ks->n == 0) {
        sk_keyset_free(ks);
        ks = NULL;
        set_err(err, errlen, "JWKS document holds no usable signing key");
    }
out:
    cJSON_Delete(root);
    return ks;
}

static void keyset_ref(const sk_keyset *ks)
{
    __atomic_fetch_add(&((sk_keyset *)ks)->refs, 1, __ATOMIC_RELAXED);
}

/* Drops one reference; the last one frees the keys. */
void sk_keyset_free(sk_keyset *ks)
{
    if (!ks || __atomic_sub_fetch(&ks->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    for (size_t i = 0; i < ks->n; i++) {
        EVP_PKEY_free(ks->keys[i].pkey);
        free(ks->keys[i].kid);
    }
    free(ks->keys);
    free(ks);
}

size_t sk_keyset_size(const sk_keyset *ks)
{
    return ks ? ks->n : 0;
}

static const jwk_key *find_kid(const sk_keyset *ks, const char *kid)
{
    size_t lo = 0, hi = ks->n;
    while (lo < hi) {                       /* kid-less keys sort last */
        size_t mid = lo + (hi - lo) / 2;
        const jwk_key *k = &ks->keys[mid];
        int c = k->kid ? strcmp(kid, k->kid) : -1;
        if (c == 0)
            return k;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

EVP_PKEY *sk_keyset_find(const sk_keyset *ks, const char *kid, unsigned *alg_out)
{
    const jwk_key *k;
    if (!ks)
        return NULL;
    k = kid ? find_kid(ks, kid) : (ks->n == 1 ? &ks->keys[0] : NULL);
    if (!k)
        return NULL;
    if (alg_out)
        *alg_out = k->alg;
    return k->pkey;
}

/* ---- the key store ---- */

struct sk_keystore {
    pthread_mutex_t mu;
    pthread_cond_t cv;             /* signalled when a fetch ends */
    sk_jwks_fetch_fn fetch;
    void *ctx;
    sk_keystore_shared shared;     /* optional copy shared with other processes */
    int ttl, min_refetch;
    sk_clock_fn clock;             /* monotonic: spaces fetches, whatever now callers pass */
    void *clock_ctx;
    sk_keyset *cur;                /* the store's own reference; NULL before the first fetch */
    int64_t installed;             /* when cur was fetched (by us or another process), wall */
    int64_t installed_mono;        /* when cur was installed here, monotonic */
    int64_t last_attempt;          /* last fetch started, good or bad, monotonic */
    int64_t last_ok;               /* last fetch that gave a set */
    int attempted, fetching;
    uint64_t fetches, failures, background, shared_loads;
    char last_error[160];
};

/* CLOCK_MONOTONIC, not the wall clock: it neither steps back nor comes stale. */
static int64_t sk_monotonic(void *ctx)
{
    struct timespec ts;
    (void)ctx;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec;
}

static int64_t sk_mono_now(const sk_keystore *s)
{
    return s->clock(s->clock_ctx);
}

sk_keystore *sk_keystore_create(sk_jwks_fetch_fn fetch, void *ctx, int ttl, int min_refetch)
{
    sk_keystore *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    if (pthread_mutex_init(&s->mu, NULL)) {
        free(s);
        return NULL;
    }
    if (pthread_cond_init(&s->cv, NULL)) {
        pthread_mutex_destroy(&s->mu);
        free(s);
        return NULL;
    }
    s->fetch = fetch;
    s->ctx = ctx;
    s->ttl = ttl > 0 ? ttl : 3600;
    s->min_refetch = min_refetch > 0 ? min_refetch : 0;
    s->clock = sk_monotonic;
    return s;
}

void sk_keystore_set_clock(sk_keystore *s, sk_clock_fn clock, void *ctx)
{
    pthread_mutex_lock(&s->mu);
    s->clock = clock ? clock : sk_monotonic;
    s->clock_ctx = clock ? ctx : NULL;
    pthread_mutex_unlock(&s->mu);
}

void sk_keystore_set_shared(sk_keystore *s, const sk_keystore_shared *shared)
{
    pthread_mutex_lock(&s->mu);
    s->shared = *shared;
    pthread_mutex_unlock(&s->mu);
}

void sk_keystore_wait_idle(sk_keystore *s)
{
    pthread_mutex_lock(&s->mu);
    while (s->fetching)
        pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
}

void sk_keystore_destroy(sk_keystore *s)
{
    if (!s)
        return;
    sk_keystore_wait_idle(s);                /* a background refresh may be running */
    sk_keyset_free(s->cur);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* Replace the current set (lock held); returns the old one to drop. */
static sk_keyset *install(sk_keystore *s, sk_keyset *ks, int64_t fetched)
{
    sk_keyset *old = s->cur;
    s->cur = ks;
    s->installed = fetched;
    s->installed_mono = sk_mono_now(s);
    return old;
}

/* The shared copy, parsed, when there is one fetched after `after` (and, with
 * max_age >= 0, at most max_age seconds before now). Lock not held. */
static sk_keyset *shared_load(sk_keystore *s, int64_t now, int64_t after, int64_t max_age,
                              int64_t *fetched)
{
    char *body = NULL;
    size_t len = 0;
    sk_keyset *ks = NULL;
    if (!s->shared.load || s->shared.load(s->shared.ctx, &body, &len, fetched) != APR_SUCCESS
        || !body)
        return NULL;
    if (*fetched > after && *fetched <= now && (max_age < 0 || now - *fetched <= max_age))
        ks = sk_keyset_parse(body, len, NULL, 0);
    free(body);
    return ks;
}

/* The network fetch; a good document is also offered to other processes. */
static sk_keyset *network_fetch(sk_keystore *s, int64_t now, char *err, size_t errlen)
{
    char *body = NULL;
    size_t len = 0;
    sk_keyset *ks = NULL;
    snprintf(err, errlen, "no JWKS fetcher");
    if (s->fetch) {
        err[0] = '\0';
        if (s->fetch(s->ctx, &body, &len, err, errlen) == APR_SUCCESS && body)
            ks = sk_keyset_parse(body, len, err, errlen);
        else if (!err[0])
            snprintf(err, errlen, "JWKS fetch failed");
    }
    if (ks && s->shared.save)
        s->shared.save(s->shared.ctx, body, len, now);
    free(body);
    return ks;
}

/* Get a newer set: from the shared copy when another process fetched one
 * recently enough (for_kid: within min_refetch, else within ttl), else from
 * the IdP; when the IdP fails and this process has no set at all, the last
 * good shared copy of any age serves until the IdP is back. A copy without
 * the wanted kid is passed over when a refetch is allowed. Entered and left
 * with the lock held and fetching set; the lock is dropped meanwhile. */
static void run_fetch(sk_keystore *s, int64_t now, int for_kid, const char *kid)
{
    char err[160] = "";
    int64_t fetched = now, after = s->cur ? s->installed : 0;
    int have = s->cur != NULL, fresh_copy = 0, fallback = 0;
    sk_keyset *ks, *old = NULL;

    pthread_mutex_unlock(&s->mu);
    ks = shared_load(s, now, after, for_kid ? s->min_refetch : s->ttl - 1, &fetched);
    if (ks && kid && !sk_keyset_find(ks, kid, NULL) && now - fetched >= s->min_refetch) {
        sk_keyset_free(ks);                  /* lacks the key, and a refetch is allowed */
        ks = NULL;
    }
    fresh_copy = ks != NULL;
    if (!ks) {
        fetched = now;
        ks = network_fetch(s, now, err, sizeof err);
        if (!ks && !have)
            fallback = (ks = shared_load(s, now, 0, -1, &fetched)) != NULL;
    }
    pthread_mutex_lock(&s->mu);
    if (ks)
        old = install(s, ks, fetched);
    if (ks && !fallback) {
        s->fetches += !fresh_copy;
        s->last_ok = fetched;
        s->last_error[0] = '\0';
    } else {
        s->failures++;                       /* keep serving the old (or last good) set */
        set_err(s->last_error, sizeof s->last_error, err);
    }
    s->shared_loads += fresh_copy || fallback;
    s->fetching = 0;
    pthread_cond_broadcast(&s->cv);
    sk_keyset_free(old);                     /* readers hold their own refs */
}

static void begin_fetch(sk_keystore *s)
{
    s->fetching = 1;
    s->attempted = 1;
    s->last_attempt = sk_mono_now(s);
}

typedef struct {
    sk_keystore *s;
    int64_t now;
} bg_arg;

static void *background_fetch(void *p)
{
    bg_arg a = *(bg_arg *)p;
    free(p);
    pthread_mutex_lock(&a.s->mu);
    run_fetch(a.s, a.now, 0, NULL);
    pthread_mutex_unlock(&a.s->mu);
    return NULL;
}

/* A stale set still has the key: serve it now and refresh it on a thread of
 * its own, so no request waits for the IdP (lock held, fetching set). Falls
 * back to fetching in this thread if no thread can be made. */
static void refresh_in_background(sk_keystore *s, int64_t now)
{
    pthread_t th;
    pthread_attr_t at;
    bg_arg *a = malloc(sizeof *a);
    int started = 0;
    if (a && !pthread_attr_init(&at)) {
        *a = (bg_arg){ s, now };
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        started = !pthread_create(&th, &at, background_fetch, a);
        pthread_attr_destroy(&at);
    }
    if (started) {
        s->background++;
        return;
    }
    free(a);
    run_fetch(s, now, 0, NULL);
}

/* A fetch may start: never one twice within min_refetch seconds of the
 * monotonic clock. Not the caller's now: a stale one (a request's arrival
 * time, a thread that read the clock before another fetched) must not open
 * the spacing, nor a wall clock stepped back shut it. */
static int may_fetch(const sk_keystore *s)
{
    return !s->attempted || sk_mono_now(s) - s->last_attempt >= s->min_refetch;
}

/* Past ttl by the wall clock (shared copies carry wall times), or since it
 * was installed by the monotonic one (the wall clock may have stepped back). */
static int is_stale(const sk_keystore *s, int64_t now)
{
    return now - s->installed >= s->ttl || sk_mono_now(s) - s->installed_mono >= s->ttl;
}

EVP_PKEY *sk_keystore_get(sk_keystore *s, const char *kid, int64_t now,
                          const sk_keyset **held, unsigned *alg_out, int *why)
{
    int tried = 0;                           /* this call saw a fetch end */
    int dummy;
    EVP_PKEY *key = NULL;

    if (!why)
        why = &dummy;
    *held = NULL;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        sk_keyset *ks = s->cur;
        key = ks ? sk_keyset_find(ks, kid, alg_out) : NULL;
        if (key) {
            if (!s->fetching && is_stale(s, now) && may_fetch(s)) {
                begin_fetch(s);              /* stale but usable: serve it, refresh aside */
                refresh_in_background(s, now);
                key = sk_keyset_find(s->cur, kid, alg_out);
                ks = s->cur;
                if (!key)
                    continue;                /* the fallback fetch dropped the key */
            }
            keyset_ref(ks);
            *held = ks;
            break;
        }
        if (ks && !kid && ks->n > 1) {
            *why = SK_JWT_E_KID_MISSING;     /* a refetch would not help */
            break;
        }
        if (s->fetching) {
            pthread_cond_wait(&s->cv, &s->mu);
            tried = 1;
            continue;
        }
        if (!tried && may_fetch(s)) {
            begin_fetch(s);
            run_fetch(s, now, ks != NULL, kid);
            tried = 1;
            continue;
        }
        *why = ks ? SK_JWT_E_KID_UNKNOWN : SK_JWT_E_NO_KEYS;
        key = NULL;
        break;
    }
    pthread_mutex_unlock(&s->mu);
    return key;
}

void sk_keystore_release(sk_keystore *s, const sk_keyset *held)
{
    (void)s;
    sk_keyset_free((sk_keyset *)held);
}

void sk_keystore_put(sk_keystore *s, sk_keyset *ks, int64_t now)
{
    sk_keyset *old;
    pthread_mutex_lock(&s->mu);
    old = install(s, ks, now);
    pthread_mutex_unlock(&s->mu);
    sk_keyset_free(old);
}

void sk_keystore_get_stats(sk_keystore *s, sk_keystore_stats *out)
{
    pthread_mutex_lock(&s->mu);
    out->fetches = s->fetches;
    out->fetch_failures = s->failures;
    out->background_refreshes = s->background;
    out->shared_loads = s->shared_loads;
    out->keys = sk_keyset_size(s->cur);
    out->last_fetch = s->last_ok;
    memcpy(out->last_error, s->last_error, sizeof out->last_error);
    pthread_mutex_unlock(&s->mu);
}
