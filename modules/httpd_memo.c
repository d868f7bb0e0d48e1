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
 * One memo per connection, used only by the thread serving it: no lock, and
 * plain counts. A hit lends the entry's own session to the request instead
 * of taking references on claims that every connection of the user shares
 * (atomic writes to one cache line from both cores, four a request). A
 * request's pool can outlive the start of the next request (pipelining: its
 * log runs when the response is written), so an entry replaced while lent
 * is freed by the last request that gives it back. An HTTP/2 stream runs on
 * a secondary connection of its own, which would never see a second
 * request: it keeps none. */
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

typedef struct sk_memo_entry {
    sk_request_session rs;              /* lent to the requests it serves; refs are the entry's */
    sk_published_set published;         /* what the claims publish (httpd_session.c) */
    const sk_runtime *rt;               /* the server whose validators spoke */
    int64_t until;                      /* seconds: exp + leeway, at most SK_MEMO_TTL */
    unsigned lent;                      /* requests alive whose session is rs or its published */
    int retired;                        /* replaced while lent: the last to give back frees */
    size_t header_len, kept_len;
    char *header;                       /* the client's Cookie header (no NUL) */
    char *kept;                         /* it without the module's cookies (no NUL, may be empty) */
    size_t size;                        /* of the buffer header, kept and rs.access_token share */
} sk_memo_entry;

typedef struct sk_memo {
    sk_memo_entry *entry;               /* the current one, or NULL */
    unsigned misses;                    /* requests since the last hit */
} sk_memo;

static void sk_memo_entry_clear(sk_memo_entry *e)
{
    sk_claims_unref(e->rs.access);
    sk_claims_unref(e->rs.id);
    e->rs.access = e->rs.id = NULL;
    e->header_len = 0;
    e->published.user = NULL;
}

static void sk_memo_entry_free(sk_memo_entry *e)
{
    sk_memo_entry_clear(e);
    free(e->header);
    free(e);
}

static apr_status_t sk_memo_give_back(void *data)
{
    sk_memo_entry *e = data;
    if (!--e->lent && e->retired)
        sk_memo_entry_free(e);
    return APR_SUCCESS;
}

static void sk_memo_lend(request_rec *r, sk_memo_entry *e)
{
    e->lent++;
    apr_pool_cleanup_register(r->pool, e, sk_memo_give_back, apr_pool_cleanup_null);
}

/* The entry goes with the connection, or with the last request it is lent
 * to where one outlives it (request pools are the connection pool's
 * children and go first, so that is not expected). */
static void sk_memo_retire(sk_memo *m)
{
    sk_memo_entry *e = m->entry;
    m->entry = NULL;
    if (e && e->lent)
        e->retired = 1;
    else if (e)
        sk_memo_entry_free(e);
}

static apr_status_t sk_memo_release(void *data)
{
    sk_memo_retire(data);
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

/* Whether a header field's name is Cookie, in any case (a byte or'ed with
 * 0x20 is a lower-case letter only when it is that letter in either case). */
static int sk_is_cookie_name(const char *k)
{
    return (k[0] | 0x20) == 'c' && (k[1] | 0x20) == 'o' && (k[2] | 0x20) == 'o'
           && (k[3] | 0x20) == 'k' && (k[4] | 0x20) == 'i' && (k[5] | 0x20) == 'e' && !k[6];
}

/* The request's Cookie header field, in one walk of the headers: NULL when
 * there is none, or more than one (the full path decides those). */
static apr_table_entry_t *sk_memo_cookie_field(request_rec *r)
{
    const apr_array_header_t *a = apr_table_elts(r->headers_in);
    apr_table_entry_t *f = (apr_table_entry_t *)a->elts, *found = NULL;
    for (int i = 0; i < a->nelts; i++) {
        if (f[i].key && sk_is_cookie_name(f[i].key)) {
            if (found)
                return NULL;
            found = &f[i];
        }
    }
    return found;
}

/* Whether the field's value is the entry's header, byte for byte, in one
 * pass: strncmp stops at h's end, where the copy (which holds no NUL)
 * differs; then h must end where the copy does. */
static int sk_memo_is_same(const sk_memo_entry *e, const char *h)
{
    return !strncmp(h, e->header, e->header_len) && !h[e->header_len];
}

int sk_memo_session(request_rec *r, const sk_dir_conf *d, sk_request_session **out)
{
    sk_memo *m = sk_memo_of(r->connection, 0);
    sk_memo_entry *e = m ? m->entry : NULL;
    if (!e || !e->header_len || !sk_memo_applies(r, d))
        return 0;
    /* A connection that carries one user after another (a reverse proxy's)
     * would look and copy for nothing: after a run of misses, only every
     * SK_MEMO_SAMPLE-th request looks (and keeps its session). */
    if (sk_memo_is_cold(m) && ++m->misses % SK_MEMO_SAMPLE)
        return 0;
    apr_table_entry_t *field = sk_memo_cookie_field(r);
    if (!field || e->rt != sk_server_config(r)->rt || !sk_memo_is_same(e, field->val)) {
        if (!sk_memo_is_cold(m))
            m->misses++;
        return 0;
    }
    if (apr_time_sec(r->request_time) >= e->until || sk_is_signed_out(r, e->rs.access))
        return 0;                       /* the full path says why, and logs it */
    sk_memo_lend(r, e);
    /* sk_cookies_stripped, knowing that no request before this one did */
    apr_table_setn(r->notes, SK_NOTE_COOKIE, field->val);
    if (e->kept_len)                    /* the one field: in place */
        field->val = apr_pstrmemdup(r->pool, e->kept, e->kept_len);
    else
        apr_table_unset(r->headers_in, "Cookie");
    m->misses = 0;
    *out = &e->rs;
    return 1;
}

/* No session kept: the entry emptied for reuse, or retired while lent. */
static void sk_memo_forget(sk_memo *m)
{
    if (m->entry && m->entry->lent)
        sk_memo_retire(m);
    else if (m->entry)
        sk_memo_entry_clear(m->entry);
}

/* An entry with room for n bytes: the current one where no request holds
 * it (its buffer kept: a connection that sees many users reuses it), else
 * a new one. NULL when out of memory. */
static sk_memo_entry *sk_memo_entry_for(sk_memo *m, size_t n)
{
    sk_memo_forget(m);
    if (!m->entry && !(m->entry = calloc(1, sizeof(*m->entry))))
        return NULL;
    sk_memo_entry *e = m->entry;
    if (n > e->size) {
        char *b = realloc(e->header, n);
        if (!b)
            return NULL;
        e->header = b;
        e->size = n;
    }
    return e;
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
    size_t hl = strlen(header), kl = kept ? strlen(kept) : 0, tl = strlen(token);
    if (hl > SK_MEMO_HEADER_MAX) {
        sk_memo_forget(m);
        return;
    }
    sk_memo_entry *e = sk_memo_entry_for(m, hl + kl + tl + 1);
    if (!e)
        return;
    memcpy(e->header, header, hl);
    e->kept = e->header + hl;
    memcpy(e->kept, kept ? kept : "", kl);
    char *t = e->kept + kl;
    memcpy(t, token, tl + 1);
    e->kept_len = kl;
    e->rt = sk_server_config(r)->rt;
    int leeway = sk_server_config(r)->leeway;
    e->until = rs->access->exp + (leeway > 0 ? leeway : 0);
    if (e->until > apr_time_sec(r->request_time) + SK_MEMO_TTL)
        e->until = apr_time_sec(r->request_time) + SK_MEMO_TTL;
    e->rs.access = sk_claims_ref(rs->access);
    e->rs.id = rs->id ? sk_claims_ref(rs->id) : NULL;
    e->rs.access_token = t;
    e->rs.published = &e->published;
    e->rs.from_memo = 1;
    e->header_len = hl;
    /* This request fills the entry's published values (sk_publish): it holds
     * the entry as a hit would. */
    sk_memo_lend(r, e);
    rs->published = &e->published;
}
