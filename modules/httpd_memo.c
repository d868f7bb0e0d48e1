/* SPDX-License-Identifier: Apache-2.0 */
/* httpd_memo.c: a connection's last signed-in Cookie header and what it
 * proved. A browser sends the same cookies with every request of a page
 * (the page, its CSS, scripts, images) over one kept-alive connection; the
 * second and later of those compare the header with the one before instead
 * of walking it and looking both tokens up in the validation caches (about
 * 4k instructions a request). What can change between two requests is
 * checked again on every one: the access token's exp and the sign-out marks.
 * The rest (signature, iss, aud, the ID token's binding) is a function of the
 * bytes, as the validation cache's entries are; the memo is dropped after
 * SK_MEMO_TTL anyway, so that the caches' own rules (an ID token validated
 * afresh every hour) stay the rule.
 *
 * One memo per connection, used only by the thread serving it: no lock. An
 * HTTP/2 stream runs on a secondary connection of its own, which would never
 * see a second request: it keeps none. */
#include <stdlib.h>
#include <string.h>
#include "httpd.h"
#include "http_config.h"
#include "http_request.h"
#include "apr_strings.h"

#include "sk_module.h"

#define SK_MEMO_TTL 60                  /* seconds */
#define SK_MEMO_HEADER_MAX 8192         /* a larger Cookie header is not kept */
#define SK_MEMO_SAMPLE 16

typedef struct sk_memo {
    const sk_runtime *rt;               /* the server whose validators spoke */
    sk_claims *access, *id;             /* one reference each; id may be NULL */
    int64_t until;                      /* seconds: exp + leeway, at most SK_MEMO_TTL */
    size_t header_len, kept_len, token_len;
    char *header;                       /* the client's Cookie header */
    char *kept;                         /* it without the module's cookies (may be "") */
    char *token;                        /* the access token */
    size_t size;                        /* of the buffer the three above share */
    unsigned misses;                    /* requests since the last hit */
    sk_published_set published;         /* what the claims publish (httpd_session.c) */
} sk_memo;

static void sk_memo_drop_claims(sk_memo *m)
{
    sk_claims_unref(m->access);
    sk_claims_unref(m->id);
    m->access = m->id = NULL;
    m->header_len = 0;
    m->published.user = NULL;
}

static apr_status_t sk_memo_release(void *data)
{
    sk_memo *m = data;
    sk_memo_drop_claims(m);
    free(m->header);
    return APR_SUCCESS;
}

/* The connection's memo, made on first use; NULL where none is kept. */
static sk_memo *sk_memo_of(conn_rec *c, int make)
{
    sk_memo *m = ap_get_module_config(c->conn_config, &scalekit_module);
    if (m || !make || c->master)
        return m;
    m = apr_pcalloc(c->pool, sizeof(*m));
    apr_pool_cleanup_register(c->pool, m, sk_memo_release, apr_pool_cleanup_null);
    ap_set_module_config(c->conn_config, &scalekit_module, m);
    return m;
}

static int sk_memo_is_cold(const sk_memo *m)
{
    return m->misses >= SK_MEMO_SAMPLE;
}

/* Whether this request's session may come from, or go to, the memo: a
 * connection's own request (not a subrequest or internal redirect, whose
 * headers were another request's) at a location that strips the module's
 * cookies, in cookie mode. */
static int sk_memo_applies(request_rec *r, const sk_dir_conf *d)
{
    return !r->main && !r->prev && d->strip_cookies && !sk_server_config(r)->store;
}

int sk_memo_session(request_rec *r, const sk_dir_conf *d, sk_request_session **out)
{
    sk_memo *m = sk_memo_of(r->connection, 0);
    if (!m || !m->header_len || !sk_memo_applies(r, d))
        return 0;
    /* A connection that carries one user after another (a reverse proxy's)
     * would look and copy for nothing: after a run of misses, only every
     * SK_MEMO_SAMPLE-th request looks (and keeps its session). */
    if (sk_memo_is_cold(m) && ++m->misses % SK_MEMO_SAMPLE)
        return 0;
    const char *h = apr_table_get(r->headers_in, "Cookie");
    /* One pass, no strlen: strncmp stops at h's end, where the copy (which
     * holds no NUL) differs; then h must end where the copy does. */
    if (!h || m->rt != sk_server_config(r)->rt || strncmp(h, m->header, m->header_len)
        || h[m->header_len]) {
        if (!sk_memo_is_cold(m))
            m->misses++;
        return 0;
    }
    if (apr_time_sec(r->request_time) >= m->until || sk_is_signed_out(r, m->access))
        return 0;                       /* the full path says why, and logs it */
    sk_request_session *rs = sk_request_session_new(r);
    rs->access = sk_claims_ref(m->access);
    rs->id = m->id ? sk_claims_ref(m->id) : NULL;
    rs->published = &m->published;
    if (d->pass_token)
        rs->access_token = apr_pstrmemdup(r->pool, m->token, m->token_len);
    /* sk_cookies_stripped, knowing that no request before this one did */
    apr_table_setn(r->notes, SK_NOTE_COOKIE, h);
    if (m->kept_len)
        apr_table_setn(r->headers_in, "Cookie", apr_pstrmemdup(r->pool, m->kept, m->kept_len));
    else
        apr_table_unset(r->headers_in, "Cookie");
    rs->from_memo = 1;
    m->misses = 0;
    *out = rs;
    return 1;
}

/* Room for n bytes in m's buffer (kept across requests: a connection that
 * sees many users reuses it). */
static int sk_memo_room(sk_memo *m, size_t n)
{
    if (n <= m->size)
        return 1;
    char *b = realloc(m->header, n);
    if (!b)
        return 0;
    m->header = b;
    m->size = n;
    return 1;
}

void sk_memo_keep(request_rec *r, const sk_dir_conf *d, sk_request_session *rs,
                  const char *token)
{
    if (!sk_memo_applies(r, d))
        return;
    const char *header = sk_request_note(r, SK_NOTE_COOKIE);
    const char *kept = apr_table_get(r->headers_in, "Cookie");
    sk_memo *m = header ? sk_memo_of(r->connection, 1) : NULL;
    if (!m || (sk_memo_is_cold(m) && m->misses % SK_MEMO_SAMPLE))
        return;                         /* not a request that looked (sk_memo_session) */
    sk_memo_drop_claims(m);
    size_t hl = strlen(header), kl = kept ? strlen(kept) : 0, tl = strlen(token);
    if (hl > SK_MEMO_HEADER_MAX || !sk_memo_room(m, hl + kl + tl))
        return;
    memcpy(m->header, header, hl);
    m->kept = m->header + hl;
    memcpy(m->kept, kept ? kept : "", kl);
    m->token = m->kept + kl;
    memcpy(m->token, token, tl);
    m->kept_len = kl;
    m->token_len = tl;
    m->rt = sk_server_config(r)->rt;
    int leeway = sk_server_config(r)->leeway;
    m->until = rs->access->exp + (leeway > 0 ? leeway : 0);
    if (m->until > apr_time_sec(r->request_time) + SK_MEMO_TTL)
        m->until = apr_time_sec(r->request_time) + SK_MEMO_TTL;
    m->access = sk_claims_ref(rs->access);
    m->id = rs->id ? sk_claims_ref(rs->id) : NULL;
    m->header_len = hl;
    rs->published = &m->published;      /* filled by this request's sk_publish */
}
