/* SPDX-License-Identifier: Apache-2.0 */
/* httpd_revoke.c: ScalekitRevokeOnLogout — end the Scalekit session itself on
 * sign-out: POST ENV/api/v1/sessions/{sid}/revoke with a client_credentials
 * token, which is kept (per process and per server: each virtual host has its
 * own client and environment) until shortly before it expires. */
#include <string.h>
#include <stdlib.h>
#include "httpd.h"
#include "http_config.h"
#include "http_log.h"
#include "apr_strings.h"
#include "apr_lib.h"

#include "sk_module.h"
#include "sk_oauth.h"

static apr_status_t sk_m2m_free(void *data)
{
    sk_m2m_cache *m = data;
    free(m->token);
    m->token = NULL;
    return APR_SUCCESS;
}

apr_status_t sk_revoke_init(apr_pool_t *p, sk_runtime *rt)
{
    rt->m2m = (sk_m2m_cache){ NULL, NULL, 0 };
    apr_status_t rv = apr_thread_mutex_create(&rt->m2m.lock, APR_THREAD_MUTEX_DEFAULT, p);
    if (rv == APR_SUCCESS)
        apr_pool_cleanup_register(p, &rt->m2m, sk_m2m_free, apr_pool_cleanup_null);
    return rv;
}

static const char *sk_m2m_cached(request_rec *r, sk_m2m_cache *m)
{
    const char *token = NULL;
    apr_thread_mutex_lock(m->lock);
    if (m->token && apr_time_now() < m->until)
        token = apr_pstrdup(r->pool, m->token);
    apr_thread_mutex_unlock(m->lock);
    return token;
}

static void sk_m2m_keep(sk_m2m_cache *m, const char *token, long life)
{
    apr_thread_mutex_lock(m->lock);
    free(m->token);
    m->token = strdup(token);
    m->until = m->token ? apr_time_now() + apr_time_from_sec(life) : 0;
    apr_thread_mutex_unlock(m->lock);
}

/* A management token of this server's client: the cached one, or a new one
 * from its environment's token endpoint. */
static const char *sk_m2m(request_rec *r, sk_server_conf *c)
{
    const char *token = sk_m2m_cached(r, &c->rt->m2m);
    if (token)
        return token;
    sk_http_resp resp;
    sk_token_set ts;
    const char *why;
    const char *body = sk_oauth_client_credentials_body(r->pool, c->client_id,
                                                        c->client_secret, NULL);
    if (sk_http_request(&c->rt->http, c->rt->token_url, body, &resp) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, "revoke: token endpoint unreachable: "
                      "%s", resp.err);
        return NULL;
    }
    apr_status_t bad = sk_oauth_parse_token_response(r->pool, resp.status, resp.body, resp.len, &ts,
                                            &why);
    sk_http_resp_free(&resp);
    if (bad != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, "revoke: no management token: %s", why);
        return NULL;
    }
    sk_m2m_keep(&c->rt->m2m, ts.access_token, ts.expires_in > 120 ? ts.expires_in - 60 : 60);
    return ts.access_token;
}

static int sk_sid_ok(const char *sid)
{
    if (!*sid || strlen(sid) > 128)
        return 0;
    for (; *sid; sid++)
        if (!apr_isalnum(*sid) && *sid != '_' && *sid != '-')
            return 0;
    return 1;
}

void sk_revoke_session(request_rec *r, const char *sid)
{
    sk_server_conf *c = sk_server_config(r);
    if (!sk_sid_ok(sid))
        return;
    const char *token = sk_m2m(r, c);
    if (!token)
        return;
    sk_http_opts o = c->rt->http;
    o.bearer = token;
    sk_http_resp resp;
    const char *url = apr_pstrcat(r->pool, c->env_url, "/api/v1/sessions/", sid, "/revoke",
                                  NULL);
    if (sk_http_request(&o, url, "", &resp) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, "revoke of session %s failed: %s",
                      sid, resp.err);
        return;
    }
    ap_log_rerror(APLOG_MARK, resp.status == 200 ? APLOG_INFO : APLOG_WARNING, 0, r,
                  "revoke of Scalekit session %s: status %ld", sid, resp.status);
    if (resp.status == 401) {                  /* the cached token went stale: drop it */
        apr_thread_mutex_lock(c->rt->m2m.lock);
        c->rt->m2m.until = 0;
        apr_thread_mutex_unlock(c->rt->m2m.lock);
    }
    sk_http_resp_free(&resp);
}
