/* SPDX-License-Identifier: Apache-2.0 */
/* httpd_authz.c: authorization as Require providers, composable with
 * <RequireAll>/<RequireAny>:
 *   Require scalekit-organization org_1 org_2     the session's oid is one of these
 *   Require scalekit-role admin editor            one of these roles
 *   Require scalekit-permission invoices:read     one of these permissions
 *   Require scalekit-scope invoices:read          one of these scopes (machine tokens)
 *   Require scalekit-claim NAME VALUE...          the claim equals (or, for an array,
 *                                                 holds) one of the values */
#include <string.h>
#include "httpd.h"
#include "http_config.h"
#include "http_log.h"
#include "http_request.h"
#include "mod_auth.h"
#include "ap_provider.h"
#include "apr_strings.h"
#include "http_protocol.h"
#include "http_core.h"

#include "sk_module.h"
#include "sk_redirect.h"

#define SK_NOTE_FORBIDDEN "sk-forbidden"
#define SK_NOTE_ORGS      "sk-wanted-organizations"   /* would have granted */
#define SK_NOTE_SWITCH    "sk-org-switch"                 /* answer with the sign-in */

typedef enum {
    SK_AZ_ORG, SK_AZ_ROLE, SK_AZ_PERMISSION, SK_AZ_SCOPE, SK_AZ_CLAIM, SK_AZ__COUNT
} sk_az_kind;

/* Each kind's provider name, registered under it and named in log lines. */
static const char *const sk_az_names[SK_AZ__COUNT] = { "scalekit-organization",
    "scalekit-role", "scalekit-permission", "scalekit-scope", "scalekit-claim" };

typedef struct {
    sk_az_kind kind;
    const char *claim;                 /* SK_AZ_CLAIM: the claim's name */
    apr_array_header_t *values;        /* accepted values */
    int negated;                       /* under "Require not" or <RequireNone>, an odd count */
} sk_az_rule;

/* Whether a Require line's verdict is turned around: by its own "not", and
 * by each <RequireNone> around it. A refused organization is then no
 * organization to sign in to. */
static int sk_az_negated(cmd_parms *cmd)
{
    const ap_directive_t *dir = cmd->directive;
    int negated = 0;
    if (!dir)
        return 0;
    const char *args = dir->args;
    negated = !strcasecmp(ap_getword_conf(cmd->temp_pool, &args), "not");
    for (const ap_directive_t *up = dir->parent; up; up = up->parent)
        if (!strcasecmp(up->directive, "<RequireNone"))
            negated = !negated;
    return negated;
}

static const char *sk_az_parse(cmd_parms *cmd, const char *line, const void **parsed,
                               sk_az_kind kind)
{
    sk_az_rule *rule = apr_pcalloc(cmd->pool, sizeof(*rule));
    rule->kind = kind;
    rule->values = apr_array_make(cmd->pool, 4, sizeof(const char *));
    if (kind == SK_AZ_CLAIM) {
        rule->claim = ap_getword_conf(cmd->pool, &line);
        if (!*rule->claim)
            return "Require scalekit-claim: expects a claim name and one or more values";
    }
    while (*line) {
        const char *w = ap_getword_conf(cmd->pool, &line);
        if (*w)
            APR_ARRAY_PUSH(rule->values, const char *) = w;
    }
    if (!rule->values->nelts)
        return "Require scalekit-*: name at least one accepted value";
    rule->negated = sk_az_negated(cmd);
    *parsed = rule;
    return NULL;
}

static int sk_az_listed(const sk_az_rule *rule, const char *v)
{
    for (int i = 0; v && i < rule->values->nelts; i++)
        if (!strcmp(APR_ARRAY_IDX(rule->values, i, const char *), v))
            return 1;
    return 0;
}

/* A claim value as text for comparison: strings as they are, numbers in
 * their shortest form, booleans as true/false. */
static int sk_az_value_matches(apr_pool_t *p, const sk_az_rule *rule, const cJSON *v)
{
    if (cJSON_IsString(v))
        return sk_az_listed(rule, v->valuestring);
    if (cJSON_IsBool(v))
        return sk_az_listed(rule, cJSON_IsTrue(v) ? "true" : "false");
    if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        const char *text = d == (double)(apr_int64_t)d
                           ? apr_psprintf(p, "%" APR_INT64_T_FMT, (apr_int64_t)d)
                           : apr_psprintf(p, "%.17g", d);
        return sk_az_listed(rule, text);
    }
    return 0;
}

static int sk_az_claim_matches(apr_pool_t *p, const sk_az_rule *rule, const cJSON *v)
{
    if (cJSON_IsArray(v)) {
        const cJSON *item;
        cJSON_ArrayForEach(item, v)
            if (sk_az_value_matches(p, rule, item))
                return 1;
        return 0;
    }
    return sk_az_value_matches(p, rule, v);
}

/* Space-separated scopes ("scope") or an array ("scopes", machine tokens). */
static int sk_az_scope_matches(request_rec *r, const sk_az_rule *rule, const sk_claims *c)
{
    apr_pool_t *p = r->pool;
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(sk_claims_tree(c), "scopes");
    if (cJSON_IsArray(arr) && sk_az_claim_matches(p, rule, arr))
        return 1;
    char *copy = apr_pstrdup(p, c->scope ? c->scope : ""), *last;
    for (char *w = apr_strtok(copy, " ", &last); w; w = apr_strtok(NULL, " ", &last))
        if (sk_az_listed(rule, w))
            return 1;
    return 0;
}

static int sk_az_matches(request_rec *r, const sk_az_rule *rule, const sk_request_session *rs)
{
    const sk_claims *a = rs->access;
    /* Values keep their JSON types here (a role may hold a comma): the trees,
     * parsed once per token and process. */
    switch (rule->kind) {
    case SK_AZ_ORG:
        return sk_az_listed(rule, a->oid ? a->oid : rs->id ? rs->id->oid : NULL);
    case SK_AZ_ROLE:
        return sk_az_claim_matches(r->pool, rule,
                                   cJSON_GetObjectItemCaseSensitive(sk_claims_tree(a), "roles"));
    case SK_AZ_PERMISSION:
        return sk_az_claim_matches(r->pool, rule, cJSON_GetObjectItemCaseSensitive(
                                       sk_claims_tree(a), "permissions"));
    case SK_AZ_SCOPE:
        return sk_az_scope_matches(r, rule, a);
    case SK_AZ_CLAIM:
        return sk_az_claim_matches(r->pool, rule, sk_claims_lookup(a, rs->id, rule->claim));
    case SK_AZ__COUNT:
        break;
    }
    return 0;
}

static void sk_az_note_orgs(request_rec *r, const sk_az_rule *rule);

static authz_status sk_az_check(request_rec *r, const char *line, const void *parsed)
{
    const sk_az_rule *rule = parsed;
    if (!r->user)
        return AUTHZ_DENIED_NO_USER;
    const sk_request_session *rs = sk_request_session_get(r);
    if (!rs || !rs->access) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, "Require scalekit-*: no Scalekit "
                      "session (AuthType Scalekit, ScalekitUnauthAction pass?)");
        return AUTHZ_DENIED_NO_USER;
    }
    if (sk_az_matches(r, rule, rs))
        return AUTHZ_GRANTED;
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "user %s refused: needs %s %s",
                  sk_env_safe(r->pool, r->user), sk_az_names[rule->kind],
                  ap_escape_logitem(r->pool, line));
    apr_table_setn(r->notes, SK_NOTE_FORBIDDEN, line);
    if (rule->kind == SK_AZ_ORG && !rule->negated)
        sk_az_note_orgs(r, rule);
    sk_count(SK_C_FORBIDDEN);
    return AUTHZ_DENIED;
}

/* ---------------------------------------------------- organization switch
 * With ScalekitUnauthzAction login, a signed-in browser that an
 * organization rule refused is sent to sign in to that organization.
 * Providers only vote (RequireAny may still grant), so the rules note the
 * organizations that would have granted, and the answer is made where httpd
 * reports the final refusal: mod_authz_core calls ap_note_auth_failure, then
 * answers 401, whose error response sk_forbidden_status turns into the
 * redirect (as it turns other refusals into 403s). With
 * AuthzSendForbiddenOnFailure On httpd answers 403 without that call: no
 * switch then. */
static int sk_has_word(const char *list, const char *word)
{
    size_t n = strlen(word);
    for (const char *at = list; (at = strstr(at, word)); at += n)
        if ((at == list || at[-1] == ' ') && (at[n] == ' ' || !at[n]))
            return 1;
    return 0;
}

static void sk_az_note_orgs(request_rec *r, const sk_az_rule *rule)
{
    const sk_dir_conf *d = ap_get_module_config(r->per_dir_config, &scalekit_module);
    if (!d->unauthz_login)
        return;
    const char *orgs = apr_table_get(r->notes, SK_NOTE_ORGS);
    for (int i = 0; i < rule->values->nelts; i++) {
        const char *org = APR_ARRAY_IDX(rule->values, i, const char *);
        if (sk_login_param_problem(SK_LP_ORGANIZATION, org))
            continue;                     /* no id Scalekit could be sent */
        if (!orgs)
            orgs = org;
        else if (!sk_has_word(orgs, org))
            orgs = apr_pstrcat(r->pool, orgs, " ", org, NULL);
    }
    if (orgs)
        apr_table_setn(r->notes, SK_NOTE_ORGS, orgs);
}

/* Whether a switch to orgs for return_to finished moments ago: its mark is
 * then spent, and the answer is the 403 page, not a sign-in loop. The mark
 * goes either way: it serves one answer. */
static int sk_has_switch_tried(request_rec *r, const sk_server_conf *c, const char *return_to,
                           const char *orgs)
{
    const char *mark = NULL, *mark_return, *mark_orgs;
    int64_t when, now = (int64_t)apr_time_sec(apr_time_now());
    mark = sk_request_cookie(r, c->rt->switch_cookie);    /* the Cookie header as it came */
    if (!mark)
        return 0;
    sk_set_cookie(r, c->rt->switch_cookie, NULL, SK_COOKIE_CLEAR);
    if (sk_switch_mark_open(r->pool, c->rt->sealer, mark, &mark_return, &mark_orgs, &when)
        != APR_SUCCESS
        || strcmp(mark_return, return_to) || strcmp(mark_orgs, orgs)
        || when + SK_SWITCH_MARK_TTL < now || when > now + c->leeway)
        return 0;
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "user %s: still outside organization %s after "
                  "signing in to switch: refused", r->user, ap_escape_logitem(r->pool, orgs));
    return 1;
}

/* Start the switch; 1 when the answer is the redirect. */
static int sk_switch_org(request_rec *r)
{
    const char *orgs = apr_table_get(r->notes, SK_NOTE_ORGS);
    if (!orgs || r->main || !r->user || !*r->user)
        return 0;
    sk_server_conf *c = sk_server_config(r);
    const sk_dir_conf *d = ap_get_module_config(r->per_dir_config, &scalekit_module);
    /* An API client (a bearer token, XHR, fetch) cannot follow a sign-in. */
    if (!c->rt || apr_table_get(r->headers_in, "Authorization") || !sk_is_login_wanted(r, d))
        return 0;
    const request_rec *first = r;
    while (first->prev)
        first = first->prev;              /* the URL the browser asked for */
    const char *return_to = sk_local_path_ok(first->unparsed_uri) ? first->unparsed_uri : "/";
    if (sk_has_switch_tried(r, c, return_to, orgs))
        return 0;
    sk_login_params lp = { { NULL } };
    if (d->login_params)
        lp = *d->login_params;
    if (strchr(orgs, ' ')) {              /* several would do: the user picks */
        lp.v[SK_LP_ORGANIZATION] = NULL;
        lp.v[SK_LP_PROMPT] = "select_account";
    } else {
        lp.v[SK_LP_ORGANIZATION] = orgs;
        if (lp.v[SK_LP_PROMPT] && !strcmp(lp.v[SK_LP_PROMPT], "none"))
            lp.v[SK_LP_PROMPT] = NULL;    /* a switch may need the user */
    }
    if (sk_start_login(r, return_to, &lp, 0, orgs) != HTTP_MOVED_TEMPORARILY)
        return 0;
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "user %s: outside organization %s here: "
                  "sent to sign in to it", r->user, ap_escape_logitem(r->pool, orgs));
    apr_table_setn(r->notes, SK_NOTE_SWITCH, "1");
    ap_custom_response(r, HTTP_UNAUTHORIZED,
                       "<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body>"
                       "<p>This page belongs to another organization: signing in to it."
                       "</p></body></html>\n");
    return 1;
}

/* httpd answers a signed-in user whom authorization refuses with a 401 (an
 * invitation to try another password: AuthzSendForbiddenOnFailure). For a
 * Scalekit session that is wrong: signing in again changes nothing. When one
 * of our rules refused, the error response becomes a 403. */
int sk_note_auth_failure(request_rec *r, const char *type)
{
    if (strcasecmp(type, SK_AUTH_TYPE))
        return DECLINED;
    if (sk_switch_org(r))
        return OK;
    if (apr_table_get(r->notes, SK_NOTE_FORBIDDEN) || (r->user && *r->user)) {
        apr_table_setn(r->notes, SK_NOTE_FORBIDDEN, "1");
        ap_custom_response(r, HTTP_UNAUTHORIZED,
                           "<!DOCTYPE html>\n<html><head><title>403 Forbidden</title></head>"
                           "<body><h1>Forbidden</h1><p>You are signed in, but your account "
                           "does not have access to this page.</p></body></html>\n");
    }
    return OK;
}

void sk_forbidden_status(request_rec *r)
{
    if (r->status == HTTP_UNAUTHORIZED && apr_table_get(r->notes, SK_NOTE_SWITCH)) {
        r->status = HTTP_MOVED_TEMPORARILY;   /* Location and the state cookie are set */
        r->status_line = NULL;
        apr_table_unset(r->err_headers_out, "WWW-Authenticate");
        return;
    }
    if (r->status == HTTP_UNAUTHORIZED && apr_table_get(r->notes, SK_NOTE_FORBIDDEN)) {
        r->status = HTTP_FORBIDDEN;
        r->status_line = NULL;
        apr_table_unset(r->err_headers_out, "WWW-Authenticate");
    }
}

#define SK_AZ_PROVIDER(fn, kind)                                                   \
    static const char *fn##_parse(cmd_parms *cmd, const char *line, const void **p) \
    { return sk_az_parse(cmd, line, p, kind); }                                       \
    static const authz_provider fn = { sk_az_check, fn##_parse };

SK_AZ_PROVIDER(sk_az_org, SK_AZ_ORG)
SK_AZ_PROVIDER(sk_az_role, SK_AZ_ROLE)
SK_AZ_PROVIDER(sk_az_permission, SK_AZ_PERMISSION)
SK_AZ_PROVIDER(sk_az_scope, SK_AZ_SCOPE)
SK_AZ_PROVIDER(sk_az_claim, SK_AZ_CLAIM)

void sk_register_authz(apr_pool_t *p)
{
    static const authz_provider *const providers[SK_AZ__COUNT] = {
        [SK_AZ_ORG] = &sk_az_org, [SK_AZ_ROLE] = &sk_az_role,
        [SK_AZ_PERMISSION] = &sk_az_permission, [SK_AZ_SCOPE] = &sk_az_scope,
        [SK_AZ_CLAIM] = &sk_az_claim,
    };
    for (int k = 0; k < SK_AZ__COUNT; k++)
        ap_register_auth_provider(p, AUTHZ_PROVIDER_GROUP, sk_az_names[k],
                                  AUTHZ_PROVIDER_VERSION, providers[k],
                                  AP_AUTH_INTERNAL_PER_CONF);
}
