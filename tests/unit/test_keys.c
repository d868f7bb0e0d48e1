/* SPDX-License-Identifier: Apache-2.0 */
/* test_keys.c: JWKS parsing and the key store. */
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "sk_jwt.h"
#include "sk_keys.h"
#include "sk_test.h"
#include "sk_test_keys.h"

static sk_keyset *parse_str(const char *doc, char *err, size_t errlen)
{
    return sk_keyset_parse(doc, strlen(doc), err, errlen);
}

/* A JWKS document from a NULL-terminated list of JWK strings (freed here). */
static char *jwks_of(char *first, ...)
{
    char *list[32];
    int n = 0;
    va_list ap;
    va_start(ap, first);
    for (char *j = first; j; j = va_arg(ap, char *))
        list[n++] = j;
    va_end(ap);
    char *doc = skt_jwks(n, list);
    for (int i = 0; i < n; i++)
        free(list[i]);
    return doc;
}

SK_TEST(keys_parse_rsa_and_ec)
{
    char err[128] = "";
    char *doc = jwks_of(skt_jwk(skt_rsa(0), "snk_rsa", "RS256", "\"use\":\"sig\""),
                        skt_jwk(skt_ec(0), "snk_ec", "ES256", NULL),
                        skt_jwk(skt_rsa(1), "snk_plain", NULL, NULL), NULL);
    sk_keyset *ks = parse_str(doc, err, sizeof err);
    unsigned alg = 99;
    SK_REQUIRE(ks != NULL);
    SK_CHECK_INT(sk_keyset_size(ks), 3);
    EVP_PKEY *k = sk_keyset_find(ks, "snk_rsa", &alg);
    SK_REQUIRE(k != NULL);
    SK_CHECK_INT(alg, SK_ALG_RS256);
    SK_CHECK(EVP_PKEY_eq(k, skt_rsa(0)) == 1);
    SK_CHECK_INT(EVP_PKEY_get_base_id(k), EVP_PKEY_RSA);
    k = sk_keyset_find(ks, "snk_ec", &alg);
    SK_REQUIRE(k != NULL);
    SK_CHECK_INT(alg, SK_ALG_ES256);
    SK_CHECK_INT(EVP_PKEY_get_base_id(k), EVP_PKEY_EC);
    SK_CHECK(EVP_PKEY_eq(k, skt_ec(0)) == 1);
    k = sk_keyset_find(ks, "snk_plain", &alg);
    SK_CHECK(k != NULL && alg == 0);
    SK_CHECK(sk_keyset_find(ks, "snk_nope", NULL) == NULL);
    SK_CHECK(sk_keyset_find(ks, "", NULL) == NULL);
    SK_CHECK(sk_keyset_find(ks, NULL, NULL) == NULL);   /* several keys: kid needed */
    sk_keyset_free(ks);
    free(doc);
}

SK_TEST(keys_single_key_without_kid)
{
    char *doc = jwks_of(skt_jwk(skt_rsa(0), NULL, NULL, NULL), NULL);
    sk_keyset *ks = parse_str(doc, NULL, 0);
    SK_REQUIRE(ks != NULL);
    SK_CHECK(sk_keyset_find(ks, NULL, NULL) != NULL);
    SK_CHECK(sk_keyset_find(ks, "any", NULL) == NULL);  /* a kid must match a kid */
    sk_keyset_free(ks);
    free(doc);
}

SK_TEST(keys_skip_bad_keys)
{
    EVP_PKEY *small = skt_rsa_new(1024);
    char *n1024 = skt_jwk(small, "small", NULL, NULL);
    EVP_PKEY_free(small);
    char *good = skt_jwk(skt_rsa(0), "good", NULL, NULL);
    char *doc = jwks_of(
        skt_jwk(skt_rsa(1), "enc", NULL, "\"use\":\"enc\""),
        skt_jwk(skt_rsa(1), "use-num", NULL, "\"use\":1"),
        skt_jwk(skt_rsa(1), "ops-enc", NULL, "\"key_ops\":[\"encrypt\"]"),
        skt_jwk(skt_rsa(1), "rs512", "RS512", NULL),
        skt_jwk(skt_rsa(1), "rsa-es", "ES256", NULL),
        skt_jwk(skt_ec(0), "ec-rs", "RS256", NULL),
        skt_jwk(skt_rsa(1), "hs", "HS256", NULL),
        n1024,
        strdup("{\"kid\":\"oct\",\"kty\":\"oct\",\"k\":\"c2VjcmV0\"}"),
        strdup("{\"kid\":\"okp\",\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}"),
        strdup("{\"kid\":\"pad\",\"kty\":\"RSA\",\"n\":\"AQAB==\",\"e\":\"AQAB\"}"),
        strdup("{\"kid\":\"no-n\",\"kty\":\"RSA\",\"e\":\"AQAB\"}"),
        strdup("{\"kid\":\"p384\",\"kty\":\"EC\",\"crv\":\"P-384\",\"x\":\"AAAA\",\"y\":\"AAAA\"}"),
        /* a point off the curve: x = y = 1 */
        strdup("{\"kid\":\"offcurve\",\"kty\":\"EC\",\"crv\":\"P-256\","
               "\"x\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE\","
               "\"y\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE\"}"),
        strdup("{\"kid\":7,\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\"}"),
        strdup("{\"kid\":\"nokty\"}"),
        strdup("[1,2]"), strdup("\"str\""), strdup("null"),
        good, NULL);
    char err[128];
    sk_keyset *ks = parse_str(doc, err, sizeof err);
    SK_REQUIRE(ks != NULL);
    SK_CHECK_INT(sk_keyset_size(ks), 1);
    SK_CHECK(sk_keyset_find(ks, "good", NULL) != NULL);
    SK_CHECK(sk_keyset_find(ks, "small", NULL) == NULL);
    SK_CHECK(sk_keyset_find(ks, "offcurve", NULL) == NULL);
    sk_keyset_free(ks);
    free(doc);
}

SK_TEST(keys_duplicate_kid_keeps_first)
{
    char *doc = jwks_of(skt_jwk(skt_rsa(1), "dup", NULL, NULL),
                        skt_jwk(skt_rsa(0), "other", NULL, NULL),
                        skt_jwk(skt_rsa(0), "dup", NULL, NULL), NULL);
    sk_keyset *ks = parse_str(doc, NULL, 0);
    SK_REQUIRE(ks != NULL);
    SK_CHECK_INT(sk_keyset_size(ks), 2);
    EVP_PKEY *k = sk_keyset_find(ks, "dup", NULL);
    SK_CHECK(k && EVP_PKEY_eq(k, skt_rsa(1)) == 1);
    sk_keyset_free(ks);
    free(doc);
}

SK_TEST(keys_refuse_documents)
{
    char err[128];
    static const char *bad[] = {
        "", "not json", "{", "[]", "{}", "{\"keys\":{}}", "{\"keys\":\"x\"}", "{\"keys\":[]}",
        "{\"keys\":[{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"}]}", "null", "{\"keys\":[]} trailing",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err[0] = '\0';
        sk_keyset *ks = parse_str(bad[i], err, sizeof err);
        SK_CHECK(ks == NULL);
        SK_CHECK(err[0] != '\0');
        sk_keyset_free(ks);
    }
    /* Over 1 MiB: refused before parsing. */
    size_t big = 1024 * 1024 + 1;
    char *doc = malloc(big + 1);
    memset(doc, ' ', big);
    memcpy(doc, "{\"keys\":[]}", 11);
    doc[big] = '\0';
    SK_CHECK(sk_keyset_parse(doc, big, err, sizeof err) == NULL);
    SK_CHECK(strstr(err, "1 MiB") != NULL);
    free(doc);
    /* Trailing white space is fine; the length bounds the parse (no NUL needed). */
    char *good = jwks_of(skt_jwk(skt_rsa(0), "k", NULL, NULL), NULL);
    char *padded = skt_fmt("%s \r\n", good);
    sk_keyset *ks = parse_str(padded, err, sizeof err);
    SK_CHECK(ks != NULL);
    sk_keyset_free(ks);
    free(padded);
    ks = sk_keyset_parse(good, strlen(good) - 1, err, sizeof err);   /* cut "}" */
    SK_CHECK(ks == NULL);
    free(good);
}

/* ---- the key store, with a fake IdP ---- */

typedef struct {
    pthread_mutex_t mu;
    int calls, fail, delay_ms;
    char *doc;
} fake_idp;

static apr_status_t fake_fetch(void *ctx, char **body, size_t *len, char *err, size_t errlen)
{
    fake_idp *f = ctx;
    int fail;
    char *doc;
    pthread_mutex_lock(&f->mu);
    f->calls++;
    fail = f->fail;
    doc = f->doc ? strdup(f->doc) : NULL;
    pthread_mutex_unlock(&f->mu);
    if (f->delay_ms)
        usleep((useconds_t)f->delay_ms * 1000);
    if (fail || !doc) {
        free(doc);
        snprintf(err, errlen, "connection refused");
        return APR_ECONNREFUSED;
    }
    *body = doc;
    *len = strlen(doc);
    return APR_SUCCESS;
}

static void idp_init(fake_idp *f, char *doc)
{
    memset(f, 0, sizeof *f);
    pthread_mutex_init(&f->mu, NULL);
    f->doc = doc;
}

static void idp_done(fake_idp *f)
{
    free(f->doc);
    pthread_mutex_destroy(&f->mu);
}

static int idp_calls(fake_idp *f)
{
    pthread_mutex_lock(&f->mu);
    int n = f->calls;
    pthread_mutex_unlock(&f->mu);
    return n;
}

/* The IdP serves doc (taken) from now on. */
static void idp_set_doc(fake_idp *f, char *doc)
{
    pthread_mutex_lock(&f->mu);
    free(f->doc);
    f->doc = doc;
    pthread_mutex_unlock(&f->mu);
}

/* The stores' monotonic clock, by hand (read by background fetches too). */
static int64_t fake_mono;

static int64_t fake_clock(void *ctx)
{
    (void)ctx;
    return __atomic_load_n(&fake_mono, __ATOMIC_RELAXED);
}

static sk_keystore *store_new(sk_jwks_fetch_fn fetch, void *ctx, int ttl, int min_refetch)
{
    sk_keystore *s = sk_keystore_create(fetch, ctx, ttl, min_refetch);
    if (s)
        sk_keystore_set_clock(s, fake_clock, NULL);
    return s;
}

/* 1 if kid resolves at wall time now, monotonic time mono (releasing the
 * set), else 0 with *why. */
static int has_key_at(sk_keystore *s, const char *kid, int64_t now, int64_t mono, int *why)
{
    const sk_keyset *held = NULL;
    int w = 0;
    __atomic_store_n(&fake_mono, mono, __ATOMIC_RELAXED);
    EVP_PKEY *k = sk_keystore_get(s, kid, now, &held, NULL, &w);
    if (why)
        *why = k ? 0 : w;
    if (k)
        sk_keystore_release(s, held);
    return k != NULL;
}

/* A caller whose now is current: both clocks advance together. */
static int has_key(sk_keystore *s, const char *kid, int64_t now, int *why)
{
    return has_key_at(s, kid, now, now, why);
}

#define T0 1700000000

SK_TEST(keystore_lazy_fetch_and_ttl)
{
    fake_idp f;
    idp_init(&f, jwks_of(skt_jwk(skt_rsa(0), "k1", NULL, NULL), NULL));
    sk_keystore *s = store_new(fake_fetch, &f, 300, 60);
    sk_keystore_stats st;
    SK_REQUIRE(s != NULL);
    SK_CHECK_INT(idp_calls(&f), 0);              /* never at create time */
    SK_CHECK(has_key(s, "k1", T0, NULL));
    SK_CHECK_INT(idp_calls(&f), 1);
    SK_CHECK(has_key(s, "k1", T0 + 299, NULL));
    SK_CHECK_INT(idp_calls(&f), 1);
    SK_CHECK(has_key(s, "k1", T0 + 300, NULL));  /* TTL over: served, refetched aside */
    sk_keystore_wait_idle(s);
    SK_CHECK_INT(idp_calls(&f), 2);
    sk_keystore_get_stats(s, &st);
    SK_CHECK_INT(st.fetches, 2);
    SK_CHECK_INT(st.fetch_failures, 0);
    SK_CHECK_INT(st.keys, 1);
    SK_CHECK_INT(st.last_fetch, T0 + 300);
    SK_CHECK_STR(st.last_error, "");
    sk_keystore_destroy(s);
    idp_done(&f);
}

SK_TEST(keystore_unknown_kid_refetch_rate_limited)
{
    fake_idp f;
    int why = 0;
    idp_init(&f, jwks_of(skt_jwk(skt_rsa(0), "k1", NULL, NULL), NULL));
    sk_keystore *s = store_new(fake_fetch, &f, 3600, 60);
    SK_CHECK(has_key(s, "k1", T0, NULL));
    SK_CHECK_INT(idp_calls(&f), 1);
    /* Within min_refetch of the last fetch: no new fetch for an unknown kid. */
    for (int i = 0; i < 50; i++) {
        SK_CHECK(!has_key(s, "k2", T0 + i, &why));
        SK_CHECK_INT(why, SK_JWT_E_KID_UNKNOWN);
    }
    SK_CHECK_INT(idp_calls(&f), 1);
    /* The IdP rotates its keys: the next allowed refetch finds k2. */
    idp_set_doc(&f, jwks_of(skt_jwk(skt_rsa(1), "k2", NULL, NULL), skt_jwk(skt_rsa(0), "k1", NULL, NULL), NULL));
    SK_CHECK(!has_key(s, "k2", T0 + 59, &why));
    SK_CHECK_INT(idp_calls(&f), 1);
    SK_CHECK(has_key(s, "k2", T0 + 60, &why));
    SK_CHECK_INT(idp_calls(&f), 2);
    SK_CHECK(!has_key(s, "k3", T0 + 61, &why));
    SK_CHECK(!has_key(s, "k3", T0 + 119, &why));
    SK_CHECK_INT(idp_calls(&f), 2);
    SK_CHECK(!has_key(s, "k3", T0 + 120, &why));  /* one more try, still unknown */
    SK_CHECK_INT(idp_calls(&f), 3);
    SK_CHECK_INT(why, SK_JWT_E_KID_UNKNOWN);
    /* No kid with two keys: refused at once, no fetch. */
    SK_CHECK(!has_key(s, NULL, T0 + 500, &why));
    SK_CHECK_INT(why, SK_JWT_E_KID_MISSING);
    SK_CHECK_INT(idp_calls(&f), 3);
    sk_keystore_destroy(s);
    idp_done(&f);
}

/* A client trickling its headers brings a now tens of seconds stale (the
 * request's arrival). Unknown kids with now alternating stale and current
 * once made a fetch each; the spacing holds on the monotonic clock. */
SK_TEST(keystore_stale_now_cannot_force_refetches)
{
    fake_idp f;
    int why = 0;
    idp_init(&f, jwks_of(skt_jwk(skt_rsa(0), "k1", NULL, NULL), NULL));
    sk_keystore *s = store_new(fake_fetch, &f, 3600, 10);
    SK_CHECK(has_key_at(s, "k1", T0, 1000, NULL));
    SK_CHECK_INT(idp_calls(&f), 1);
    /* 500 requests in 25 s, every other one 20, 40, ... 100 s stale. */
    for (int i = 0; i < 500; i++) {
        int64_t mono = 1000 + i / 20, now = T0 + i / 20;
        if (i % 2)
            now -= 20 * (1 + (i / 2) % 5);
        SK_CHECK(!has_key_at(s, "kx", now, mono, &why));
        SK_CHECK_INT(why, SK_JWT_E_KID_UNKNOWN);
    }
    SK_CHECK_INT(idp_calls(&f), 3);                  /* at monotonic 1000, 1010, 1020 */
    /* A thread that read now just before another one fetched: no second fetch. */
    SK_CHECK(!has_key_at(s, "ky", T0 + 30, 1030, &why));
    SK_CHECK(!has_key_at(s, "ky", T0 + 29, 1030, &why));
    SK_CHECK_INT(idp_calls(&f), 4);
    sk_keystore_destroy(s);
    idp_done(&f);
}

/* The wall clock steps back an hour: unknown kids still refetch min_refetch
 * apart (neither at once nor an hour later), and a set fetched before the
 * step still ages out after ttl. */
SK_TEST(keystore_wall_clock_step_back)
{
    fake_idp f;
    sk_keystore_stats st;
    int why = 0;
    const int64_t back = T0 - 3600;                  /* the wall clock after the step */
    idp_init(&f, jwks_of(skt_jwk(skt_rsa(0), "k1", NULL, NULL), NULL));
    sk_keystore *s = store_new(fake_fetch, &f, 300, 10);
    SK_CHECK(has_key_at(s, "k1", T0, 1000, NULL));
    SK_CHECK(!has_key_at(s, "k2", back + 1, 1001, &why));
    SK_CHECK(!has_key_at(s, "k2", back + 9, 1009, &why));
    SK_CHECK_INT(idp_calls(&f), 1);
    idp_set_doc(&f, jwks_of(skt_jwk(skt_rsa(1), "k2", NULL, NULL),
                            skt_jwk(skt_rsa(0), "k1", NULL, NULL), NULL));
    SK_CHECK(has_key_at(s, "k2", back + 10, 1010, &why));     /* the rotation is seen */
    SK_CHECK_INT(idp_calls(&f), 2);
    SK_CHECK(!has_key_at(s, "k3", back + 15, 1015, &why));
    SK_CHECK_INT(idp_calls(&f), 2);
    SK_CHECK(!has_key_at(s, "k3", back + 20, 1020, &why));
    SK_CHECK_INT(idp_calls(&f), 3);
    SK_CHECK_INT(why, SK_JWT_E_KID_UNKNOWN);
    sk_keystore_destroy(s);

    /* A set fetched just before the step: refreshed ttl after, not ttl + 1 h. */
    s = store_new(fake_fetch, &f, 300, 10);
    SK_CHECK(has_key_at(s, "k1", T0, 2000, NULL));
    SK_CHECK(has_key_at(s, "k1", back + 299, 2299, NULL));
    sk_keystore_wait_idle(s);
    SK_CHECK_INT(idp_calls(&f), 4);
    SK_CHECK(has_key_at(s, "k1", back + 300, 2300, NULL));    /* served, refreshed aside */
    sk_keystore_wait_idle(s);
    SK_CHECK_INT(idp_calls(&f), 5);
    sk_keystore_get_stats(s, &st);
    SK_CHECK_INT(st.last_fetch, back + 300);
    SK_CHECK(has_key_at(s, "k1", back + 301, 2301, NULL));    /* fresh by both clocks */
    sk_keystore_wait_idle(s);
    SK_CHECK_INT(idp_calls(&f), 5);
    sk_keystore_destroy(s);
    idp_done(&f);
}

SK_TEST(keystore_failed_fetch_keeps_old_keys)
{
    fake_idp f;
    sk_keystore_stats st;
    int why = 0;
    idp_init(&f, jwks_of(skt_jwk(skt_rsa(0), "k1", NULL, NULL), NULL));
    sk_keystore *s = store_new(fake_fetch, &f, 300, 60);
    SK_CHECK(has_key(s, "k1", T0, NULL));
    f.fail = 1;
    SK_CHECK(has_key(s, "k1", T0 + 400, NULL));  /* stale, fetch fails, old set serves */
    sk_keystore_wait_idle(s);
    SK_CHECK_INT(idp_calls(&f), 2);
    SK_CHECK(has_key(s, "k1", T0 + 401, NULL));  /* failures back off min_refetch */
    sk_keystore_wait_idle(s);
    SK_CHECK_INT(idp_calls(&f), 2);
    SK_CHECK(has_key(s, "k1", T0 + 460, NULL));
    sk_keystore_wait_idle(s);
    SK_CHECK_INT(idp_calls(&f), 3);
    sk_keystore_get_stats(s, &st);
    SK_CHECK_INT(st.fetches, 1);
    SK_CHECK_INT(st.fetch_failures, 2);
    SK_CHECK_INT(st.last_fetch, T0);
    SK_CHECK_STR(st.last_error, "connection refused");
    /* A document that does not parse is a failure too. */
    f.fail = 0;
    idp_set_doc(&f, strdup("<html>502 Bad Gateway</html>"));
    SK_CHECK(has_key(s, "k1", T0 + 520, NULL));
    sk_keystore_wait_idle(s);
    SK_CHECK_INT(idp_calls(&f), 4);
    sk_keystore_get_stats(s, &st);
    SK_CHECK_STR(st.last_error, "JWKS document is not JSON");
    sk_keystore_destroy(s);

    /* Nothing ever fetched: NO_KEYS. */
    f.fail = 1;
    s = store_new(fake_fetch, &f, 300, 60);
    SK_CHECK(!has_key(s, "k1", T0, &why));
    SK_CHECK_INT(why, SK_JWT_E_NO_KEYS);
    sk_keystore_destroy(s);
    s = store_new(NULL, NULL, 300, 60);
    SK_CHECK(!has_key(s, "k1", T0, &why));
    SK_CHECK_INT(why, SK_JWT_E_NO_KEYS);
    sk_keystore_destroy(s);
    idp_done(&f);
}

typedef struct {
    sk_keystore *s;
    pthread_barrier_t *go;
    const char *kid;
    int found, why;
} miss_arg;

static void *miss_thread(void *p)
{
    miss_arg *a = p;
    pthread_barrier_wait(a->go);
    a->found = has_key(a->s, a->kid, T0 + 100, &a->why);
    return NULL;
}

static int run_8(sk_keystore *s, const char *kid, miss_arg *args)
{
    pthread_t th[8];
    pthread_barrier_t go;
    int found = 0;
    pthread_barrier_init(&go, NULL, 8);
    for (int i = 0; i < 8; i++) {
        args[i] = (miss_arg){s, &go, kid, 0, 0};
        pthread_create(&th[i], NULL, miss_thread, &args[i]);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        found += args[i].found;
    }
    pthread_barrier_destroy(&go);
    return found;
}

SK_TEST(keystore_concurrent_misses_one_fetch)
{
    fake_idp f;
    miss_arg args[8];
    idp_init(&f, jwks_of(skt_jwk(skt_rsa(0), "k1", NULL, NULL), NULL));
    f.delay_ms = 200;                      /* a slow IdP: everyone piles up */
    sk_keystore *s = store_new(fake_fetch, &f, 3600, 60);
    /* Cold start: 8 threads, one fetch, all find k1. */
    SK_CHECK_INT(run_8(s, "k1", args), 8);
    SK_CHECK_INT(idp_calls(&f), 1);
    sk_keystore_destroy(s);

    /* Warm store, 8 misses on a new kid at once: exactly one refetch. */
    s = store_new(fake_fetch, &f, 3600, 60);
    SK_CHECK(has_key(s, "k1", T0, NULL));
    SK_CHECK_INT(idp_calls(&f), 2);
    idp_set_doc(&f, jwks_of(skt_jwk(skt_rsa(1), "k2", NULL, NULL), NULL));
    SK_CHECK_INT(run_8(s, "k2", args), 8);
    SK_CHECK_INT(idp_calls(&f), 3);
    /* And 8 misses on a kid that stays unknown: one fetch, 8 refusals. */
    SK_CHECK_INT(run_8(s, "k9", args), 0);
    for (int i = 0; i < 8; i++)
        SK_CHECK_INT(args[i].why, SK_JWT_E_KID_UNKNOWN);
    SK_CHECK_INT(idp_calls(&f), 3);        /* T0+100 is within 60 s of the last fetch */
    sk_keystore_destroy(s);
    idp_done(&f);
}

SK_TEST(keystore_held_set_survives_swap)
{
    char *doc1 = jwks_of(skt_jwk(skt_rsa(0), "k1", "RS256", NULL), NULL);
    char *doc2 = jwks_of(skt_jwk(skt_rsa(1), "k2", NULL, NULL), NULL);
    sk_keystore *s = sk_keystore_create(NULL, NULL, 3600, 60);
    const sk_keyset *held = NULL;
    unsigned alg = 0;
    int why;
    sk_keystore_put(s, sk_keyset_parse(doc1, strlen(doc1), NULL, 0), T0);
    EVP_PKEY *k = sk_keystore_get(s, "k1", T0, &held, &alg, &why);
    SK_REQUIRE(k != NULL);
    SK_CHECK_INT(alg, SK_ALG_RS256);
    sk_keystore_put(s, sk_keyset_parse(doc2, strlen(doc2), NULL, 0), T0 + 1);
    /* The old set is still alive for its holder (valgrind would see a use after free). */
    SK_CHECK(EVP_PKEY_eq(k, skt_rsa(0)) == 1);
    SK_CHECK_INT(sk_keyset_size(held), 1);
    sk_keystore_release(s, held);
    SK_CHECK(!has_key(s, "k1", T0 + 2, &why));
    SK_CHECK(has_key(s, "k2", T0 + 2, &why));
    sk_keystore_destroy(s);
    free(doc1);
    free(doc2);
}

/* ---- background refresh and the copy shared between processes ---- */

typedef struct {
    pthread_mutex_t mu;
    char *body;
    int64_t fetched;
    int loads, saves;
} fake_shared;

static apr_status_t shared_load_cb(void *ctx, char **body, size_t *len, int64_t *fetched)
{
    fake_shared *sh = ctx;
    apr_status_t rc = APR_NOTFOUND;
    pthread_mutex_lock(&sh->mu);
    sh->loads++;
    if (sh->body) {
        *body = strdup(sh->body);
        *len = strlen(sh->body);
        *fetched = sh->fetched;
        rc = APR_SUCCESS;
    }
    pthread_mutex_unlock(&sh->mu);
    return rc;
}

static void shared_save_cb(void *ctx, const char *body, size_t len, int64_t fetched)
{
    fake_shared *sh = ctx;
    pthread_mutex_lock(&sh->mu);
    free(sh->body);
    sh->body = strndup(body, len);
    sh->fetched = fetched;
    sh->saves++;
    pthread_mutex_unlock(&sh->mu);
}

static sk_keystore *shared_store(fake_idp *f, fake_shared *sh)
{
    sk_keystore *s = store_new(fake_fetch, f, 300, 60);
    sk_keystore_shared cb = { shared_load_cb, shared_save_cb, sh };
    sk_keystore_set_shared(s, &cb);
    return s;
}

SK_TEST(keystore_stale_set_served_while_slow_refetch_runs)
{
    fake_idp f;
    struct timespec a, b;
    idp_init(&f, jwks_of(skt_jwk(skt_rsa(0), "k1", NULL, NULL), NULL));
    sk_keystore *s = store_new(fake_fetch, &f, 300, 60);
    SK_CHECK(has_key(s, "k1", T0, NULL));
    f.delay_ms = 3000;                           /* the IdP became slow */
    clock_gettime(CLOCK_MONOTONIC, &a);
    SK_CHECK(has_key(s, "k1", T0 + 301, NULL));   /* stale: answered at once */
    SK_CHECK(has_key(s, "k1", T0 + 302, NULL));   /* still one refetch in flight */
    clock_gettime(CLOCK_MONOTONIC, &b);           /* wide margins: valgrind and a loaded CI */
    SK_CHECK((b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000 < 1500);
    sk_keystore_wait_idle(s);
    SK_CHECK_INT(idp_calls(&f), 2);
    sk_keystore_stats st;
    sk_keystore_get_stats(s, &st);
    SK_CHECK_INT(st.background_refreshes, 1);
    SK_CHECK_INT(st.last_fetch, T0 + 301);
    /* A rotation seen by the background refetch is in use afterwards. */
    f.delay_ms = 0;
    idp_set_doc(&f, jwks_of(skt_jwk(skt_rsa(1), "k2", NULL, NULL), NULL));
    SK_CHECK(has_key(s, "k1", T0 + 700, NULL));
    sk_keystore_wait_idle(s);
    SK_CHECK(has_key(s, "k2", T0 + 701, NULL));
    SK_CHECK(!has_key(s, "k1", T0 + 702, NULL));
    sk_keystore_destroy(s);
    idp_done(&f);
}

SK_TEST(keystore_shared_copy_between_processes)
{
    fake_idp f;
    fake_shared sh = { .mu = PTHREAD_MUTEX_INITIALIZER };
    int why = 0;
    sk_keystore_stats st;
    idp_init(&f, jwks_of(skt_jwk(skt_rsa(0), "k1", NULL, NULL), NULL));
    /* The first process fetches and offers its copy. */
    sk_keystore *p1 = shared_store(&f, &sh);
    SK_CHECK(has_key(p1, "k1", T0, NULL));
    SK_CHECK_INT(idp_calls(&f), 1);
    SK_CHECK_INT(sh.saves, 1);
    SK_CHECK_INT(sh.fetched, T0);
    /* A second process within the TTL takes the copy: no call to the IdP. */
    sk_keystore *p2 = shared_store(&f, &sh);
    SK_CHECK(has_key(p2, "k1", T0 + 100, NULL));
    SK_CHECK_INT(idp_calls(&f), 1);
    sk_keystore_get_stats(p2, &st);
    SK_CHECK_INT(st.shared_loads, 1);
    SK_CHECK_INT(st.fetch_failures, 0);
    /* The IdP goes down; a process born after the TTL still validates with
     * the last good copy, and counts the failure. */
    f.fail = 1;
    sk_keystore *p3 = shared_store(&f, &sh);
    SK_CHECK(has_key(p3, "k1", T0 + 5000, &why));
    SK_CHECK_INT(idp_calls(&f), 2);
    sk_keystore_get_stats(p3, &st);
    SK_CHECK_INT(st.fetch_failures, 1);
    SK_CHECK_STR(st.last_error, "connection refused");
    /* It keeps retrying in the background, min_refetch apart, until the IdP is back. */
    SK_CHECK(has_key(p3, "k1", T0 + 5030, NULL));
    sk_keystore_wait_idle(p3);
    SK_CHECK_INT(idp_calls(&f), 2);
    f.fail = 0;
    SK_CHECK(has_key(p3, "k1", T0 + 5060, NULL));
    sk_keystore_wait_idle(p3);
    SK_CHECK_INT(idp_calls(&f), 3);
    SK_CHECK_INT(sh.fetched, T0 + 5060);
    sk_keystore_get_stats(p3, &st);
    SK_CHECK_STR(st.last_error, "");
    /* An unknown kid after another process fetched within min_refetch: its
     * copy is used, not a new call. */
    idp_set_doc(&f, jwks_of(skt_jwk(skt_rsa(1), "k2", NULL, NULL), skt_jwk(skt_rsa(0), "k1", NULL, NULL), NULL));
    SK_CHECK(has_key(p1, "k2", T0 + 6000, NULL));          /* p1 fetches the rotation */
    SK_CHECK_INT(idp_calls(&f), 4);
    SK_CHECK(has_key(p2, "k2", T0 + 6010, NULL));          /* p2 reads p1's copy */
    SK_CHECK_INT(idp_calls(&f), 4);
    /* A new process whose first token has a kid the copy lacks: the copy is
     * older than min_refetch, so it asks the IdP. */
    idp_set_doc(&f, jwks_of(skt_jwk(skt_rsa(2), "k3", NULL, NULL), NULL));
    sk_keystore *p5 = shared_store(&f, &sh);
    SK_CHECK(has_key(p5, "k3", T0 + 6100, NULL));
    SK_CHECK_INT(idp_calls(&f), 5);
    sk_keystore_destroy(p5);
    /* No copy and no IdP: no keys. */
    sk_keystore_destroy(p1);
    sk_keystore_destroy(p2);
    sk_keystore_destroy(p3);
    free(sh.body);
    sh.body = NULL;
    f.fail = 1;
    sk_keystore *p4 = shared_store(&f, &sh);
    SK_CHECK(!has_key(p4, "k1", T0, &why));
    SK_CHECK_INT(why, SK_JWT_E_NO_KEYS);
    sk_keystore_destroy(p4);
    idp_done(&f);
}
