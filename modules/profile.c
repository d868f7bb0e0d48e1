/* SPDX-License-Identifier: Apache-2.0 */
/* profile.c: the sealed profile cookie (sk_profile.h). */
#include <string.h>
#include <apr_strings.h>
#include <cjson/cJSON.h>
#include "sk_profile.h"

/* What only the token's checks need: the profile is ours, sealed after them. */
static const char *const sk_plumbing[] = {
    "iss", "aud", "azp", "client_id", "iat", "nbf", "at_hash", "c_hash", "nonce",
    "auth_time", "jti",
};

char *sk_profile_seal(apr_pool_t *p, const sk_sealer *k, const sk_claims *id)
{
    cJSON *j = sk_claims_parse(id);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return NULL;
    }
    for (size_t i = 0; i < sizeof(sk_plumbing) / sizeof(sk_plumbing[0]); i++)
        cJSON_DeleteItemFromObjectCaseSensitive(j, sk_plumbing[i]);
    char *text = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    /* One ID token, one profile: the tabs sharing a refresh's answer get the same
     * cookie, and every process one cache entry. */
    char *sealed = text ? sk_seal_bound_same(p, k, SK_PROFILE_BOUND, text, strlen(text))
                        : NULL;
    cJSON_free(text);
    return sealed;
}

sk_claims *sk_profile_open(apr_pool_t *p, const sk_sealer *k, const char *sealed, size_t len)
{
    size_t text_len = 0;
    if (!sealed || len != strlen(sealed))
        return NULL;
    char *text = sk_unseal_bound(p, k, SK_PROFILE_BOUND, sealed, SK_PROFILE_MAX, &text_len);
    cJSON *j = text ? cJSON_ParseWithLength(text, text_len) : NULL;
    const cJSON *sub = cJSON_GetObjectItemCaseSensitive(j, "sub");
    if (!cJSON_IsObject(j) || !cJSON_IsString(sub)) {
        cJSON_Delete(j);
        return NULL;
    }
    return sk_claims_new(j, text, text_len);      /* takes j */
}
