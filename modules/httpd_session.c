/* SPDX-License-Identifier: Apache-2.0 */
/* httpd_session.c: the check_authn hook. A protected request reads top to
 * bottom here: which tokens it carries, are they valid (cached), refresh if
 * expired, then REMOTE_USER and the environment for CGI/PHP. */
#include <string.h>
#include "httpd.h"
#include "http_config.h"
#include "http_core.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"
#include "apr_strings.h"
#include "apr_lib.h"
#include "ap_expr.h"

#include "sk_module.h"
#include "sk_redirect.h"
#include "sk_cookie.h"
#include "sk_profile.h"

static apr_status_t sk_session_release(void *data)
{
    sk_request_session *rs = data;
    if (rs->access)
        sk_claims_unref(rs->access);
    if (rs->id)
        sk_claims_unref(rs->id);
    return APR_SUCCESS;
}

sk_request_session *sk_request_session_new(request_rec *r)
{
    sk_request_session *rs = apr_pcalloc(r->pool, sizeof(*rs));
    apr_pool_cleanup_register(r->pool, rs, sk_session_release, apr_pool_cleanup_null);
    return rs;
}

sk_request_session *sk_request_session_get(request_rec *r)
{
    for (; r; r = r->main ? r->main : r->prev) {
        sk_request_session *rs = ap_get_module_config(r->request_config, &scalekit_module);
        if (rs)
            return rs;
    }
    return NULL;
}

const sk_published_claim sk_published[SK_PUBLISHED_COUNT] = {
    { "sub", "SCALEKIT_SUB", "Sub" }, { "email", "SCALEKIT_EMAIL", "Email" },
    { "name", "SCALEKIT_NAME", "Name" },
    { "organization_id", "SCALEKIT_ORGANIZATION_ID", "Organization-Id" },
    { "session_id", "SCALEKIT_SESSION_ID", "Session-Id" },
    { "roles", "SCALEKIT_ROLES", "Roles" }, { "permissions", "SCALEKIT_PERMISSIONS", "Permissions" },
    { "scope", "SCALEKIT_SCOPE", "Scope" },
};

#define SK_ENV_CLIENT_ID "SCALEKIT_CLIENT_ID"

/* Whether the environment holds a SCALEKIT_* variable already: one set by
 * SetEnvIf, or a subrequest's copy of its parent's. */
static int sk_env_has_ours(const apr_table_t *env)
{
    const apr_array_header_t *a = apr_table_elts(env);
    const apr_table_entry_t *e = (const apr_table_entry_t *)a->elts;
    for (int i = 0; i < a->nelts; i++)
        if (e[i].key && !strncasecmp(e[i].key, "SCALEKIT_", 9))
            return 1;
    return 0;
}

/* A variable not published is still removed: nothing else (SetEnvIf on a
 * request header, say) may pass a value off under the module's name. Ours are
 * then appended: every SCALEKIT_ key has the same apr table checksum, so
 * apr_table_setn compared each with all before it (profiled: 2.1k of the
 * check's 9.8k instructions). */
static void sk_setenv_all(request_rec *r, const char *const v[SK_PUBLISHED_COUNT], unsigned want,
                          const sk_custom_claims *cc, const char *const *cv)
{
    int n = cc ? cc->n : 0;
    if (sk_env_has_ours(r->subprocess_env)) {
        for (int i = 0; i < SK_PUBLISHED_COUNT; i++)
            apr_table_unset(r->subprocess_env, sk_published[i].env);
        for (int i = 0; i < n; i++)
            apr_table_unset(r->subprocess_env, cc->claim[i].env);
        apr_table_unset(r->subprocess_env, SK_ENV_CLIENT_ID);
    }
    for (int i = 0; i < SK_PUBLISHED_COUNT; i++)
        if (v[i] && (want & (1u << i)))
            apr_table_addn(r->subprocess_env, sk_published[i].env, v[i]);
    for (int i = 0; i < n; i++)
        if (cv[i])
            apr_table_addn(r->subprocess_env, cc->claim[i].env, cv[i]);
}

/* Whether every string field of c is printable ASCII, so that sk_env_safe
 * would hand each back as it is: looked at once per token and process (the
 * claims are shared and immutable), then one load per request instead of a
 * scan of every published value (profiled: 820 instructions a request). */
static int sk_claims_plain(sk_claims *c)
{
    int v = __atomic_load_n(&c->plain, __ATOMIC_RELAXED);
    if (v)
        return v == 1;
    const char *const f[] = { c->sub, c->email, c->name, c->oid, c->sid, c->iss, c->client_id,
                              c->roles, c->permissions, c->scope };
    v = 1;
    for (size_t i = 0; i < sizeof(f) / sizeof(f[0]) && v == 1; i++)
        if (f[i] && !sk_is_plain(f[i]))
            v = 2;
    __atomic_store_n(&c->plain, v, __ATOMIC_RELAXED);
    return v == 1;
}

/* A string claim: the usual ones from their fields, so the default
 * REMOTE_USER (sub) needs no tree; any other from the token's tree. */
static const char *sk_claim_string(const sk_claims *c, const char *name)
{
    static const char *const names[] = { "sub", "email", "name", "oid", "sid", "iss",
                                         "client_id" };
    if (!c)
        return NULL;
    const char *const fields[] = { c->sub, c->email, c->name, c->oid, c->sid, c->iss,
                                   c->client_id };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (!strcmp(name, names[i]))
            return fields[i];
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(sk_claims_tree(c), name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Every value of sk_published, in its order, made safe (NULL when absent):
 * the access token's, the ID token filling in the profile (Scalekit keeps
 * email and name there). Returns whether they are the claims' own strings. */
static int sk_published_values(request_rec *r, const sk_request_session *rs,
                               const char *v[SK_PUBLISHED_COUNT])
{
    sk_claims *a = rs->access, *id = rs->id;
    const char *raw[SK_PUBLISHED_COUNT] = {
        a->sub, a->email ? a->email : id ? id->email : NULL,
        a->name ? a->name : id ? id->name : NULL, a->oid ? a->oid : id ? id->oid : NULL,
        a->sid ? a->sid : id ? id->sid : NULL, a->roles, a->permissions, a->scope,
    };
    int plain = sk_claims_plain(a) && (!id || sk_claims_plain(id));
    for (int i = 0; i < SK_PUBLISHED_COUNT; i++)
        v[i] = !raw[i] || plain ? raw[i] : sk_env_safe(r->pool, raw[i]);
    return plain;
}

/* REMOTE_USER (NULL when the claim is missing) and the published values of
 * the session: kept in rs->published when it has one, taken from there on a
 * later request of the same connection and cookies (the memo's server: a
 * request to another virtual host does not get the memo's session). */
static const char *sk_published_user(request_rec *r, sk_request_session *rs,
                                     const char *v[SK_PUBLISHED_COUNT])
{
    sk_server_conf *c = sk_server_config(r);
    sk_published_set *kept = rs->published;
    if (kept && kept->user) {
        memcpy(v, kept->v, sizeof(kept->v));
        return kept->user;
    }
    const char *user = sk_claim_string(rs->access, c->remote_user_claim);
    if (!user)
        user = sk_claim_string(rs->id, c->remote_user_claim);
    int plain = sk_published_values(r, rs, v);
    /* A field of a token whose fields are all plain needs no copy. */
    int user_plain = user && ((user == rs->access->sub && sk_claims_plain(rs->access))
                              || (rs->id && user == rs->id->sub && sk_claims_plain(rs->id)));
    if (user && !user_plain)
        user = sk_env_safe(r->pool, user);
    if (kept && plain && user_plain) {
        kept->user = user;
        memcpy(kept->v, v, sizeof(kept->v));
    }
    return user;
}

/* cJSON's text of v (a number, true/false, an object) in the pool. */
static const char *sk_json_text(apr_pool_t *p, const cJSON *v)
{
    char *text = cJSON_PrintUnformatted(v);
    if (!text)
        return NULL;
    const char *copy = apr_pstrdup(p, text);
    cJSON_free(text);
    return copy;
}

/* A custom claim's value as text: a string as it is, an array's elements
 * comma-joined (each as a string would be), anything else its compact JSON;
 * NULL for null. */
static const char *sk_claim_text(apr_pool_t *p, const cJSON *v)
{
    if (cJSON_IsString(v))
        return v->valuestring;
    if (!v || cJSON_IsNull(v))
        return NULL;
    if (!cJSON_IsArray(v))
        return sk_json_text(p, v);
    apr_array_header_t *parts = apr_array_make(p, cJSON_GetArraySize(v), sizeof(const char *));
    const cJSON *item;
    cJSON_ArrayForEach(item, v) {
        const char *t = cJSON_IsString(item) ? item->valuestring : sk_json_text(p, item);
        APR_ARRAY_PUSH(parts, const char *) = t ? t : "";
    }
    return apr_array_pstrcat(p, parts, ',');
}

/* The values of ScalekitEnvVars' other claims, made safe (NULL when absent):
 * the access token's, else the ID token's, from their trees parsed once per
 * token and process. */
static const char **sk_custom_values(request_rec *r, const sk_request_session *rs,
                                     const sk_custom_claims *cc)
{
    const char **v = apr_palloc(r->pool, (size_t)cc->n * sizeof(*v));
    for (int i = 0; i < cc->n; i++) {
        const char *t = sk_claim_text(r->pool, sk_claims_lookup(rs->access, rs->id,
                                                                cc->claim[i].claim));
        v[i] = t ? sk_env_safe(r->pool, t) : NULL;
    }
    return v;
}

/* The claims as request headers for a proxied application; every look-alike
 * of the prefix was removed before. */
static void sk_claim_headers(request_rec *r, const char *prefix,
                             const char *const v[SK_PUBLISHED_COUNT])
{
    for (int i = 0; i < SK_PUBLISHED_COUNT; i++)
        if (v[i])
            apr_table_setn(r->headers_in, apr_pstrcat(r->pool, prefix, sk_published[i].header,
                                                      NULL), v[i]);
}

/* The custom claims' headers: names made at start-up when ScalekitClaimHeaders
 * sat beside ScalekitEnvVars, else joined here as the fixed set's are. */
static void sk_custom_headers(request_rec *r, const char *prefix, const sk_custom_claims *cc,
                              const char *const *cv)
{
    int made = cc->prefix && !strcmp(cc->prefix, prefix);
    for (int i = 0; i < cc->n; i++)
        if (cv[i])
            apr_table_setn(r->headers_in, made ? cc->claim[i].header
                           : apr_pstrcat(r->pool, prefix, cc->claim[i].suffix, NULL), cv[i]);
}

/* REMOTE_USER, the SCALEKIT_* variables ScalekitEnvVars asks for, and the
 * claim headers (all of them: they do not depend on the environment). */
static int sk_publish(request_rec *r, sk_request_session *rs, const sk_dir_conf *d)
{
    const char *v[SK_PUBLISHED_COUNT];
    const char *user = sk_published_user(r, rs, v);
    if (!user || !*user) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, "the session has no '%s' claim "
                      "for REMOTE_USER (ScalekitRemoteUserClaim)",
                      sk_server_config(r)->remote_user_claim);
        return 0;
    }
    r->user = (char *)user;
    r->ap_auth_type = (char *)SK_AUTH_TYPE;
    /* The environment what ScalekitEnvVars asks for, the headers all. */
    const char **cv = d->custom ? sk_custom_values(r, rs, d->custom) : NULL;
    sk_setenv_all(r, v, d->env_vars, d->custom, cv);
    if (rs->machine_client && d->env_vars)  /* a listed machine client (ScalekitMachineClients) */
        apr_table_addn(r->subprocess_env, SK_ENV_CLIENT_ID, sk_env_safe(r->pool, rs->machine_client));
    if (d->header_prefix) {
        sk_claim_headers(r, d->header_prefix, v);
        if (cv)
            sk_custom_headers(r, d->header_prefix, d->custom, cv);
    }
    return 1;
}

/* The token may be good: its signing key could not be had (yet). */
static int sk_is_key_missing(sk_jwt_err e)
{
    return e == SK_JWT_E_KID_UNKNOWN || e == SK_JWT_E_NO_KEYS;
}

static void sk_log_reject(request_rec *r, const char *what, const char *token, sk_jwt_err e)
{
    sk_keystore_stats ks;
    const char *keys = "";
    sk_count_failure(e);
    if (sk_is_key_missing(e)) {
        sk_keystore_get_stats(sk_server_config(r)->rt->keys, &ks);
        if (ks.last_error[0])
            keys = apr_pstrcat(r->pool, " (signing keys: ", ks.last_error, ")", NULL);
    }
    ap_log_rerror(APLOG_MARK, e == SK_JWT_E_EXPIRED ? APLOG_DEBUG : APLOG_INFO, 0, r,
                  "%s %s refused: %s%s", what, sk_short_hash(r->pool, token),
                  sk_jwt_err_str(e), keys);
}

/* 1 when both name a value and the values differ. */
static int sk_has_conflict(const char *a, const char *b)
{
    return a && b && strcmp(a, b);
}

/* Whether the ID token belongs to the access token's Scalekit session: the
 * same user, and the same sid when the access token names one (Scalekit's
 * always do; an ID token without it cannot show it is of this session), else
 * the same organization when both name one. */
int sk_id_token_bound(const sk_claims *a, const sk_claims *id)
{
    if (!a->sub || !id->sub || strcmp(a->sub, id->sub))
        return 0;
    if (a->sid)
        return id->sid && !strcmp(a->sid, id->sid);
    return !sk_has_conflict(a->oid, id->oid);
}

/* A location's ScalekitMachineClients, or NULL when it lists none. */
static const apr_array_header_t *sk_machine_clients(const sk_dir_conf *d)
{
    return d->machine_clients && d->machine_clients->nelts ? d->machine_clients : NULL;
}

static int sk_machine_client_listed(const apr_array_header_t *list, const char *client_id)
{
    for (int i = 0; client_id && i < list->nelts; i++)
        if (!strcmp(APR_ARRAY_IDX(list, i, const char *), client_id))
            return 1;
    return 0;
}

/* A bearer token taken with sk_validate_audless at a location with machine
 * clients. Decided here, per request, not in the validator: its cache holds
 * the token for every location alike. Without aud it passes only when its
 * client_id is listed; a listed client's token is named to the application. */
static int sk_machine_token_ok(request_rec *r, const apr_array_header_t *list,
                               const char *token, sk_request_session *rs)
{
    const sk_claims *a = rs->access;
    int listed = sk_machine_client_listed(list, a->client_id);
    if (listed)
        rs->machine_client = a->client_id;
    if (a->has_aud || listed)
        return 1;
    sk_count_failure(SK_JWT_E_AUD);
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "access token %s refused: no aud, and its "
                  "client %s is not in ScalekitMachineClients", sk_short_hash(r->pool, token),
                  a->client_id ? ap_escape_logitem(r->pool, a->client_id) : "(none)");
    return 0;
}

/* sk_validate_opened's opener of profile cookies: ctx is the request. */
static sk_claims *sk_profile_opener(void *ctx, const char *value, size_t len)
{
    request_rec *r = ctx;
    return sk_profile_open(r->pool, sk_server_config(r)->rt->sealer, value, len);
}

/* A profile cookie's claims into rs->id, from this process's cache when it
 * was opened before (a warm request unseals nothing). One that does not open
 * (altered, sealed under another client secret) is not used: the session is
 * the access token's, as with an unbound ID token. */
static void sk_profile_into(request_rec *r, const char *profile, int64_t now,
                            sk_request_session *rs)
{
    sk_runtime *rt = sk_server_config(r)->rt;
    if (sk_validate_opened(rt->profile, profile, strlen(profile), now, sk_profile_opener, r,
                           &rs->id) != SK_JWT_OK)
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "profile cookie %s does not open "
                      "(altered, or sealed with another client secret): its claims are not "
                      "used", sk_short_hash(r->pool, profile));
}

/* Validate the pair and keep the claims for this request (authz reads them).
 * The ID token is optional; when present it must be valid and name the same
 * user, or the session is refused. One of another Scalekit session of that
 * user (an older sign-in, another organization) is dropped: the session is
 * the access token's, and no claim of an unbound ID token is used. Without
 * an ID token, a profile cookie plays its part, under the same rules.
 * machines: a bearer token at a location with ScalekitMachineClients (it may
 * lack aud), else NULL. SK_JWT_OK with *out set, or why the pair was refused. */
static sk_jwt_err sk_validate_pair(request_rec *r, const char *access, const char *id,
                                   const char *profile, int64_t vouched, const apr_array_header_t *machines,
                                   sk_request_session **out)
{
    sk_runtime *rt = sk_server_config(r)->rt;
    /* The clock now, not r->request_time: a token minted while this request
     * waited for the token endpoint has an nbf after the request's arrival. */
    int64_t now = (int64_t)apr_time_sec(apr_time_now());
    sk_request_session *rs = sk_request_session_new(r);
    *out = NULL;
    /* A sealed store record that says a server verified both tokens spares
     * this process the signature checks (the validation cache in the store). */
    sk_jwt_err (*check)(sk_validator *, const char *, size_t, int64_t, sk_claims **)
        = vouched > now ? sk_validate_vouched : sk_validate;
    sk_jwt_err e = machines
        ? sk_validate_audless(rt->access, access, strlen(access), now, &rs->access)
        : check(rt->access, access, strlen(access), now, &rs->access);
    if (e != SK_JWT_OK) {
        sk_log_reject(r, "access token", access, e);
        return e;
    }
    if (machines && !sk_machine_token_ok(r, machines, access, rs))
        return SK_JWT_E_AUD;
    if (!rs->access->sub) {                 /* a token of no user (Scalekit always sets it) */
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, "access token %s has no sub: refused",
                      sk_short_hash(r->pool, access));
        return SK_JWT_E_PAYLOAD;
    }
    if (sk_is_signed_out(r, rs->access)) {  /* back-channel logout since it was issued */
        sk_log_reject(r, "access token", access, SK_JWT_E_SIGNED_OUT);
        return SK_JWT_E_SIGNED_OUT;
    }
    const char *what = id ? "ID token" : "profile cookie", *idv = id ? id : profile;
    if (id) {
        e = check(rt->id, id, strlen(id), now, &rs->id);
        if (e != SK_JWT_OK) {
            sk_log_reject(r, "ID token", id, e);
            return e;
        }
    }
    else if (profile)
        sk_profile_into(r, profile, now, rs);
    if (rs->id) {
        if (!rs->access->sub || !rs->id->sub || strcmp(rs->access->sub, rs->id->sub)) {
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, "access token %s and %s "
                          "%s name different users: session refused",
                          sk_short_hash(r->pool, access), what, sk_short_hash(r->pool, idv));
            return SK_JWT_E_PAYLOAD;
        }
        if (!sk_id_token_bound(rs->access, rs->id)) {
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, "%s %s is of another "
                          "session than access token %s (sid or organization): its claims "
                          "are not used", what, sk_short_hash(r->pool, idv),
                          sk_short_hash(r->pool, access));
            sk_claims_unref(rs->id);
            rs->id = NULL;
        }
    }
    rs->access_token = access;
    *out = rs;
    return SK_JWT_OK;
}

sk_jwt_err sk_validate_into_request(request_rec *r, const char *access, const char *id,
                                    const char *profile, int64_t vouched,
                                    sk_request_session **out)
{
    return sk_validate_pair(r, access, id, profile, vouched, NULL, out);
}

/* New tokens that could not be checked, for want of keys or of memory, are
 * not bad tokens: the session stays (a 502 now), and a retry reuses the
 * refresh's answer, which waits in the shared cache (15 s with cookies, a
 * minute with a store), instead of spending the single-use refresh token
 * again. */
static int sk_is_retryable(sk_jwt_err e)
{
    return sk_is_key_missing(e) || e == SK_JWT_E_INTERNAL;
}

/* What became of a refresh (sk_try_refresh). */
typedef enum {
    SK_REFRESHED,           /* new tokens, kept, and their claims in the request */
    SK_REFRESH_ENDED,       /* the session is over: sign in again */
    SK_REFRESH_LATER        /* the IdP or its keys could not be had: try again later */
} sk_refresh_outcome;

/* The outcome for new tokens the validator refused for why. */
static sk_refresh_outcome sk_refused_outcome(sk_jwt_err why)
{
    return sk_is_retryable(why) ? SK_REFRESH_LATER : SK_REFRESH_ENDED;
}

/* Refresh an expired session; on success the new cookies go out on this
 * response and rs holds the new claims. old: with cookies, the expired access
 * token's claims (the answer must be for its user). *called: this request
 * spent the refresh token itself. */
static sk_refresh_outcome sk_try_refresh(request_rec *r, sk_tokens *t, const sk_claims *old,
                                         sk_request_session **rs, int *called)
{
    sk_refresh_result res;
    sk_jwt_err why;
    const char *spent = t->refresh;
    sk_refresh(r, spent, old ? t->access : NULL, &res);
    *called = !res.reused;
    if (res.error && !res.unavailable && sk_tokens_reload(r, t, spent)) {
        /* Another server refreshed this stored session first: use its tokens. */
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, "refresh %s lost a race with another "
                      "server; using the session's new tokens", sk_short_hash(r->pool, spent));
        why = sk_validate_into_request(r, t->access, t->id, NULL, t->vouched, rs);
        return why == SK_JWT_OK ? SK_REFRESHED : sk_refused_outcome(why);
    }
    if (res.error) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, "refresh of session %s failed: %s",
                      sk_short_hash(r->pool, spent), res.error);
        return res.unavailable ? SK_REFRESH_LATER : SK_REFRESH_ENDED;
    }
    /* Cookies: without a new ID token, the one the browser sent (signed in
     * before the ID token moved to the handler's path: its claims make the
     * new profile), else the profile cookie it sent, which stays. */
    const char *id = res.id_token ? res.id_token : sk_server_config(r)->store ? NULL : t->id;
    why = sk_validate_into_request(r, res.access_token, id, id ? NULL : t->profile, 0, rs);
    if (why != SK_JWT_OK)
        return sk_refused_outcome(why);
    if (old && strcmp(old->sub, (*rs)->access->sub)) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, "refresh of session %s answered with "
                      "tokens of another user (%s, the session's is %s): refused",
                      sk_short_hash(r->pool, spent), sk_env_safe(r->pool, (*rs)->access->sub),
                      sk_env_safe(r->pool, old->sub));
        return SK_REFRESH_ENDED;
    }
    if (sk_is_session_ended(r, t)) {            /* saving would bring a signed-out session back */
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "session %s ended while it was being "
                      "refreshed: not kept", sk_short_hash(r->pool, spent));
        return SK_REFRESH_ENDED;
    }
    t->access = res.access_token;
    t->id = res.id_token ? res.id_token : t->id;
    t->id_claims = res.id_token || id ? (*rs)->id : NULL;
    t->refresh = res.refresh_token;
    /* A kept ID token was verified when it came; the new access token just now. */
    t->vouched = (*rs)->access->exp;
    if (sk_tokens_save(r, t) != OK)
        return SK_REFRESH_LATER;
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, "session refreshed: access token %s",
                  sk_short_hash(r->pool, res.access_token));
    return SK_REFRESHED;
}

static apr_status_t sk_claims_release(void *c)
{
    sk_claims_unref(c);
    return APR_SUCCESS;
}

/* A token refused for want of its signing key while the key set cannot be
 * fetched (or for want of memory) may be good: not a reason to end a session. */
static int sk_is_unverifiable(request_rec *r, sk_jwt_err e)
{
    sk_keystore_stats ks;
    if (e == SK_JWT_E_NO_KEYS || e == SK_JWT_E_INTERNAL)
        return 1;
    if (e != SK_JWT_E_KID_UNKNOWN)
        return 0;
    sk_keystore_get_stats(sk_server_config(r)->rt->keys, &ks);
    return ks.last_error[0] != '\0';
}

typedef enum { SK_GATE_REFRESH, SK_GATE_REFUSE, SK_GATE_LATER } sk_gate;

static sk_gate sk_gate_refuse(request_rec *r, const sk_tokens *t, const char *why)
{
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "refresh token %s not used: %s; the "
                  "session is cleared (sign in again)", sk_short_hash(r->pool, t->refresh), why);
    sk_count(SK_C_REFRESH_REFUSED);
    return SK_GATE_REFUSE;
}

/* With cookie sessions a refresh cookie proves nothing: anyone can send one,
 * and each refresh is a client-authenticated call that spends the site's
 * rate limit at Scalekit. Only a session whose access token passed every
 * check but its exp is refreshed (*old then holds its claims), and not
 * while its refresh failed lately or too many failed on this machine
 * (sk_refresh_limited). why: the access token's refusal. A refresh cookie
 * without an access token (the access cookie lost, or a cookie of an older
 * version's) is refused too: sign in again. */
static sk_gate sk_refresh_gate(request_rec *r, const sk_tokens *t, sk_jwt_err why,
                                         const sk_claims **old)
{
    sk_claims *c = NULL;
    *old = NULL;
    if (!t->access)
        return sk_gate_refuse(r, t, "no access token came with it");
    if (why != SK_JWT_E_EXPIRED) {
        if (!sk_is_unverifiable(r, why))
            return sk_gate_refuse(r, t, apr_pstrcat(r->pool, "the access token is not valid (",
                                                    sk_jwt_err_str(why), ")", NULL));
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, "refresh token %s not used now: the "
                      "access token cannot be checked (%s)", sk_short_hash(r->pool, t->refresh),
                      sk_jwt_err_str(why));
        return SK_GATE_LATER;
    }
    /* Valid but expired: the validator returns its claims (a cache hit when
     * it was seen valid); an expired token is never cached. */
    sk_jwt_err e = sk_validate(sk_server_config(r)->rt->access, t->access, strlen(t->access),
                               (int64_t)apr_time_sec(apr_time_now()), &c);
    if (c)
        apr_pool_cleanup_register(r->pool, c, sk_claims_release, apr_pool_cleanup_null);
    if (e != SK_JWT_E_EXPIRED || !c || !c->sub)
        return sk_gate_refuse(r, t, "the access token is not a valid expired one");
    if (sk_is_signed_out(r, c))         /* back-channel logout since it was issued */
        return sk_gate_refuse(r, t, "its session was signed out");
    switch (sk_refresh_limited(r, t->refresh, t->access)) {
    case SK_LIMIT_SESSION:
        sk_count(SK_C_REFRESH_LIMITED);
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "refresh token %s not used: a refresh of "
                      "this session or token failed lately", sk_short_hash(r->pool, t->refresh));
        return SK_GATE_REFUSE;
    case SK_LIMIT_SERVER:
        sk_count(SK_C_REFRESH_LIMITED);
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, "refresh token %s not used now: too "
                      "many refreshes failed on this server lately",
                      sk_short_hash(r->pool, t->refresh));
        return SK_GATE_LATER;
    default:
        *old = c;
        return SK_GATE_REFRESH;
    }
}

static int sk_refresh_unavailable(request_rec *r)
{
    return sk_error_page(r, HTTP_BAD_GATEWAY, "Sign-in service unavailable",
                         "Your session could not be renewed because the sign-in "
                         "service did not answer. Please try again shortly.");
}

/* Browser navigation or not: ScalekitLoginIf overrides the built-in rule. */
int sk_is_login_wanted(request_rec *r, const sk_dir_conf *d)
{
    if (d->login_if) {
        const char *err = NULL;
        int rv = ap_expr_exec(r, d->login_if, &err);
        if (rv >= 0)
            return rv;
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "ScalekitLoginIf: %s", err);
    }
    return sk_is_navigation(r);
}

/* No valid session. An API client that sent a bearer token always gets a
 * 401; "pass" lets the request through with an empty user (so that
 * "Require valid-user" holds) and no SCALEKIT_* variables. */
static int sk_unauthenticated(request_rec *r, int had_session, int bearer)
{
    sk_dir_conf *d = ap_get_module_config(r->per_dir_config, &scalekit_module);
    if (d->unauth == SK_UNAUTH_PASS && !bearer) {
        if (d->pass_token)              /* the backend's Authorization is only ever ours */
            apr_table_unset(r->headers_in, "Authorization");
        r->user = "";
        r->ap_auth_type = (char *)SK_AUTH_TYPE;
        return OK;
    }
    if (!bearer && (d->unauth == SK_UNAUTH_LOGIN
                    || (d->unauth == SK_UNAUTH_AUTO && sk_is_login_wanted(r, d))))
        /* Back to this URL afterwards, if it is one a browser keeps on this site
         * ("GET //evil.example/x" is not). */
        return sk_start_login(r, sk_local_path_ok(r->unparsed_uri) ? r->unparsed_uri : "/",
                              d->login_params, d->silent, NULL);
    apr_table_setn(r->err_headers_out, "WWW-Authenticate",
                   had_session ? "Bearer realm=\"Scalekit\", error=\"invalid_token\""
                               : "Bearer realm=\"Scalekit\"");
    return HTTP_UNAUTHORIZED;
}

/* "Authorization: Bearer <token>", when this location accepts it. */
static const char *sk_bearer_token(request_rec *r, const sk_dir_conf *d)
{
    if (!d->bearer)
        return NULL;
    const char *h = apr_table_get(r->headers_in, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7))
        return NULL;
    h += 7;
    while (*h == ' ')
        h++;
    return *h ? h : NULL;
}

/* The request's session from its cookies, refreshed when expired. Returns OK
 * (with *out NULL when there is none) or an error status to return. */
static int sk_cookie_session(request_rec *r, sk_request_session **out, int *had)
{
    sk_tokens t;
    sk_jwt_err why = SK_JWT_E_SEGMENTS;
    const sk_dir_conf *d = ap_get_module_config(r->per_dir_config, &scalekit_module);
    *out = NULL;
    if (sk_memo_session(r, d, out)) {   /* the cookies of this connection's last request */
        *had = 1;
        return OK;
    }
    int rv = sk_tokens_load(r, &t);
    if (rv != OK)
        return rv;
    *had = t.access || t.refresh || t.gone;
    if (t.gone)
        sk_tokens_clear(r, &t);
    if (t.access && (why = sk_validate_into_request(r, t.access, t.id, t.profile, t.vouched,
                                                    out)) == SK_JWT_OK) {
        sk_memo_keep(r, d, *out, t.access);
        return OK;
    }
    *out = NULL;
    if (why == SK_JWT_E_SIGNED_OUT) {       /* over: no refresh brings it back */
        if (!r->main)
            sk_tokens_clear(r, &t);
        return OK;
    }
    if (!t.refresh || r->main)
        return OK;
    /* A store's sealed record proves the session; cookies must (sk_refresh_gate). */
    const sk_claims *old = NULL;
    if (!sk_server_config(r)->store) {
        sk_gate g = sk_refresh_gate(r, &t, why, &old);
        if (g == SK_GATE_LATER)
            return sk_refresh_unavailable(r);
        if (g == SK_GATE_REFUSE) {
            sk_tokens_clear(r, &t);
            return OK;
        }
    }
    sk_count(SK_C_REFRESH);
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, "access token %s not valid: refreshing with "
                  "refresh token %s", t.access ? sk_short_hash(r->pool, t.access) : "(none)",
                  sk_short_hash(r->pool, t.refresh));
    const char *spent = t.refresh, *session = t.access;
    int called = 0;
    sk_refresh_outcome done = sk_try_refresh(r, &t, old, out, &called);
    sk_count(done == SK_REFRESHED ? SK_C_REFRESH_OK : SK_C_REFRESH_FAIL);
    if (done == SK_REFRESH_ENDED && old)
        sk_refresh_failed(r, spent, session, called);
    if (done == SK_REFRESH_LATER)
        return sk_refresh_unavailable(r);
    if (done == SK_REFRESH_ENDED) {
        sk_tokens_clear(r, &t);
        *out = NULL;
    }
    return OK;
}

int sk_find_session(request_rec *r, sk_request_session **out, int *had)
{
    sk_dir_conf *d = ap_get_module_config(r->per_dir_config, &scalekit_module);
    *out = NULL;
    *had = 0;
    const char *bearer = sk_bearer_token(r, d);
    if (bearer) {                       /* an API client: no cookies, no refresh */
        *had = 1;
        sk_count(SK_C_BEARER);
        if (sk_validate_pair(r, bearer, NULL, NULL, 0, sk_machine_clients(d), out) != SK_JWT_OK)
            *out = NULL;
        return OK;
    }
    return sk_cookie_session(r, out, had);
}

/* The claim headers' look-alikes out of a client's request, before the
 * module adds its own (check_authn) and whatever authorization decides: a
 * location that lets a request through without a user ("Require all
 * granted", "Require ip" in a RequireAny) must not pass a client's
 * X-Scalekit-Sub to the application either. An internal redirect (mod_rewrite,
 * ErrorDocument) shares headers_in with the request it comes from, and a
 * subrequest has a copy of its parent's: when one of those was scrubbed of
 * the same prefix, every header of it left is the module's own. */
static void sk_scrub_lookalikes(request_rec *r)
{
    if (!sk_claim_headers_used || !sk_server_config(r)->rt)
        return;
    const sk_dir_conf *d = ap_get_module_config(r->per_dir_config, &scalekit_module);
    if (!d->header_prefix)
        return;
    const char *done = sk_request_note(r, SK_NOTE_SCRUBBED);
    if (done && !strcasecmp(done, d->header_prefix))
        return;
    /* And any Scalekit-* header a backend could mistake for ours (CGI shows
     * Scalekit-Email as HTTP_SCALEKIT_EMAIL). */
    const char *prefixes[2] = { d->header_prefix, "Scalekit-" };
    sk_headers_scrub(r->headers_in, prefixes, 2);
    apr_table_setn(r->notes, SK_NOTE_SCRUBBED, d->header_prefix);
}

int sk_scrub_claim_lookalikes(request_rec *r)
{
    sk_scrub_lookalikes(r);
    return DECLINED;
}

int sk_scrub_subrequest_lookalikes(request_rec *r)
{
    if (r->main)
        sk_scrub_lookalikes(r);
    return DECLINED;
}

/* The backend of a ScalekitPassAccessToken location trusts Authorization to
 * be the module's: one the client sent where no session was checked
 * ("Require all granted", "Require ip" in a RequireAny: check_authn never
 * ran) goes. A location without the option, reached by an internal redirect
 * (ErrorDocument, mod_rewrite) or a subrequest of one with it, shares or
 * copies its headers: it gets the client's own back, not the user's token.
 * On an initial request at such a location nothing can have been set. */
static void sk_pass_token_fixup(request_rec *r, const sk_dir_conf *d)
{
    if (!d->pass_token && !r->prev && !r->main)
        return;
    const char *orig = sk_request_note(r, SK_NOTE_AUTHZ);
    if (d->pass_token) {
        if (!orig)
            apr_table_unset(r->headers_in, "Authorization");
    }
    else if (orig && *orig)
        apr_table_setn(r->headers_in, "Authorization", orig);
    else if (orig)
        apr_table_unset(r->headers_in, "Authorization");
}

/* The Cookie header without the module's cookies, on every request of a
 * server that uses the module, protected or not, whoever authorized it: the
 * application gets the user from the environment, never the tokens (a
 * refresh token is a long-lived credential; a CGI's environment and a PHP
 * app's $_COOKIE end up in error pages and logs). It also spares every CGI
 * ~2 KB of environment. The original stays in a note for the module's own
 * reads (its handler, a later subrequest or internal redirect to a protected
 * location). A request that sends none of our cookies costs one substring
 * search; a protected request had them stripped already, by the walk that
 * read them (sk_request_cookies). */
int sk_strip_cookies_fixup(request_rec *r)
{
    sk_runtime *rt = sk_server_config(r)->rt;
    if (!rt)
        return DECLINED;
    const sk_dir_conf *d = ap_get_module_config(r->per_dir_config, &scalekit_module);
    sk_pass_token_fixup(r, d);
    if (!d->strip_cookies) {
        /* Off here, though the request this one redirects from stripped them. */
        const char *orig = sk_request_note(r, SK_NOTE_COOKIE);
        if (orig)
            apr_table_setn(r->headers_in, "Cookie", orig);
        return DECLINED;
    }
    const char *header = apr_table_get(r->headers_in, "Cookie");
    if (!sk_cookie_may_hold_own(&rt->own_cookies, header))
        return DECLINED;
    char *kept = apr_palloc(r->pool, sk_cookie_strip_size(header));
    if (sk_cookie_strip_own(&rt->own_cookies, header, kept))
        sk_cookies_stripped(r, header, kept);
    return DECLINED;
}

void sk_cookies_stripped(request_rec *r, const char *header, const char *kept)
{
    if (!sk_request_note(r, SK_NOTE_COOKIE))
        apr_table_setn(r->notes, SK_NOTE_COOKIE, header);
    if (*kept)
        apr_table_setn(r->headers_in, "Cookie", kept);
    else
        apr_table_unset(r->headers_in, "Cookie");
}

int sk_check_authn(request_rec *r)
{
    const char *type = ap_auth_type(r);
    if (!type || strcasecmp(type, SK_AUTH_TYPE))
        return DECLINED;
    sk_server_conf *c = sk_server_config(r);
    sk_dir_conf *d = ap_get_module_config(r->per_dir_config, &scalekit_module);
    if (!c->rt) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "AuthType Scalekit is used but "
                      "mod_scalekit is not configured for this server (ScalekitEnvironmentURL"
                      " and friends)");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    sk_request_session *rs = sk_request_session_get(r);
    int had = 0;
    /* A token without aud holds only where its client is listed: a subrequest
     * or internal redirect to another location decides afresh. */
    if (rs && rs->access && !rs->access->has_aud)
        rs = NULL;
    if (!rs || !rs->access) {               /* not a subrequest of a signed-in request */
        int rv = sk_find_session(r, &rs, &had);
        if (rv != OK)
            return rv;
    }
    if (!rs) {
        sk_count(SK_C_MISSING);
        return sk_unauthenticated(r, had, sk_bearer_token(r, d) != NULL);
    }
    sk_count(rs->from_memo ? SK_C_MEMO : SK_C_VALID);
    if (APLOGrtrace1(r))                    /* its argument is worked out before the call */
        ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r, "session valid: %s", rs->access->sub
                      ? sk_env_safe(r->pool, rs->access->sub) : "-");
    ap_set_module_config(r->request_config, &scalekit_module, rs);
    if (!sk_publish(r, rs, d))
        return HTTP_UNAUTHORIZED;
    if (d->pass_token) {                    /* this request's token, refreshed or not */
        if (!sk_request_note(r, SK_NOTE_AUTHZ)) {
            const char *orig = apr_table_get(r->headers_in, "Authorization");
            apr_table_setn(r->notes, SK_NOTE_AUTHZ, orig ? orig : "");
        }
        apr_table_setn(r->headers_in, "Authorization",
                       apr_pstrcat(r->pool, "Bearer ", rs->access_token, NULL));
    }
    return OK;
}
