/* SPDX-License-Identifier: Apache-2.0 */
/* httpd_handler.c: SetHandler scalekit — the login, callback and logout URLs. */
#include <string.h>
#include "httpd.h"
#include "http_config.h"
#include "http_core.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"
#include "apr_strings.h"
#include "util_script.h"

#include "sk_module.h"
#include "sk_oauth.h"
#include "sk_redirect.h"

static const char *sk_arg(request_rec *r, const char *name)
{
    return r->args ? sk_query_get(r->pool, r->args, name) : NULL;
}

static int sk_redirect(request_rec *r, const char *location)
{
    apr_table_setn(r->err_headers_out, "Location", location);
    apr_table_setn(r->err_headers_out, "Cache-Control", "no-store");
    return HTTP_MOVED_TEMPORARILY;
}

/* IdP-initiated sign-in: Scalekit sends the browser to the login URL with a
 * signed idp_initiated_login token; once validated like any token, its
 * claims start an ordinary authorization request (with state, nonce, PKCE). */
static int sk_idp_initiated(request_rec *r, const char *jwt, sk_login_params *params,
                            const sk_login_params *fixed, const char **return_to)
{
    sk_server_conf *c = sk_server_config(r);
    sk_claims *claims = NULL;
    /* The clock now, not r->request_time: a client that trickles its headers
     * makes that stale, and it would date exp checks and key refetches. */
    sk_jwt_err e = sk_validate(c->rt->access, jwt, strlen(jwt),
                               (int64_t)apr_time_sec(apr_time_now()), &claims);
    if (e != SK_JWT_OK) {
        if (claims)
            sk_claims_unref(claims);
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, "login: idp_initiated_login %s "
                      "refused: %s", sk_short_hash(r->pool, jwt), sk_jwt_err_str(e));
        return 0;
    }
    static const int taken[] = { SK_LP_CONNECTION, SK_LP_ORGANIZATION, SK_LP_LOGIN_HINT };
    const cJSON *tree = sk_claims_tree(claims);
    for (size_t k = 0; k < sizeof(taken) / sizeof(taken[0]); k++) {
        int i = taken[k];
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(tree, sk_login_param_names[i]);
        if (!(fixed && fixed->v[i]) && cJSON_IsString(v)
            && !sk_login_param_problem(i, v->valuestring))
            params->v[i] = apr_pstrdup(r->pool, v->valuestring);
    }
    const cJSON *relay = cJSON_GetObjectItemCaseSensitive(tree, "relay_state");
    if (cJSON_IsString(relay) && sk_local_path_ok(relay->valuestring))
        *return_to = apr_pstrdup(r->pool, relay->valuestring);
    sk_claims_unref(claims);
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, "login: IdP-initiated sign-in accepted");
    return 1;
}

/* The sign-in parameters: those ScalekitLoginParams fixes for this location
 * (the handler's), then the query's for the others. A query value Scalekit
 * would not accept is dropped (logged), as is every unknown name. */
static void sk_collect_params(request_rec *r, const sk_login_params *fixed, sk_login_params *out)
{
    memset(out, 0, sizeof(*out));
    for (int i = 0; i < SK_LP_COUNT; i++) {
        if (fixed && fixed->v[i]) {
            out->v[i] = fixed->v[i];
            continue;
        }
        const char *v = sk_arg(r, sk_login_param_names[i]);
        const char *why = v && *v ? sk_login_param_problem(i, v) : NULL;
        if (why)
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "login: %s dropped: %s",
                          sk_login_param_names[i], why);
        else if (v && *v)
            out->v[i] = v;
    }
}

static int sk_login(request_rec *r)
{
    sk_server_conf *c = sk_server_config(r);
    const char *return_to = sk_arg(r, "return_to");
    if (!return_to || !*return_to)
        return_to = "/";
    if (!sk_redirect_ok(r->pool, return_to, c->redirect_origins)) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "login: return_to refused (not a local "
                      "path nor an allowed origin)");
        return sk_error_page(r, HTTP_BAD_REQUEST, "Invalid return address",
                             "The page to return to after sign-in is not on this site.");
    }
    sk_dir_conf *d = ap_get_module_config(r->per_dir_config, &scalekit_module);
    sk_login_params params;
    sk_collect_params(r, d->login_params, &params);
    const char *idp_jwt = sk_arg(r, "idp_initiated_login");
    if (idp_jwt && *idp_jwt && !sk_idp_initiated(r, idp_jwt, &params, d->login_params,
                                                 &return_to))
        return sk_error_page(r, HTTP_BAD_REQUEST, "Sign-in could not be verified",
                             "The sign-in request from Scalekit is invalid or expired.");
    const char *prompt = params.v[SK_LP_PROMPT];
    int silent = prompt && !strcmp(prompt, "none");
    return sk_start_login(r, return_to, &params, silent, NULL);
}

/* The pending sign-in this callback finishes: its cookie goes either way. */
static int sk_take_state(request_rec *r, const char *state, sk_login_state *st)
{
    sk_server_conf *c = sk_server_config(r);
    if (!state || !*state || strlen(state) > 256)
        return 0;
    const char *name = sk_state_cookie_name(r, state);
    const char *sealed = sk_request_cookie(r, name);
    if (!sealed)
        return 0;
    sk_set_cookie(r, name, NULL, SK_COOKIE_CLEAR);
    if (sk_login_state_open(r->pool, c->rt->sealer, sealed, st) != APR_SUCCESS)
        return 0;
    return !strcmp(st->state, state);
}

static int sk_callback_error(request_rec *r, const sk_login_state *st, const char *error)
{
    const char *desc = sk_arg(r, "error_description");
    if (st && st->silent && (!strcmp(error, "login_required")
                             || !strcmp(error, "interaction_required"))) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, "silent sign-in needs the user: "
                      "signing in with a prompt");
        sk_login_params params;
        sk_login_params_parse(r->pool, st->params, &params);
        if (params.v[SK_LP_PROMPT] && !strcmp(params.v[SK_LP_PROMPT], "none"))
            params.v[SK_LP_PROMPT] = NULL;
        return sk_start_login(r, st->return_to, &params, 0, st->switch_to);
    }
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "callback: Scalekit answered error '%s'",
                  ap_escape_logitem(r->pool, error));
    return sk_error_page(r, HTTP_FORBIDDEN, "Sign-in did not complete",
                         apr_pstrcat(r->pool, "Scalekit answered: ", error,
                                     desc ? " — " : "", desc ? desc : "", NULL));
}

/* Exchange the code; check the ID token (with its nonce and expiry) and the
 * access token before any cookie is set. */
static int sk_exchange(request_rec *r, const char *code, const sk_login_state *st,
                       sk_token_set *ts)
{
    sk_server_conf *c = sk_server_config(r);
    sk_http_resp resp;
    const char *why;
    const char *body = sk_oauth_code_body(r->pool, c->client_id, c->client_secret, code,
                                          st->redirect_uri ? st->redirect_uri
                                                           : c->redirect_uri, st->verifier);
    if (sk_http_request(&c->rt->http, c->rt->token_url, body, &resp) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "callback: token endpoint %s unreachable:"
                      " %s", c->rt->token_url, resp.err);
        return HTTP_BAD_GATEWAY;
    }
    apr_status_t bad = sk_oauth_parse_token_response(r->pool, resp.status, resp.body, resp.len, ts,
                                            &why);
    sk_http_resp_free(&resp);
    if (bad != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "callback: code exchange failed: %s", why);
        return resp.status >= 500 || resp.status == 200 ? HTTP_BAD_GATEWAY : HTTP_FORBIDDEN;
    }
    if (!ts->id_token) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "callback: no id_token in the answer "
                      "(is openid among ScalekitScopes?)");
        return HTTP_BAD_GATEWAY;
    }
    return OK;
}

static int sk_check_id_token(request_rec *r, const sk_request_session *rs,
                             const sk_login_state *st)
{
    sk_server_conf *c = sk_server_config(r);
    int64_t now = (int64_t)apr_time_sec(apr_time_now());
    if (!rs->id) {                      /* dropped: not of the access token's session */
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, "callback: the ID token is not of the "
                      "access token's session: refused");
        return 0;
    }
    const cJSON *nonce = cJSON_GetObjectItemCaseSensitive(sk_claims_tree(rs->id), "nonce");
    if (!cJSON_IsString(nonce) || strcmp(nonce->valuestring, st->nonce)) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, "callback: ID token nonce does not "
                      "match the sign-in's: refused");
        return 0;
    }
    if (!rs->id->exp || rs->id->exp + c->leeway < now) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, "callback: ID token expired or "
                      "without exp: refused");
        return 0;
    }
    return 1;
}

/* A finished organization switch leaves a short-lived mark: should the
 * return address still refuse the user, the answer is the 403 page, not
 * another sign-in (httpd_authz.c). */
static void sk_mark_switch(request_rec *r, const sk_login_state *st)
{
    sk_server_conf *c = sk_server_config(r);
    const char *mark = sk_switch_mark_seal(r->pool, c->rt->sealer, st->return_to,
                                           st->switch_to, (int64_t)apr_time_sec(apr_time_now()));
    if (mark)
        sk_set_cookie(r, c->rt->switch_cookie, mark, SK_SWITCH_MARK_TTL);
}

static int sk_callback(request_rec *r)
{
    sk_server_conf *c = sk_server_config(r);
    sk_login_state st;
    sk_token_set ts;
    sk_request_session *rs;
    if (!sk_take_state(r, sk_arg(r, "state"), &st)) {
        sk_count(SK_C_CALLBACK_REFUSED);
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, "callback: state missing, unknown, "
                      "expired cookie or altered: no token request made");
        return sk_error_page(r, HTTP_BAD_REQUEST, "Sign-in could not be verified",
                             "This sign-in was not started here, was already finished, or "
                             "its cookie was lost.");
    }
    /* The clock now: a request trickled in slowly must not stretch the state's life. */
    if (st.created + c->state_ttl < (int64_t)apr_time_sec(apr_time_now()))
        return sk_error_page(r, HTTP_BAD_REQUEST, "Sign-in took too long",
                             "The sign-in expired before it finished.");
    const char *error = sk_arg(r, "error");
    if (error && *error)
        return sk_callback_error(r, &st, error);
    const char *code = sk_arg(r, "code");
    if (!code || !*code || strlen(code) > 4096)
        return sk_error_page(r, HTTP_BAD_REQUEST, "Sign-in could not be verified",
                             "The answer from Scalekit carries no code.");
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, "callback: state %s matches a pending "
                  "sign-in; exchanging code %s", sk_short_hash(r->pool, st.state),
                  sk_short_hash(r->pool, code));
    int rv = sk_exchange(r, code, &st, &ts);
    if (rv != OK)
        return sk_error_page(r, rv, "Sign-in did not complete", rv == HTTP_BAD_GATEWAY
                             ? "The sign-in service did not answer as expected."
                             : "Scalekit refused to finish this sign-in.");
    if (sk_validate_into_request(r, ts.access_token, ts.id_token, NULL, 0, &rs) != SK_JWT_OK
        || !sk_check_id_token(r, rs, &st))
        return sk_error_page(r, HTTP_BAD_GATEWAY, "Sign-in could not be verified",
                             "The tokens from the sign-in service did not pass the checks.");
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, "callback: ID token %s verified (signature, "
                  "iss, aud, exp, nonce), access token %s valid; refresh token %s",
                  sk_short_hash(r->pool, ts.id_token), sk_short_hash(r->pool, ts.access_token),
                  ts.refresh_token ? sk_short_hash(r->pool, ts.refresh_token) : "none");
    sk_tokens fresh = { .access = ts.access_token, .id = ts.id_token, .id_claims = rs->id,
                        .refresh = ts.refresh_token, .vouched = rs->access->exp };
    rv = sk_tokens_save(r, &fresh);
    if (rv != OK)
        return rv;
    sk_count(SK_C_CALLBACK_OK);
    if (st.switch_to)
        sk_mark_switch(r, &st);
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "signed in: %s, session %s, returning to %s",
                  rs->access->sub ? sk_env_safe(r->pool, rs->access->sub) : "-",
                  sk_short_hash(r->pool, ts.access_token),
                  ap_escape_logitem(r->pool, st.return_to));
    return sk_redirect(r, st.return_to);
}

/* The post-logout URL: configured, or the site root, made absolute on the
 * origin of an absolute ScalekitRedirectURI (the public one, also behind a
 * TLS-terminating proxy), else on the request's; NULL for a host not served. */
static const char *sk_post_logout(request_rec *r)
{
    sk_server_conf *c = sk_server_config(r);
    const char *target = c->post_logout_uri ? c->post_logout_uri : "/";
    apr_uri_t u;
    if (*target != '/')
        return target;
    if (c->redirect_uri[0] != '/' && apr_uri_parse(r->pool, c->redirect_uri, &u) == APR_SUCCESS)
        return apr_pstrcat(r->pool, u.scheme, "://", u.hostinfo, target, NULL);
    return sk_callback_url(r) ? ap_construct_url(r->pool, target, r) : NULL;
}

/* The session being signed out, as far as its tokens verify: the access
 * token (expired is fine: it is the session's credential, an HttpOnly cookie
 * or a sealed record that never travels in a URL), and the ID token only
 * when it belongs to that access token's session. An ID token alone proves
 * nothing: ID tokens travel in logout URLs (id_token_hint), and a cookie is
 * the browser's word. *sid: the Scalekit session to revoke; *hint: the ID
 * token to name at Scalekit's logout; each NULL when not established. */
static void sk_logout_session(request_rec *r, const sk_tokens *t, const char **sid,
                              const char **hint)
{
    sk_runtime *rt = sk_server_config(r)->rt;
    int64_t now = (int64_t)apr_time_sec(apr_time_now());
    sk_jwt_err (*check)(sk_validator *, const char *, size_t, int64_t, sk_claims **)
        = t->vouched > now ? sk_validate_vouched : sk_validate;
    sk_claims *a = NULL, *id = NULL;
    *sid = *hint = NULL;
    sk_jwt_err e = t->access ? check(rt->access, t->access, strlen(t->access), now, &a)
                             : SK_JWT_E_SEGMENTS;
    if ((e == SK_JWT_OK || e == SK_JWT_E_EXPIRED) && a->sub) {
        *sid = a->sid ? apr_pstrdup(r->pool, a->sid) : NULL;
        e = t->id ? check(rt->id, t->id, strlen(t->id), now, &id) : SK_JWT_E_SEGMENTS;
        if (e == SK_JWT_OK && sk_id_token_bound(a, id))
            *hint = t->id;
    }
    if (t->id && !*hint)
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "sign-out: ID token %s is not of a valid "
                      "session of this browser: not used", sk_short_hash(r->pool, t->id));
    sk_claims_unref(a);
    sk_claims_unref(id);
}

static int sk_logout(request_rec *r)
{
    sk_server_conf *c = sk_server_config(r);
    sk_tokens t;
    const char *sid, *hint;
    const char *after = sk_post_logout(r);
    if (!after)
        return sk_error_page(r, HTTP_BAD_REQUEST, "Unknown host",
                             "This site is not served under the name the request gave.");
    if (sk_tokens_load(r, &t) != OK)
        memset(&t, 0, sizeof(t));            /* store down: still clear the browser side */
    sk_logout_session(r, &t, &sid, &hint);
    /* Revoking is an action at Scalekit: only for the session the browser holds. */
    if (c->revoke_on_logout && sid)
        sk_revoke_session(r, sid);
    sk_tokens_clear(r, &t);
    sk_count(SK_C_LOGOUT);
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "signed out: ID token %s",
                  sk_short_hash(r->pool, hint));
    return sk_redirect(r, sk_oauth_logout_url(r->pool, c->env_url, hint, after, NULL));
}

/* GET …/session: the signed-in user's claims as JSON for front-end code, or 401. */
static int sk_session_json(request_rec *r)
{
    sk_request_session *rs;
    int had;
    int rv = sk_find_session(r, &rs, &had);
    apr_table_setn(r->err_headers_out, "Cache-Control", "no-store");
    if (rv != OK)
        return rv;
    ap_set_content_type(r, "application/json");
    if (!rs) {
        r->status = HTTP_UNAUTHORIZED;
        ap_rputs("{\"authenticated\":false}\n", r);
        return OK;
    }
    cJSON *out = cJSON_CreateObject();
    cJSON_AddTrueToObject(out, "authenticated");
    const sk_claims *a = rs->access, *id = rs->id;
    const char *email = a->email ? a->email : id ? id->email : NULL;
    const char *name = a->name ? a->name : id ? id->name : NULL;
    cJSON_AddStringToObject(out, "sub", a->sub ? a->sub : "");
    if (email)
        cJSON_AddStringToObject(out, "email", email);
    if (name)
        cJSON_AddStringToObject(out, "name", name);
    if (a->oid)
        cJSON_AddStringToObject(out, "organization_id", a->oid);
    if (a->sid)
        cJSON_AddStringToObject(out, "session_id", a->sid);
    cJSON_AddNumberToObject(out, "expires_at", (double)a->exp);
    /* Fresh trees, handed to out and freed with it. */
    cJSON_AddItemToObject(out, "access_token_claims", sk_claims_parse(a));
    if (id)
        cJSON_AddItemToObject(out, "id_token_claims", sk_claims_parse(id));
    char *text = cJSON_PrintUnformatted(out);
    ap_rputs(text, r);
    ap_rputs("\n", r);
    cJSON_free(text);
    cJSON_Delete(out);
    return OK;
}

/* OpenID Connect Back-Channel Logout 1.0: Scalekit POSTs a logout_token; the
 * sessions it names end (httpd_signout.c): with a session store on every
 * server sharing it, with cookie sessions on this machine. */
#define SK_BCL_EVENT "http://schemas.openid.net/event/backchannel-logout"
#define SK_BCL_MAX_AGE 300

static int sk_bcl_answer(request_rec *r, int status, const char *error, const char *why)
{
    apr_table_setn(r->err_headers_out, "Cache-Control", "no-store");
    if (status != HTTP_OK)
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, "back-channel logout refused: %s", why);
    r->status = status;
    ap_set_content_type(r, "application/json");
    if (error)
        ap_rprintf(r, "{\"error\":\"%s\",\"error_description\":\"%s\"}\n", error, why);
    return OK;
}

/* The checks of the specification beyond signature, iss and aud; tree is
 * c's payload. */
static const char *sk_bcl_claims_problem(const sk_claims *c, const cJSON *tree, int64_t now,
                                         int leeway)
{
    const cJSON *events = cJSON_GetObjectItemCaseSensitive(tree, "events");
    const cJSON *jti = cJSON_GetObjectItemCaseSensitive(tree, "jti");
    if (!tree)
        return "out of memory";
    if (!cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(events, SK_BCL_EVENT)))
        return "no back-channel logout event";
    if (cJSON_GetObjectItemCaseSensitive(tree, "nonce"))
        return "a logout token must not carry a nonce";
    if (!c->sid && !c->sub)
        return "neither sid nor sub";
    if (!cJSON_IsString(jti) || !*jti->valuestring)
        return "no jti";
    if (!c->iat || c->iat > now + leeway || c->iat < now - SK_BCL_MAX_AGE - leeway)
        return "iat missing or out of range";
    if (c->exp && c->exp + leeway < now)
        return "expired";
    return NULL;
}

static int sk_backchannel_logout(request_rec *r)
{
    sk_server_conf *c = sk_server_config(r);
    apr_array_header_t *pairs = NULL;
    const char *token = NULL;
    if (r->method_number != M_POST)
        return HTTP_METHOD_NOT_ALLOWED;
    if (!sk_signout_store(c))
        return sk_bcl_answer(r, HTTP_NOT_IMPLEMENTED, "unsupported",
                             "no shared cache to keep sign-outs in");
    if (ap_parse_form_data(r, NULL, &pairs, 8, 16384) != OK || !pairs)
        return sk_bcl_answer(r, HTTP_BAD_REQUEST, "invalid_request", "unreadable form body");
    for (int i = 0; i < pairs->nelts; i++) {
        ap_form_pair_t *f = &APR_ARRAY_IDX(pairs, i, ap_form_pair_t);
        if (!strcmp(f->name, "logout_token")) {
            apr_off_t len;
            apr_size_t size;
            char *buf;
            apr_brigade_length(f->value, 1, &len);
            size = (apr_size_t)len;
            buf = apr_palloc(r->pool, size + 1);
            apr_brigade_flatten(f->value, buf, &size);
            buf[size] = '\0';
            token = buf;
        }
    }
    if (!token || !*token)
        return sk_bcl_answer(r, HTTP_BAD_REQUEST, "invalid_request", "no logout_token");
    int64_t now = (int64_t)apr_time_sec(apr_time_now());
    sk_claims *claims = NULL;
    sk_jwt_err e = sk_validate(c->rt->logout, token, strlen(token), now, &claims);
    const cJSON *tree = e == SK_JWT_OK ? sk_claims_tree(claims) : NULL;
    const char *problem = e != SK_JWT_OK ? sk_jwt_err_str(e)
                        : sk_bcl_claims_problem(claims, tree, now, c->leeway);
    if (!problem) {
        const cJSON *jti = cJSON_GetObjectItemCaseSensitive(tree, "jti");
        if (sk_store_jti_seen(r, jti->valuestring,
                              apr_time_from_sec(SK_BCL_MAX_AGE + 2 * c->leeway)))
            problem = "jti replayed";
    }
    if (problem) {
        if (claims)
            sk_claims_unref(claims);
        return sk_bcl_answer(r, HTTP_BAD_REQUEST, "invalid_request", problem);
    }
    /* With a sid the token names that session (of sub); without, every
     * session of sub. Either ends what was issued up to the token's iat. */
    apr_status_t rv = sk_signout_mark(r, claims->sid, claims->sid ? NULL : claims->sub,
                                      claims->iat);
    ap_log_rerror(APLOG_MARK, rv == APR_SUCCESS ? APLOG_INFO : APLOG_ERR, rv, r,
                  "back-channel logout: %s of sid %s, sub %s signed out up to %" APR_INT64_T_FMT
                  "%s", claims->sid ? "the session" : "every session",
                  claims->sid ? sk_env_safe(r->pool, claims->sid) : "-",
                  claims->sub ? sk_env_safe(r->pool, claims->sub) : "-",
                  (apr_int64_t)claims->iat, rv == APR_SUCCESS ? "" : ": NOT KEPT (store failed)");
    sk_claims_unref(claims);
    if (rv != APR_SUCCESS)
        return sk_bcl_answer(r, HTTP_SERVICE_UNAVAILABLE, "temporarily_unavailable",
                             "the sign-out could not be kept");
    return sk_bcl_answer(r, HTTP_OK, NULL, NULL);
}

/* The last path segment names the action; the callback is also found by the
 * path of ScalekitRedirectURI. */
static const char *sk_action(request_rec *r, const sk_runtime *rt)
{
    if (!strcmp(r->uri, rt->redirect_path))
        return "callback";
    const char *slash = strrchr(r->uri, '/');
    return slash ? slash + 1 : r->uri;
}

int sk_handler(request_rec *r)
{
    if (!r->handler || strcmp(r->handler, SK_HANDLER))
        return DECLINED;
    sk_server_conf *c = sk_server_config(r);
    if (!c->rt) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "SetHandler scalekit is used but "
                      "mod_scalekit is not configured for this server");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    const char *action = sk_action(r, c->rt);
    if (!strcmp(action, "backchannel-logout"))
        return sk_backchannel_logout(r);
    if (r->method_number != M_GET)
        return HTTP_METHOD_NOT_ALLOWED;
    if (!strcmp(action, "login"))
        return sk_login(r);
    if (!strcmp(action, "callback"))
        return sk_callback(r);
    if (!strcmp(action, "logout"))
        return sk_logout(r);
    if (!strcmp(action, "session"))
        return sk_session_json(r);
    return HTTP_NOT_FOUND;
}
