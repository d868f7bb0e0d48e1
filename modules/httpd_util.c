/* SPDX-License-Identifier: Apache-2.0 */
/* httpd_util.c: request helpers shared by the hook and the handler: cookies,
 * error pages, telling browsers from API clients, the callback URL. */
#include <string.h>
#include <unistd.h>
#include "httpd.h"
#include "http_config.h"
#include "http_core.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"
#include "apr_strings.h"
#include "apr_lib.h"
#include "apr_atomic.h"

#include <openssl/sha.h>

#include "sk_module.h"
#include "sk_b64.h"
#include "sk_cookie.h"
#include "sk_oauth.h"
#include "sk_redirect.h"

sk_server_conf *sk_server_config(request_rec *r)
{
    return ap_get_module_config(r->server->module_config, &scalekit_module);
}

int sk_is_https(request_rec *r)
{
    return !strcmp(ap_http_scheme(r), "https");
}

const char *sk_short_hash(apr_pool_t *p, const char *token)
{
    char h[13];
    if (!token)
        return "-";
    sk_token_hash(token, strlen(token), h);
    return apr_pstrdup(p, h);
}

const char *sk_request_note(request_rec *r, const char *name)
{
    for (; r; r = r->main ? r->main : r->prev) {
        const char *v = apr_table_get(r->notes, name);
        if (v)
            return v;
    }
    return NULL;
}

const char *sk_cookie_header(request_rec *r)
{
    const char *orig = sk_request_note(r, SK_NOTE_COOKIE);
    return orig ? orig : apr_table_get(r->headers_in, "Cookie");
}

/* A response that sets a cookie of the module, on an ordinary page (a
 * refresh) as on the module's own, is this browser's: a shared cache must
 * not keep it and hand the tokens, or their clearing, to the next client.
 * "private", not "no-store": the browser's own cache may keep the page as
 * the application allows (browsers never replay a cached Set-Cookie), and an
 * application's "no-store" is kept. err_headers_out survives an error
 * response and an internal redirect; the filter merges it with what the
 * application says (sk_cache_control_private). */
static void sk_response_private(request_rec *r)
{
    if (apr_table_get(r->notes, SK_NOTE_PRIVATE))
        return;
    apr_table_setn(r->notes, SK_NOTE_PRIVATE, "1");
    if (!apr_table_get(r->err_headers_out, "Cache-Control"))
        apr_table_setn(r->err_headers_out, "Cache-Control", "private");
    ap_add_output_filter(SK_PRIVATE_FILTER, NULL, r, r->connection);
}

/* An internal redirect (ErrorDocument, mod_rewrite) of a request whose
 * response sets our cookies has a filter chain of its own: the filter again.
 * Any other request got it where the cookie was set (sk_response_private),
 * which spares every request a look at its notes here. */
void sk_insert_private_filter(request_rec *r)
{
    if (r->prev && sk_server_config(r)->rt && !apr_table_get(r->notes, SK_NOTE_PRIVATE)
        && sk_request_note(r->prev, SK_NOTE_PRIVATE))
        ap_add_output_filter(SK_PRIVATE_FILTER, NULL, r, r->connection);
}

typedef struct {
    apr_pool_t *p;
    const char *all;
} sk_join;

static int sk_join_values(void *ctx, const char *key, const char *value)
{
    sk_join *j = ctx;
    (void)key;
    j->all = j->all ? apr_pstrcat(j->p, j->all, ", ", value, NULL) : value;
    return 1;
}

/* Once, before the headers go out (and before mod_cache's save filter):
 * every Cache-Control of the response, the application's and ours, becomes
 * one that keeps shared caches out. */
apr_status_t sk_private_filter(ap_filter_t *f, apr_bucket_brigade *bb)
{
    request_rec *r = f->r;
    sk_join j = { r->pool, NULL };
    apr_table_do(sk_join_values, &j, r->headers_out, "Cache-Control", NULL);
    apr_table_do(sk_join_values, &j, r->err_headers_out, "Cache-Control", NULL);
    apr_table_unset(r->headers_out, "Cache-Control");
    apr_table_setn(r->err_headers_out, "Cache-Control", sk_cache_control_private(r->pool, j.all));
    ap_remove_output_filter(f);
    return ap_pass_brigade(f->next, bb);
}

/* Set-Cookie written here rather than with ap_cookie_write: that one logs the
 * whole value at debug level, and a token must never reach a log. */
void sk_set_cookie(request_rec *r, const char *name, const char *value, int life)
{
    sk_set_cookie_at(r, name, value, life, "/");
}

void sk_set_cookie_at(request_rec *r, const char *name, const char *value, int life,
                      const char *path)
{
    sk_server_conf *c = sk_server_config(r);
    int secure = c->cookie_secure < 0 ? sk_is_https(r) : c->cookie_secure;
    int clear = life == SK_COOKIE_CLEAR;
    if (!strcmp(c->cookie_samesite, "None"))
        secure = 1;                     /* browsers drop SameSite=None without it */
    const char *v = apr_pstrcat(r->pool, name, "=", clear ? "" : value, "; Path=", path,
                                "; HttpOnly; SameSite=", c->cookie_samesite,
                                secure ? "; Secure" : "",
                                c->cookie_domain ? "; Domain=" : "",
                                c->cookie_domain ? c->cookie_domain : "",
                                clear ? "; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT"
                                : life > 0 ? apr_psprintf(r->pool, "; Max-Age=%d", life)
                                : "", NULL);
    apr_table_addn(r->err_headers_out, "Set-Cookie", v);
    sk_response_private(r);
}

/* The ID token cookie at both of its paths (the sign-in handler's, and "/"
 * where a browser signed in before it moved may still hold one), and the
 * profile cookie, whichever layout wrote them. */
void sk_clear_session_cookies(request_rec *r)
{
    sk_server_conf *c = sk_server_config(r);
    sk_set_cookie(r, c->cookie_access, NULL, SK_COOKIE_CLEAR);
    sk_set_cookie(r, c->cookie_id, NULL, SK_COOKIE_CLEAR);
    if (c->rt && c->rt->id_cookie_path)
        sk_set_cookie_at(r, c->cookie_id, NULL, SK_COOKIE_CLEAR, c->rt->id_cookie_path);
    sk_set_cookie(r, c->cookie_refresh, NULL, SK_COOKIE_CLEAR);
    sk_set_cookie(r, c->cookie_profile, NULL, SK_COOKIE_CLEAR);
}

/* Several cookies in one walk (the hot path reads three). A request has one
 * Cookie header; should it have several, the first holds the answer. When
 * the header is still the client's and this location strips the module's
 * cookies, the same walk strips them (sk_strip_cookies_fixup then finds none
 * left): a protected request walks its ~2 KB of cookies once, not twice. */
void sk_request_cookies(request_rec *r, const char *const *names, const char **values, int n)
{
    const char *orig = sk_request_note(r, SK_NOTE_COOKIE);
    if (orig) {
        sk_cookie_get_many(r->pool, orig, names, values, n);
        return;
    }
    const char *header = apr_table_get(r->headers_in, "Cookie");
    const sk_dir_conf *d = ap_get_module_config(r->per_dir_config, &scalekit_module);
    sk_runtime *rt = sk_server_config(r)->rt;
    if (!rt || !d->strip_cookies || !sk_cookie_may_hold_own(&rt->own_cookies, header)) {
        sk_cookie_get_many(r->pool, header, names, values, n);
        return;
    }
    char *kept = apr_palloc(r->pool, sk_cookie_strip_size(header));
    if (sk_cookie_take_own(&rt->own_cookies, header, kept, r->pool, names, values, n))
        sk_cookies_stripped(r, header, kept);
}

/* Cache keys begin with hash bytes, never a fixed prefix: mod_socache_shmcb
 * picks its subcache by the first byte of the key, and a shared prefix would
 * put every entry in one subcache of many. */
const char *sk_hashed_key(apr_pool_t *p, const char *kind, const char *value)
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    char b64[SK_B64URL_ENCLEN(SHA256_DIGEST_LENGTH) + 1];
    static apr_uint32_t unhashed;
    if (sk_sha256(value, strlen(value), md) != APR_SUCCESS)
        /* Never one key for many values (one user's record under another's
         * id): a key that matches nothing, so the lookup fails closed. */
        return apr_psprintf(p, "!%" APR_PID_T_FMT "-%" APR_TIME_T_FMT "-%u:%s", getpid(),
                            apr_time_now(), apr_atomic_inc32(&unhashed), kind);
    sk_b64url_encode(b64, md, sizeof(md));
    return apr_pstrcat(p, b64, ":", kind, NULL);
}

void *sk_process_find(server_rec *s, const char *tag)
{
    void *found = NULL;
    return apr_pool_userdata_get(&found, tag, s->process->pool) == APR_SUCCESS ? found : NULL;
}

apr_status_t sk_process_keep(server_rec *s, const char *tag, void *data)
{
    return apr_pool_userdata_set(data, tag, NULL, s->process->pool);
}

void *sk_process_shm(server_rec *s, const char *tag, apr_size_t size)
{
    void *found = sk_process_find(s, tag);
    apr_shm_t *shm;
    if (found)
        return found;
    apr_status_t rv = apr_shm_create(&shm, size, NULL, s->process->pool);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, rv, s, "mod_scalekit: no shared memory for %s",
                     tag);
        return NULL;
    }
    found = apr_shm_baseaddr_get(shm);
    memset(found, 0, size);
    sk_process_keep(s, tag, found);
    return found;
}

const char *sk_request_cookie(request_rec *r, const char *name)
{
    const char *v = sk_cookie_get(r->pool, sk_cookie_header(r), name);
    return v && *v ? v : NULL;
}

/* A plain HTML error page through httpd's own error response (so
 * ErrorDocument still applies); returns the status for the hook to return. */
int sk_error_page(request_rec *r, int status, const char *title, const char *detail)
{
    const char *retry = apr_pstrcat(r->pool, sk_login_path(r), "?return_to=%2F", NULL);
    apr_table_setn(r->err_headers_out, "Cache-Control", "no-store");
    ap_custom_response(r, status, apr_psprintf(r->pool,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>%s</title></head>"
        "<body><h1>%s</h1><p>%s</p><p><a href=\"%s\">Sign in again</a></p></body></html>\n",
        ap_escape_html(r->pool, title), ap_escape_html(r->pool, title),
        ap_escape_html(r->pool, detail), ap_escape_html(r->pool, retry)));
    return status;
}

/* Can this request follow a redirect through Scalekit and back? Only a
 * browser's top-level navigation can; XHR, fetch and API clients get 401. */
int sk_is_navigation(request_rec *r)
{
    if (r->method_number != M_GET)    /* HEAD is M_GET too */
        return 0;
    /* A WebSocket upgrade cannot follow a redirect (browsers fail it). */
    const char *upgrade = apr_table_get(r->headers_in, "Upgrade");
    if (upgrade && ap_find_token(r->pool, upgrade, "websocket"))
        return 0;
    const char *xrw = apr_table_get(r->headers_in, "X-Requested-With");
    if (xrw && *xrw)
        return 0;
    const char *mode = apr_table_get(r->headers_in, "Sec-Fetch-Mode");
    if (mode && strcasecmp(mode, "navigate"))
        return 0;
    const char *dest = apr_table_get(r->headers_in, "Sec-Fetch-Dest");
    if (dest && strcasecmp(dest, "document") && strcasecmp(dest, "iframe")
        && strcasecmp(dest, "frame"))
        return 0;
    const char *accept = apr_table_get(r->headers_in, "Accept");
    if (accept && !ap_strcasestr(accept, "text/html") && !ap_strstr_c(accept, "*/*"))
        return 0;
    return 1;
}

/* Where the handler's login lives: beside the callback (…/callback → …/login). */
const char *sk_login_path(request_rec *r)
{
    sk_server_conf *c = sk_server_config(r);
    const char *path = c->rt ? c->rt->redirect_path : "/";
    const char *slash = strrchr(path, '/');
    return apr_pstrcat(r->pool, apr_pstrmemdup(r->pool, path, (apr_size_t)(slash - path)),
                       "/login", NULL);
}

/* Name-based virtual hosting hands a request for an unknown name to the
 * default server: only the names it was given may go into a URL we send. */
static int sk_host_is_served(request_rec *r)
{
    const server_rec *s = r->server;
    const char *host = r->hostname;
    if (!host || (s->server_hostname && !strcasecmp(host, s->server_hostname)))
        return 1;                     /* no Host (HTTP/1.0): ap_construct_url uses ServerName */
    for (int i = 0; s->names && i < s->names->nelts; i++)
        if (!strcasecmp(host, APR_ARRAY_IDX(s->names, i, const char *)))
            return 1;
    for (int i = 0; s->wild_names && i < s->wild_names->nelts; i++)
        if (!ap_strcasecmp_match(host, APR_ARRAY_IDX(s->wild_names, i, const char *)))
            return 1;
    return 0;
}

const char *sk_callback_url(request_rec *r)
{
    sk_server_conf *c = sk_server_config(r);
    if (c->redirect_uri[0] != '/')
        return c->redirect_uri;
    if (!sk_host_is_served(r)) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, "refused: Host '%s' is not a ServerName "
                      "or ServerAlias of this server, so no callback URL is made for it",
                      ap_escape_logitem(r->pool, r->hostname));
        return NULL;
    }
    return ap_construct_url(r->pool, c->redirect_uri, r);
}
