/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests: the sealed profile cookie and the validator's cache of opened values. */
#include <string.h>
#include <apr_strings.h>
#include <cjson/cJSON.h>
#include "sk_test.h"
#include "sk_profile.h"
#include "sk_jwt.h"

#define pool() sk_test_pool()

static sk_claims *claims_of(const char *json)
{
    return sk_claims_new(cJSON_Parse(json), json, strlen(json));
}

static const char ID_CLAIMS[] =
    "{\"iss\":\"https://env\",\"aud\":[\"skc_1\"],\"azp\":\"skc_1\",\"client_id\":\"skc_1\","
    "\"sub\":\"usr_1\",\"sid\":\"ses_1\",\"oid\":\"org_1\",\"exp\":1700003600,\"iat\":1700000000,"
    "\"nbf\":1700000000,\"at_hash\":\"h\",\"c_hash\":\"c\",\"nonce\":\"n\",\"auth_time\":1,"
    "\"jti\":\"j\",\"email\":\"a@example.com\",\"name\":\"Ada\",\"amr\":[\"conn_1\"],"
    "\"email_verified\":true,\"plan\":\"gold\"}";

SK_TEST(profile_keeps_the_claims_without_the_plumbing)
{
    sk_sealer *k = sk_sealer_create(pool(), "secret", "mod_scalekit state cookie v1");
    sk_claims *id = claims_of(ID_CLAIMS);
    SK_REQUIRE(k && id);
    char *sealed = sk_profile_seal(pool(), k, id);
    SK_REQUIRE(sealed);
    sk_claims *p = sk_profile_open(pool(), k, sealed, strlen(sealed));
    SK_REQUIRE(p);
    SK_CHECK_STR(p->sub, "usr_1");
    SK_CHECK_STR(p->sid, "ses_1");
    SK_CHECK_STR(p->oid, "org_1");
    SK_CHECK_STR(p->email, "a@example.com");
    SK_CHECK_STR(p->name, "Ada");
    SK_CHECK_INT(p->exp, 1700003600);
    SK_CHECK(!p->has_aud && !p->iss && !p->client_id && !p->iat && !p->nbf);
    const char *gone[] = { "azp", "at_hash", "c_hash", "nonce", "auth_time", "jti" };
    for (size_t i = 0; i < sizeof(gone) / sizeof(gone[0]); i++)
        SK_CHECK(!cJSON_GetObjectItemCaseSensitive(sk_claims_tree(p), gone[i]));
    SK_CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(sk_claims_tree(p), "plan")));
    SK_CHECK(cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(sk_claims_tree(p), "amr")));
    /* One ID token, one cookie value (a synthetic IV). */
    SK_CHECK_STR(sk_profile_seal(pool(), k, id), sealed);
    sk_claims_unref(p);
    sk_claims_unref(id);
}

SK_TEST(profile_opens_only_as_sealed)
{
    sk_sealer *k = sk_sealer_create(pool(), "secret", "mod_scalekit state cookie v1");
    sk_sealer *other = sk_sealer_create(pool(), "another secret", "mod_scalekit state cookie v1");
    sk_claims *id = claims_of(ID_CLAIMS);
    char *sealed = sk_profile_seal(pool(), k, id);
    SK_REQUIRE(sealed && other);
    char *altered = apr_pstrdup(pool(), sealed);
    altered[20] = altered[20] == 'A' ? 'B' : 'A';
    SK_CHECK(!sk_profile_open(pool(), k, altered, strlen(altered)));
    SK_CHECK(!sk_profile_open(pool(), other, sealed, strlen(sealed)));      /* foreign */
    SK_CHECK(!sk_profile_open(pool(), k, sealed, strlen(sealed) - 1));
    /* The same text under another binding (a state cookie, a record) is not a profile. */
    const char *text = "{\"sub\":\"usr_1\",\"sid\":\"ses_1\"}";
    char *state = sk_seal(pool(), k, text, strlen(text));
    char *record = sk_seal_bound(pool(), k, "record key", text, strlen(text));
    SK_CHECK(!sk_profile_open(pool(), k, state, strlen(state)));
    SK_CHECK(!sk_profile_open(pool(), k, record, strlen(record)));
    /* Nor does a profile open as a state cookie. */
    SK_CHECK(!sk_unseal(pool(), k, sealed, NULL));
    /* Without a sub it is no profile. */
    const char *nosub = "{\"email\":\"a@example.com\"}";
    char *s2 = sk_seal_bound(pool(), k, SK_PROFILE_BOUND, nosub, strlen(nosub));
    SK_CHECK(!sk_profile_open(pool(), k, s2, strlen(s2)));
    sk_claims_unref(id);
}

typedef struct {
    const sk_sealer *k;
    int calls;
} opener_ctx;

static sk_claims *count_open(void *ctx, const char *value, size_t len)
{
    opener_ctx *o = ctx;
    o->calls++;
    return sk_profile_open(pool(), o->k, value, len);
}

SK_TEST(profile_opened_once_per_process)
{
    sk_sealer *k = sk_sealer_create(pool(), "secret", "mod_scalekit state cookie v1");
    sk_policy pol = { "https://env", NULL, 0, 0, 60, 0, 0, 0, NULL, 0 };
    sk_validator *v = sk_validator_create(&pol, NULL, 16);
    sk_claims *id = claims_of(ID_CLAIMS), *out = NULL;
    char *sealed = sk_profile_seal(pool(), k, id);
    opener_ctx o = { k, 0 };
    SK_REQUIRE(v && sealed);
    for (int i = 0; i < 3; i++) {
        SK_CHECK_INT(sk_validate_opened(v, sealed, strlen(sealed), 1700000000, count_open, &o,
                                        &out), SK_JWT_OK);
        SK_CHECK(out && !strcmp(out->sub, "usr_1"));
        sk_claims_unref(out);
    }
    SK_CHECK_INT(o.calls, 1);
    /* An hour later it is opened afresh (the check_exp=0 life), never after the ID token's exp. */
    SK_CHECK_INT(sk_validate_opened(v, sealed, strlen(sealed), 1700000000 + 3601, count_open, &o,
                                    &out), SK_JWT_OK);
    SK_CHECK_INT(o.calls, 2);
    sk_claims_unref(out);
    char *altered = apr_pstrdup(pool(), sealed);
    altered[10] = altered[10] == 'A' ? 'B' : 'A';
    SK_CHECK_INT(sk_validate_opened(v, altered, strlen(altered), 1700000000, count_open, &o,
                                    &out), SK_JWT_E_SIGNATURE);
    SK_CHECK(out == NULL);
    sk_validator_destroy(v);
    sk_claims_unref(id);
}
