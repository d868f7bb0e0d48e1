/* SPDX-License-Identifier: Apache-2.0 */
/* test_validate.c: the validator's result cache: hits, expiry, bounds,
 * eviction, threads and reference counts. */
#include <pthread.h>
#include <stdlib.h>

#include "sk_jwt.h"
#include "sk_keys.h"
#include "sk_test.h"
#include "sk_test_keys.h"

#define NOW 1700000000
#define ISS "https://acme.scalekit.dev"
#define HDR "{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"k1\"}"

static const char *const auds[] = {"skc_client1"};

static sk_policy vpolicy(int check_exp)
{
    sk_policy p = {ISS, auds, 1, SK_ALG_RS256, 30, check_exp, 0, 0, NULL, 0};
    return p;
}

static sk_keystore *vstore(void)
{
    char *jwk = skt_jwk(skt_rsa(0), "k1", "RS256", NULL);
    char *doc = skt_jwks(1, &jwk);
    sk_keystore *s = sk_keystore_create(NULL, NULL, 1000000000, 60);
    sk_keystore_put(s, sk_keyset_parse(doc, strlen(doc), NULL, 0), NOW);
    free(jwk);
    free(doc);
    return s;
}

/* A token for sub usr_<n> expiring at exp (no exp when exp == 0). */
static char *tok(int n, int64_t exp)
{
    char *pay = exp ? skt_fmt("{\"iss\":\"" ISS "\",\"aud\":\"skc_client1\",\"sub\":\"usr_%d\","
                              "\"exp\":%lld}", n, (long long)exp)
                    : skt_fmt("{\"iss\":\"" ISS "\",\"aud\":\"skc_client1\",\"sub\":\"usr_%d\"}", n);
    char *t = skt_sign(skt_rsa(0), "RS256", HDR, pay);
    free(pay);
    return t;
}

static sk_validator_stats stats(sk_validator *v)
{
    sk_validator_stats st;
    sk_validator_get_stats(v, &st);
    return st;
}

/* Validate and drop the claims; returns the result code. */
static sk_jwt_err check(sk_validator *v, const char *t, int64_t now)
{
    sk_claims *c = NULL;
    sk_jwt_err rc = sk_validate(v, t, strlen(t), now, &c);
    sk_claims_unref(c);
    return rc;
}

SK_TEST(validate_cache_hit_same_claims)
{
    sk_keystore *s = vstore();
    sk_policy p = vpolicy(1);
    sk_validator *v = sk_validator_create(&p, s, 16);
    sk_claims *a = NULL, *b = NULL;
    char *t = tok(1, NOW + 300);

    SK_CHECK_INT(sk_validate(v, t, strlen(t), NOW, &a), SK_JWT_OK);
    SK_CHECK_INT(sk_validate(v, t, strlen(t), NOW + 1, &b), SK_JWT_OK);
    SK_CHECK(a != NULL && a == b);              /* one claims object, shared */
    SK_CHECK_INT(a->refs, 3);                   /* two callers + the cache */
    /* Its payload is parsed for Require rules once, not per request: every
     * hit hands out the same tree, freed with the claims (valgrind watches). */
    const cJSON *ta = sk_claims_tree(a);
    SK_REQUIRE(ta != NULL);
    SK_CHECK(sk_claims_tree(b) == ta);
    SK_CHECK_STR(cJSON_GetObjectItem(ta, "sub")->valuestring, "usr_1");
    SK_CHECK_INT(cJSON_GetObjectItem(ta, "exp")->valueint, NOW + 300);
    SK_CHECK(sk_claims_tree(NULL) == NULL);
    sk_validator_stats st = stats(v);
    SK_CHECK_INT(st.validations, 2);
    SK_CHECK_INT(st.cache_hits, 1);
    SK_CHECK_INT(st.cache_entries, 1);
    sk_claims_unref(a);
    sk_claims_unref(b);

    /* One byte different (same hash bucket or not): a separate, failing token. */
    char *u = strdup(t);
    u[strlen(u) - 5] = u[strlen(u) - 5] == 'A' ? 'B' : 'A';
    SK_CHECK(check(v, u, NOW) != SK_JWT_OK);
    /* A prefix of a cached token is not that token. */
    SK_CHECK(check(v, u, NOW) != SK_JWT_OK);
    sk_claims *c = NULL;
    SK_CHECK(sk_validate(v, t, strlen(t) - 1, NOW, &c) != SK_JWT_OK && c == NULL);
    st = stats(v);
    SK_CHECK_INT(st.cache_hits, 1);
    SK_CHECK_INT(st.cache_entries, 1);          /* failures are not cached */
    SK_CHECK_INT(st.failures[SK_JWT_E_SIGNATURE], 2);
    SK_CHECK_INT(st.failures[SK_JWT_E_BASE64], 1);         /* 341 chars: len % 4 == 1 */
    free(u);
    free(t);
    sk_validator_destroy(v);
    sk_keystore_destroy(s);
}

SK_TEST(validate_cached_entry_expires)
{
    sk_keystore *s = vstore();
    sk_policy p = vpolicy(1);
    sk_validator *v = sk_validator_create(&p, s, 16);
    sk_claims *c = NULL;
    char *t = tok(2, NOW + 300);

    SK_CHECK_INT(check(v, t, NOW), SK_JWT_OK);
    SK_CHECK_INT(check(v, t, NOW + 329), SK_JWT_OK);          /* within leeway */
    SK_CHECK_INT(sk_validate(v, t, strlen(t), NOW + 330, &c), SK_JWT_E_EXPIRED);
    SK_REQUIRE(c != NULL);                                     /* still told who */
    SK_CHECK_STR(c->sub, "usr_2");
    sk_claims_unref(c);
    sk_validator_stats st = stats(v);
    SK_CHECK_INT(st.cache_hits, 2);                            /* both from the cache */
    SK_CHECK_INT(st.failures[SK_JWT_E_EXPIRED], 1);
    free(t);
    sk_validator_destroy(v);
    sk_keystore_destroy(s);
}

SK_TEST(validate_bounded_with_eviction)
{
    sk_keystore *s = vstore();
    sk_policy p = vpolicy(1);
    sk_validator *v = sk_validator_create(&p, s, 4);
    char *t[10];
    for (int i = 0; i < 10; i++) {
        t[i] = tok(100 + i, NOW + 300);
        SK_CHECK_INT(check(v, t[i], NOW), SK_JWT_OK);
    }
    sk_validator_stats st = stats(v);
    SK_CHECK_INT(st.cache_entries, 4);
    SK_CHECK_INT(st.evictions, 6);
    /* The newest four are cached, the oldest went first. */
    for (int i = 6; i < 10; i++)
        SK_CHECK_INT(check(v, t[i], NOW), SK_JWT_OK);
    SK_CHECK_INT(stats(v).cache_hits, 4);
    SK_CHECK_INT(check(v, t[0], NOW), SK_JWT_OK);             /* a miss, then cached */
    SK_CHECK_INT(stats(v).cache_hits, 4);
    SK_CHECK_INT(stats(v).cache_entries, 4);
    for (int i = 0; i < 10; i++)
        free(t[i]);
    sk_validator_destroy(v);
    sk_keystore_destroy(s);
}

SK_TEST(validate_eviction_prefers_expired_and_unused)
{
    sk_keystore *s = vstore();
    sk_policy p = vpolicy(1);
    sk_validator *v = sk_validator_create(&p, s, 4);
    char *a = tok(1, NOW + 3000), *b = tok(2, NOW + 10), *c = tok(3, NOW + 3000);
    char *d = tok(4, NOW + 3000), *e = tok(5, NOW + 3000), *f = tok(6, NOW + 3000);

    SK_CHECK_INT(check(v, a, NOW), SK_JWT_OK);
    SK_CHECK_INT(check(v, b, NOW), SK_JWT_OK);
    SK_CHECK_INT(check(v, c, NOW), SK_JWT_OK);
    SK_CHECK_INT(check(v, d, NOW), SK_JWT_OK);
    SK_CHECK_INT(check(v, a, NOW), SK_JWT_OK);                 /* a is in use */
    /* Full. At NOW+100 b has expired: a (oldest, but hit) is spared, b goes. */
    SK_CHECK_INT(check(v, e, NOW + 100), SK_JWT_OK);
    uint64_t hits = stats(v).cache_hits;
    SK_CHECK_INT(check(v, a, NOW + 100), SK_JWT_OK);
    SK_CHECK_INT(check(v, c, NOW + 100), SK_JWT_OK);
    SK_CHECK_INT(check(v, d, NOW + 100), SK_JWT_OK);
    SK_CHECK_INT(check(v, e, NOW + 100), SK_JWT_OK);
    SK_CHECK_INT(stats(v).cache_hits, hits + 4);
    /* Everyone was hit: the next insert still evicts exactly one. */
    SK_CHECK_INT(check(v, f, NOW + 100), SK_JWT_OK);
    SK_CHECK_INT(stats(v).cache_entries, 4);
    SK_CHECK_INT(stats(v).evictions, 2);
    free(a); free(b); free(c); free(d); free(e); free(f);
    sk_validator_destroy(v);
    sk_keystore_destroy(s);
}

SK_TEST(validate_claims_outlive_eviction)
{
    sk_keystore *s = vstore();
    sk_policy p = vpolicy(1);
    sk_validator *v = sk_validator_create(&p, s, 1);
    sk_claims *held = NULL;
    char *t1 = tok(7, NOW + 300), *t2 = tok(8, NOW + 300);
    SK_CHECK_INT(sk_validate(v, t1, strlen(t1), NOW, &held), SK_JWT_OK);
    SK_CHECK_INT(check(v, t2, NOW), SK_JWT_OK);                /* evicts t1 */
    SK_CHECK_INT(stats(v).evictions, 1);
    SK_REQUIRE(held != NULL);
    SK_CHECK_INT(held->refs, 1);                               /* ours alone now */
    SK_CHECK_STR(held->sub, "usr_7");
    sk_validator_destroy(v);                                   /* even past the cache */
    SK_CHECK_STR(held->sub, "usr_7");
    sk_claims_unref(held);
    free(t1);
    free(t2);
    sk_keystore_destroy(s);
}

SK_TEST(validate_no_exp_policy)
{
    sk_keystore *s = vstore();
    sk_policy p = vpolicy(0);
    sk_validator *v = sk_validator_create(&p, s, 8);
    char *old = tok(9, NOW - 86400), *noexp = tok(10, 0);
    /* An ID token kept as a profile: long expired, still good, and cached. */
    SK_CHECK_INT(check(v, old, NOW), SK_JWT_OK);
    SK_CHECK_INT(check(v, old, NOW + 10), SK_JWT_OK);
    SK_CHECK_INT(check(v, noexp, NOW), SK_JWT_OK);
    SK_CHECK_INT(check(v, noexp, NOW + 3599), SK_JWT_OK);
    SK_CHECK_INT(stats(v).cache_hits, 2);
    /* After the bounded lifetime the entry is re-validated, not refused. */
    SK_CHECK_INT(check(v, noexp, NOW + 3600), SK_JWT_OK);
    SK_CHECK_INT(stats(v).cache_hits, 2);
    SK_CHECK_INT(check(v, noexp, NOW + 3601), SK_JWT_OK);
    SK_CHECK_INT(stats(v).cache_hits, 3);
    SK_CHECK_INT(stats(v).cache_entries, 2);
    free(old);
    free(noexp);
    sk_validator_destroy(v);
    sk_keystore_destroy(s);
}

SK_TEST(validate_cache_disabled)
{
    sk_keystore *s = vstore();
    sk_policy p = vpolicy(1);
    sk_validator *v = sk_validator_create(&p, s, 0);
    sk_claims *a = NULL, *b = NULL;
    char *t = tok(11, NOW + 300);
    SK_CHECK_INT(sk_validate(v, t, strlen(t), NOW, &a), SK_JWT_OK);
    SK_CHECK_INT(sk_validate(v, t, strlen(t), NOW, &b), SK_JWT_OK);
    SK_CHECK(a && b && a != b);
    SK_CHECK_INT(stats(v).cache_hits, 0);
    SK_CHECK_INT(stats(v).cache_entries, 0);
    sk_claims_unref(a);
    sk_claims_unref(b);
    SK_CHECK_INT(sk_validate(v, NULL, 0, NOW, &a), SK_JWT_E_SEGMENTS);
    free(t);
    sk_validator_destroy(v);
    sk_keystore_destroy(s);
}

/* ---- threads ---- */

#define NTOK 12
#define NTHREADS 8

typedef struct {
    sk_validator *v;
    char **toks;
    int iters, seed, errors;
} worker;

/* Tokens 0..7 are good (sub usr_<i>), 8..11 bad in different ways. */
static sk_jwt_err expected(int i)
{
    static const sk_jwt_err bad[] = {SK_JWT_E_SIGNATURE, SK_JWT_E_AUD, SK_JWT_E_EXPIRED,
                                     SK_JWT_E_SEGMENTS};
    return i < 8 ? SK_JWT_OK : bad[i - 8];
}

static void *work(void *arg)
{
    worker *w = arg;
    unsigned r = (unsigned)w->seed;
    for (int k = 0; k < w->iters; k++) {
        r = r * 1103515245u + 12345u;
        int i = (int)((r >> 16) % NTOK);
        sk_claims *c = NULL;
        sk_jwt_err rc = sk_validate(w->v, w->toks[i], strlen(w->toks[i]), NOW, &c);
        if (rc != expected(i))
            w->errors++;
        if (rc == SK_JWT_OK) {
            char want[16];
            snprintf(want, sizeof want, "usr_%d", i);
            if (!c || !c->sub || strcmp(c->sub, want))
                w->errors++;
            /* The shared tree, built by whichever thread comes first, freed
             * with an evicted entry's last reference (valgrind watches). */
            const cJSON *sub = cJSON_GetObjectItem(sk_claims_tree(c), "sub");
            if (!cJSON_IsString(sub) || strcmp(sub->valuestring, want))
                w->errors++;
        }
        sk_claims_unref(c);
    }
    return NULL;
}

SK_TEST(validate_threads_consistent)
{
    sk_keystore *s = vstore();
    sk_policy p = vpolicy(1);
    char *toks[NTOK];
    for (int i = 0; i < 8; i++)
        toks[i] = tok(i, NOW + 300);
    toks[8] = tok(8, NOW + 300);
    char *sc = &toks[8][strlen(toks[8]) - 3];                       /* signature */
    *sc = *sc == 'A' ? 'B' : 'A';
    char *pay = skt_fmt("{\"iss\":\"" ISS "\",\"aud\":\"other\",\"exp\":%d}", NOW + 300);
    toks[9] = skt_sign(skt_rsa(0), "RS256", HDR, pay);
    free(pay);
    toks[10] = tok(10, NOW - 100);                                  /* expired */
    toks[11] = strdup("not-a-token");

    /* A cache smaller than the working set: hits, misses and evictions race. */
    for (int round = 0; round < 2; round++) {
        sk_validator *v = sk_validator_create(&p, s, round == 0 ? 5 : 64);
        pthread_t th[NTHREADS];
        worker w[NTHREADS];
        int errors = 0;
        for (int i = 0; i < NTHREADS; i++) {
            w[i] = (worker){v, toks, 400, i + 1, 0};
            pthread_create(&th[i], NULL, work, &w[i]);
        }
        for (int i = 0; i < NTHREADS; i++) {
            pthread_join(th[i], NULL);
            errors += w[i].errors;
        }
        SK_CHECK_INT(errors, 0);
        sk_validator_stats st = stats(v);
        SK_CHECK_INT(st.validations, NTHREADS * 400);
        SK_CHECK(st.cache_entries <= (round == 0 ? 5u : 8u));
        SK_CHECK(st.cache_hits > 0);
        uint64_t fails = 0;
        for (int i = 0; i < SK_JWT_E__COUNT; i++)
            fails += st.failures[i];
        SK_CHECK(fails > 0 && fails < st.validations);
        sk_validator_destroy(v);
    }
    for (int i = 0; i < NTOK; i++)
        free(toks[i]);
    sk_keystore_destroy(s);
}

typedef struct {
    const sk_claims *c;
    pthread_barrier_t *go;
    const cJSON *got;
} tree_racer;

static void *tree_race(void *arg)
{
    tree_racer *x = arg;
    pthread_barrier_wait(x->go);
    x->got = sk_claims_tree(x->c);
    return NULL;
}

/* Threads asking for a fresh claims object's tree at once all get one tree;
 * the parses that lost the race are freed (valgrind: no leak). */
SK_TEST(validate_tree_first_use_race)
{
    for (int round = 0; round < 20; round++) {
        const char *pay = "{\"sub\":\"usr_1\",\"roles\":[\"admin\",\"a,b\"]}";
        sk_claims *c = sk_claims_new(cJSON_Parse(pay), pay, strlen(pay));
        SK_REQUIRE(c != NULL);
        pthread_barrier_t go;
        pthread_barrier_init(&go, NULL, NTHREADS);
        pthread_t th[NTHREADS];
        tree_racer x[NTHREADS];
        for (int i = 0; i < NTHREADS; i++) {
            x[i] = (tree_racer){c, &go, NULL};
            pthread_create(&th[i], NULL, tree_race, &x[i]);
        }
        for (int i = 0; i < NTHREADS; i++)
            pthread_join(th[i], NULL);
        pthread_barrier_destroy(&go);
        for (int i = 0; i < NTHREADS; i++)
            SK_CHECK(x[i].got != NULL && x[i].got == x[0].got);
        const cJSON *roles = cJSON_GetObjectItem(x[0].got, "roles");
        SK_CHECK(cJSON_GetArraySize(roles) == 2);
        SK_CHECK_STR(cJSON_GetArrayItem(roles, 1)->valuestring, "a,b");
        sk_claims_unref(c);
    }
}

SK_TEST(validate_cache_drops_expired_on_insert)
{
    sk_keystore *s = vstore();
    sk_policy p = vpolicy(1);
    sk_validator *v = sk_validator_create(&p, s, 100);
    char *t[6];
    for (int i = 0; i < 5; i++) {
        t[i] = tok(200 + i, NOW + 10);
        SK_CHECK_INT(check(v, t[i], NOW), SK_JWT_OK);
    }
    SK_CHECK_INT(stats(v).cache_entries, 5);
    /* Long past their exp (and the leeway), a new token comes: the dead go. */
    t[5] = tok(300, NOW + 5000);
    SK_CHECK_INT(check(v, t[5], NOW + 1000), SK_JWT_OK);
    SK_CHECK_INT(stats(v).cache_entries, 1);
    /* An expired token is still refused as expired after its entry went. */
    SK_CHECK_INT(check(v, t[0], NOW + 1000), SK_JWT_E_EXPIRED);
    for (int i = 0; i < 6; i++)
        free(t[i]);
    sk_validator_destroy(v);
    sk_keystore_destroy(s);
}

SK_TEST(validate_vouched_skips_only_the_signature)
{
    sk_keystore *s = vstore();
    sk_policy p = vpolicy(1);
    sk_validator *v = sk_validator_create(&p, s, 100);
    sk_claims *c = NULL;
    /* Signed by a key this store does not hold: refused when verified here,
     * accepted when a sealed record vouches for it, and then cached. */
    char *pay = skt_fmt("{\"iss\":\"" ISS "\",\"aud\":\"skc_client1\",\"sub\":\"usr_v\","
                        "\"exp\":%lld}", (long long)NOW + 300);
    char *t = skt_sign(skt_rsa(1), "RS256", HDR, pay);
    SK_CHECK(check(v, t, NOW) != SK_JWT_OK);
    SK_CHECK_INT(sk_validate_vouched(v, t, strlen(t), NOW, &c), SK_JWT_OK);
    SK_REQUIRE(c);
    SK_CHECK_STR(c->sub, "usr_v");
    sk_claims_unref(c);
    SK_CHECK_INT(stats(v).vouched, 1);
    SK_CHECK_INT(check(v, t, NOW), SK_JWT_OK);                   /* the cache's answer */
    SK_CHECK_INT(stats(v).vouched, 1);
    /* The claims are still checked: wrong issuer, wrong audience, expired. */
    char *bad_iss = skt_sign(skt_rsa(1), "RS256", HDR, "{\"iss\":\"https://evil.example\","
                             "\"aud\":\"skc_client1\",\"sub\":\"x\",\"exp\":9999999999}");
    char *bad_aud = skt_sign(skt_rsa(1), "RS256", HDR, "{\"iss\":\"" ISS "\","
                             "\"aud\":\"skc_other\",\"sub\":\"x\",\"exp\":9999999999}");
    char *old = tok(7, NOW - 1000);
    SK_CHECK_INT(sk_validate_vouched(v, bad_iss, strlen(bad_iss), NOW, &c), SK_JWT_E_ISS);
    SK_CHECK_INT(sk_validate_vouched(v, bad_aud, strlen(bad_aud), NOW, &c), SK_JWT_E_AUD);
    SK_CHECK_INT(sk_validate_vouched(v, old, strlen(old), NOW, &c), SK_JWT_E_EXPIRED);
    sk_claims_unref(c);
    SK_CHECK_INT(sk_validate_vouched(v, "a.b.c", 5, NOW, &c), SK_JWT_E_PAYLOAD);
    free(pay);
    free(t);
    free(bad_iss);
    free(bad_aud);
    free(old);
    sk_validator_destroy(v);
    sk_keystore_destroy(s);
}

SK_TEST(validate_audless_per_caller_despite_the_cache)
{
    sk_keystore *s = vstore();
    sk_policy p = vpolicy(1);
    p.access_only = 1;
    sk_validator *v = sk_validator_create(&p, s, 100);
    sk_claims *c = NULL;
    /* A client_credentials token as Scalekit prints it: no aud. */
    char *pay = skt_fmt("{\"iss\":\"" ISS "\",\"sub\":\"m2morg_1\",\"client_id\":\"m2morg_1\","
                        "\"scopes\":[\"a\"],\"exp\":%lld}", (long long)NOW + 300);
    char *t = skt_sign(skt_rsa(0), "RS256", HDR, pay);
    SK_CHECK_INT(check(v, t, NOW), SK_JWT_E_AUD);                 /* strict: refused */
    SK_CHECK_INT(sk_validate_audless(v, t, strlen(t), NOW, &c), SK_JWT_OK);
    SK_REQUIRE(c);
    SK_CHECK_INT(c->has_aud, 0);
    SK_CHECK_STR(c->client_id, "m2morg_1");
    sk_claims_unref(c);
    c = NULL;
    SK_CHECK_INT(stats(v).cache_entries, 1);
    /* The cached result is not a strict caller's, nor a vouching record's. */
    SK_CHECK_INT(sk_validate(v, t, strlen(t), NOW, &c), SK_JWT_E_AUD);
    SK_CHECK(c == NULL);
    SK_CHECK_INT(sk_validate_vouched(v, t, strlen(t), NOW, &c), SK_JWT_E_AUD);
    SK_CHECK(c == NULL);
    SK_CHECK_INT(sk_validate_audless(v, t, strlen(t), NOW, &c), SK_JWT_OK);  /* a hit */
    sk_claims_unref(c);
    /* With an aud, the audience is checked as ever. */
    char *other = skt_sign(skt_rsa(0), "RS256", HDR, "{\"iss\":\"" ISS "\",\"aud\":[\"skc_x\"],"
                           "\"sub\":\"m\",\"exp\":9999999999}");
    char *ours = skt_sign(skt_rsa(0), "RS256", HDR, "{\"iss\":\"" ISS "\",\"aud\":[\"skc_client1\"],"
                          "\"sub\":\"m\",\"exp\":9999999999}");
    SK_CHECK_INT(sk_validate_audless(v, other, strlen(other), NOW, &c), SK_JWT_E_AUD);
    SK_CHECK_INT(sk_validate_audless(v, ours, strlen(ours), NOW, &c), SK_JWT_OK);
    SK_CHECK_INT(c->has_aud, 1);
    sk_claims_unref(c);
    /* Everything else still counts: issuer, expiry, signature, token kind. */
    char *iss = skt_sign(skt_rsa(0), "RS256", HDR, "{\"iss\":\"https://evil.example\","
                         "\"sub\":\"m\",\"exp\":9999999999}");
    char *old = skt_sign(skt_rsa(0), "RS256", HDR, "{\"iss\":\"" ISS "\",\"sub\":\"m\","
                         "\"exp\":1}");
    char *stranger = skt_sign(skt_rsa(1), "RS256", HDR, "{\"iss\":\"" ISS "\",\"sub\":\"m\","
                              "\"exp\":9999999999}");
    char *idtok = skt_sign(skt_rsa(0), "RS256", HDR, "{\"iss\":\"" ISS "\",\"sub\":\"m\","
                           "\"at_hash\":\"x\",\"exp\":9999999999}");
    char *azp = skt_sign(skt_rsa(0), "RS256", HDR, "{\"iss\":\"" ISS "\",\"sub\":\"m\","
                         "\"azp\":\"skc_client1\",\"exp\":9999999999}");
    SK_CHECK_INT(sk_validate_audless(v, iss, strlen(iss), NOW, &c), SK_JWT_E_ISS);
    SK_CHECK_INT(sk_validate_audless(v, old, strlen(old), NOW, &c), SK_JWT_E_EXPIRED);
    sk_claims_unref(c);
    SK_CHECK(sk_validate_audless(v, stranger, strlen(stranger), NOW, &c) != SK_JWT_OK);
    SK_CHECK_INT(sk_validate_audless(v, idtok, strlen(idtok), NOW, &c), SK_JWT_E_KIND);
    SK_CHECK_INT(sk_validate_audless(v, azp, strlen(azp), NOW, &c), SK_JWT_E_KIND);
    char *all[] = { pay, t, other, ours, iss, old, stranger, idtok, azp };
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        free(all[i]);
    sk_validator_destroy(v);
    sk_keystore_destroy(s);
}
