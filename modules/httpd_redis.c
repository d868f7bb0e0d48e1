/* SPDX-License-Identifier: Apache-2.0 */
/* httpd_redis.c: a session store in Redis, through the module's own client
 * (hiredis), for ScalekitSessionStore redis://[user[:password]@]host[:port][/db].
 *
 * httpd's mod_socache_redis sends no AUTH and selects no database, so it
 * cannot use a managed Redis or any Redis with a password. This one sends
 * AUTH [user] password (ScalekitSessionStorePassword, or the URL) and SELECT
 * db on every new connection. Each process keeps a small pool of connections,
 * made on first use in the child (never in the parent: a connection must not
 * be shared across fork) and taken by one request thread at a time. Connects
 * and commands time out after ScalekitTimeout. A connection that breaks (Redis
 * restarted) is dropped with every idle one, and the command is tried once
 * more on a new connection; while Redis cannot be reached, or refuses the
 * password, one request at a time tries a new connection, at most every
 * 0.1 s doubling to 1 s (the requests in between fail at once, answered as
 * ScalekitSessionStoreFailure says), each failure logged with its cause.
 * The password is never logged: log lines name the store by its URL without
 * it (sk_redis_url.display). */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <hiredis/hiredis.h>
#include "httpd.h"
#include "http_config.h"
#include "http_log.h"
#include "apr_atomic.h"
#include "apr_strings.h"
#include "apr_thread_mutex.h"
#include "apr_thread_proc.h"

#include "sk_module.h"
#include "sk_redis_url.h"

#define SK_REDIS_IDLE     64                       /* idle connections kept per process */
#define SK_BACKOFF_MIN    apr_time_from_msec(100)
#define SK_BACKOFF_MAX    apr_time_from_sec(1)
#define SK_REDIS_PREFIX   "scalekit:"              /* beside other users of one Redis */
#define SK_WATCH_RETRY_MAX apr_time_from_sec(30)   /* the invalidation connection's back-off */
#define SK_WATCH_POLL_MS  250                      /* how soon a stopping child is heard */
#define SK_WATCH_PING     apr_time_from_sec(5)     /* a silent connection is asked after */

typedef struct sk_redis {
    const sk_redis_url *url;
    const char *password;           /* NULL: no AUTH */
    struct timeval timeout;         /* connect and each command */
    apr_thread_mutex_t *lock;       /* guards what follows */
    redisContext *idle[SK_REDIS_IDLE];
    int nidle;
    apr_time_t retry_at;            /* no new connection before then */
    apr_time_t backoff;             /* 0 while Redis answers */
    int probing;                    /* a request is trying to connect while it does not */
    apr_status_t down_rv;           /* why the last connection failed */
    /* Copies (httpd_store_copy.c), kept true by Redis' invalidations: */
    volatile apr_uint32_t live;     /* 1 while they arrive: copies may be used */
    volatile apr_uint32_t stopping; /* the child is exiting */
    apr_thread_t *watcher;
    server_rec *s;
} sk_redis;

/* ------------------------------------------------------------ set-up */

/* At check_config: what can be checked without connecting ("apache2 -t"
 * does not reach Redis, so a wrong password shows only in the error log). */
const char *sk_redis_check(apr_pool_t *p, const sk_server_conf *c)
{
    const sk_redis_url *u = c->store_redis;
    if (!u)
        return "mod_scalekit: ScalekitSessionStorePassword is set but ScalekitSessionStore is "
               "not a redis:// address (httpd's shared object caches take no password)";
    if (u->password && c->store_password_set)
        return apr_psprintf(p, "mod_scalekit: ScalekitSessionStore %s: the password is given "
                            "twice, in the URL and by ScalekitSessionStorePassword; keep one",
                            u->display);
    if (u->user && !u->password && !c->store_password)
        return apr_psprintf(p, "mod_scalekit: ScalekitSessionStore %s names the user %s but "
                            "no password: set ScalekitSessionStorePassword", u->display,
                            u->user);
    return NULL;
}

apr_status_t sk_redis_post_config(apr_pool_t *pconf, server_rec *s, const sk_server_conf *c,
                                  sk_store *st)
{
    sk_redis *rd = apr_pcalloc(pconf, sizeof(*rd));
    rd->url = c->store_redis;
    rd->password = rd->url->password ? rd->url->password : c->store_password;
    rd->timeout.tv_sec = c->timeout;
    apr_status_t rv = apr_thread_mutex_create(&rd->lock, APR_THREAD_MUTEX_DEFAULT, pconf);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, "mod_scalekit: ScalekitSessionStore %s: "
                     "cannot create its lock", rd->url->display);
        return rv;
    }
    st->ops = &sk_redis_ops;
    st->redis = rd;
    st->remote = 1;                     /* sign-out marks are polled (httpd_signout.c) */
    rd->s = s;
    st->copies = sk_store_copy_init(s);
    return APR_SUCCESS;
}

/* ------------------------------------------------------- connections */

/* Redis' word on why it refused, unless it repeats the password. */
static const char *sk_redis_said(const sk_redis *rd, const redisReply *reply)
{
    if (!reply)
        return "no answer";
    if (rd->password && strstr(reply->str, rd->password))
        return "(its message is not shown: it holds the password)";
    return reply->str;
}

/* One command when the connection opens; NULL, or why it failed (*rv too). */
static const char *sk_redis_hello(apr_pool_t *p, const sk_redis *rd, redisContext *ctx,
                                  apr_status_t *rv)
{
    const char *argv[3];
    int argc = 0;
    if (rd->password) {
        argv[argc++] = "AUTH";
        if (rd->url->user)
            argv[argc++] = rd->url->user;
        argv[argc++] = rd->password;
    } else {
        argv[argc++] = "PING";      /* says NOAUTH when Redis wants a password */
    }
    redisReply *reply = redisCommandArgv(ctx, argc, argv, NULL);
    const char *why = NULL;
    *rv = APR_EACCES;
    if (!reply) {
        *rv = APR_ECONNREFUSED;
        why = apr_psprintf(p, "no answer to %s: %s", argv[0], ctx->errstr);
    } else if (reply->type == REDIS_REPLY_ERROR) {
        why = rd->password
            ? apr_psprintf(p, "Redis refused the %s%s and password (%s): check the user and "
                           "ScalekitSessionStorePassword", rd->url->user ? "user " : "default "
                           "user", rd->url->user ? rd->url->user : "", sk_redis_said(rd, reply))
            : apr_psprintf(p, "Redis wants a password (%s): set ScalekitSessionStorePassword",
                           sk_redis_said(rd, reply));
    }
    freeReplyObject(reply);
    if (why || !rd->url->db)
        return why;
    char db[16];
    apr_snprintf(db, sizeof(db), "%d", rd->url->db);
    const char *select[2] = { "SELECT", db };
    if (!(reply = redisCommandArgv(ctx, 2, select, NULL)))
        why = apr_psprintf(p, "no answer to SELECT: %s", ctx->errstr);
    else if (reply->type == REDIS_REPLY_ERROR)
        why = apr_psprintf(p, "cannot select database %d (%s)", rd->url->db,
                           sk_redis_said(rd, reply));
    freeReplyObject(reply);
    return why;
}

static redisContext *sk_redis_connect(apr_pool_t *p, server_rec *s, const sk_redis *rd,
                                      apr_status_t *rv)
{
    const char *why = NULL;
    redisContext *ctx = redisConnectWithTimeout(rd->url->host, rd->url->port, rd->timeout);
    *rv = APR_ECONNREFUSED;
    if (!ctx)
        why = "out of memory";
    else if (ctx->err)
        why = apr_psprintf(p, "cannot connect: %s", ctx->errstr);
    else if (redisSetTimeout(ctx, rd->timeout) != REDIS_OK)
        why = apr_psprintf(p, "cannot set its timeout: %s", ctx->errstr);
    else
        why = sk_redis_hello(p, rd, ctx, rv);
    if (!why) {
        redisEnableKeepAlive(ctx);          /* a dead peer shows before the next command */
        return ctx;
    }
    ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, "session store %s: %s", rd->url->display, why);
    if (ctx)
        redisFree(ctx);
    return NULL;
}

/* A connection for one command: an idle one (*reused), or a new one unless
 * Redis is resting after a failure. */
static redisContext *sk_redis_take(apr_pool_t *p, server_rec *s, sk_redis *rd, int *reused,
                                   apr_status_t *rv)
{
    redisContext *ctx = NULL;
    apr_thread_mutex_lock(rd->lock);
    if (rd->nidle)
        ctx = rd->idle[--rd->nidle];
    apr_time_t now = apr_time_now();
    int resting = !ctx && rd->backoff && (now < rd->retry_at || rd->probing);
    if (!ctx && !resting && rd->backoff)
        rd->probing = 1;            /* Redis may hang: one request waits for it, not all */
    *rv = rd->down_rv;
    apr_thread_mutex_unlock(rd->lock);
    if ((*reused = ctx != NULL) || resting)
        return ctx;
    ctx = sk_redis_connect(p, s, rd, rv);
    apr_thread_mutex_lock(rd->lock);
    int was_down = rd->backoff != 0;
    rd->probing = 0;
    if (ctx) {
        rd->backoff = rd->retry_at = 0;
    } else {
        rd->backoff = !rd->backoff ? SK_BACKOFF_MIN : rd->backoff * 2 > SK_BACKOFF_MAX
                    ? SK_BACKOFF_MAX : rd->backoff * 2;
        rd->retry_at = now + rd->backoff;
        rd->down_rv = *rv;
    }
    apr_thread_mutex_unlock(rd->lock);
    if (ctx && was_down)
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, "session store %s: connected again",
                     rd->url->display);
    return ctx;
}

static void sk_redis_give(sk_redis *rd, redisContext *ctx)
{
    apr_thread_mutex_lock(rd->lock);
    if (rd->nidle < SK_REDIS_IDLE) {
        rd->idle[rd->nidle++] = ctx;
        ctx = NULL;
    }
    apr_thread_mutex_unlock(rd->lock);
    if (ctx)
        redisFree(ctx);
}

/* After a broken connection: the idle ones most likely broke with it. */
static void sk_redis_drop_idle(sk_redis *rd)
{
    redisContext *gone[SK_REDIS_IDLE];
    apr_thread_mutex_lock(rd->lock);
    int n = rd->nidle;
    memcpy(gone, rd->idle, sizeof(gone[0]) * (size_t)n);
    rd->nidle = 0;
    apr_thread_mutex_unlock(rd->lock);
    for (int i = 0; i < n; i++)
        redisFree(gone[i]);
}

/* One command: its reply (the caller frees it), or NULL with *rv. */
static redisReply *sk_redis_try(const sk_store *st, server_rec *s, apr_pool_t *p, int argc,
                                const char **argv, const size_t *lens, apr_status_t *rv)
{
    sk_redis *rd = st->redis;
    for (int attempt = 0; attempt < 2; attempt++) {
        int reused;
        redisContext *ctx = sk_redis_take(p, s, rd, &reused, rv);
        if (!ctx)
            return NULL;
        redisReply *reply = redisCommandArgv(ctx, argc, argv, lens);
        if (reply) {
            sk_redis_give(rd, ctx);
            if (reply->type != REDIS_REPLY_ERROR)
                return reply;
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, "session store %s: %s refused: %s",
                         rd->url->display, argv[0], sk_redis_said(rd, reply));
            freeReplyObject(reply);
            *rv = APR_EGENERAL;
            return NULL;
        }
        int timed_out = ctx->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK);
        ap_log_error(APLOG_MARK, reused && !timed_out ? APLOG_INFO : APLOG_ERR, 0, s,
                     "session store %s: %s: %s", rd->url->display, argv[0],
                     timed_out ? "timed out" : ctx->errstr);
        redisFree(ctx);
        *rv = timed_out ? APR_TIMEUP : APR_ECONNRESET;
        if (!reused || timed_out)
            return NULL;
        sk_redis_drop_idle(rd);
    }
    return NULL;
}

/* The same, counted when it failed (scalekit-status store_errors). */
static redisReply *sk_redis_run(const sk_store *st, server_rec *s, apr_pool_t *p, int argc,
                                const char **argv, const size_t *lens, apr_status_t *rv)
{
    redisReply *reply = sk_redis_try(st, s, p, argc, argv, lens, rv);
    if (!reply)
        sk_count(SK_C_STORE_ERROR);
    return reply;
}

/* ------------------------------------------------------- the store */

static apr_status_t sk_redis_get(const sk_store *st, server_rec *s, const char *key,
                                 unsigned char *buf, unsigned int *len, apr_pool_t *p)
{
    const char *argv[2] = { "GET", apr_pstrcat(p, SK_REDIS_PREFIX, key, NULL) };
    apr_status_t rv;
    redisReply *reply = sk_redis_run(st, s, p, 2, argv, NULL, &rv);
    if (!reply)
        return rv;
    rv = reply->type == REDIS_REPLY_NIL ? APR_NOTFOUND
       : reply->type != REDIS_REPLY_STRING ? APR_EGENERAL
       : reply->len > *len ? APR_ENOSPC : APR_SUCCESS;
    if (rv == APR_SUCCESS) {
        memcpy(buf, reply->str, reply->len);
        *len = (unsigned int)reply->len;
    }
    freeReplyObject(reply);
    return rv;
}

/* SET key value PX keep [NX]: with NX, a nil answer says key was there. */
static apr_status_t sk_redis_set(const sk_store *st, server_rec *s, const char *key,
                                 const char *value, apr_time_t keep, int nx, apr_pool_t *p)
{
    apr_int64_t ms = apr_time_as_msec(keep);
    const char *argv[6] = { "SET", apr_pstrcat(p, SK_REDIS_PREFIX, key, NULL), value, "PX",
                            apr_psprintf(p, "%" APR_INT64_T_FMT, ms > 0 ? ms : 1), "NX" };
    apr_status_t rv;
    redisReply *reply = sk_redis_run(st, s, p, nx ? 6 : 5, argv, NULL, &rv);
    if (!reply)
        return rv;
    rv = reply->type == REDIS_REPLY_STATUS ? APR_SUCCESS
       : nx && reply->type == REDIS_REPLY_NIL ? APR_EEXIST : APR_EGENERAL;
    freeReplyObject(reply);
    return rv;
}

static apr_status_t sk_redis_put(const sk_store *st, server_rec *s, const char *key,
                                 const char *value, apr_time_t keep, apr_pool_t *p)
{
    return sk_redis_set(st, s, key, value, keep, 0, p);
}

static apr_status_t sk_redis_add(const sk_store *st, server_rec *s, const char *key,
                                 const char *value, apr_time_t keep, apr_pool_t *p)
{
    return sk_redis_set(st, s, key, value, keep, 1, p);
}

static apr_status_t sk_redis_remove(const sk_store *st, server_rec *s, const char *key,
                                    apr_pool_t *p)
{
    const char *argv[2] = { "DEL", apr_pstrcat(p, SK_REDIS_PREFIX, key, NULL) };
    apr_status_t rv;
    redisReply *reply = sk_redis_run(st, s, p, 2, argv, NULL, &rv);
    if (!reply)
        return rv;
    freeReplyObject(reply);
    return APR_SUCCESS;
}

const sk_store_ops sk_redis_ops = { sk_redis_get, sk_redis_put, sk_redis_remove,
                                    sk_redis_add };

/* ----------------------------- copies, kept true by Redis' invalidations
 *
 * Each process keeps copies of the records it read (httpd_store_copy.c),
 * used until an epoch of their key changes. Here every other server's
 * writes change it too: a thread per process holds one more connection to
 * Redis, with client-side caching in broadcast mode (CLIENT TRACKING on
 * REDIRECT <itself> BCAST PREFIX scalekit:, Redis 6 or later, RESP2) and
 * subscribed to __redis__:invalidate, and bumps the epoch of every key Redis
 * says was written, removed or expired. Copies are used only while that
 * connection is up; every epoch is bumped when it goes down and again when
 * it is back, so no copy read before a missed message outlives it. A sign-
 * out on another server reaches this one's copies once its message arrives
 * (a fraction of a millisecond on a LAN, printed by the test). */

int sk_redis_copies_live(const sk_store *st)
{
    return apr_atomic_read32(&st->redis->live) != 0;
}

/* One command of the invalidation connection's set-up: its reply, or NULL
 * with *why. */
static redisReply *sk_redis_setup(apr_pool_t *p, const sk_redis *rd, redisContext *ctx,
                                  int argc, const char **argv, const char **why)
{
    redisReply *reply = redisCommandArgv(ctx, argc, argv, NULL);
    if (reply && reply->type != REDIS_REPLY_ERROR)
        return reply;
    *why = apr_psprintf(p, "%s %s: %s", argv[0], argv[1], !reply ? ctx->errstr
                        : sk_redis_said(rd, reply));
    freeReplyObject(reply);
    return NULL;
}

/* Turn ctx into the invalidation connection: NULL, or why it cannot be. */
static const char *sk_redis_subscribe(apr_pool_t *p, const sk_redis *rd, redisContext *ctx)
{
    const char *id_cmd[2] = { "CLIENT", "ID" }, *why = NULL;
    redisReply *reply = sk_redis_setup(p, rd, ctx, 2, id_cmd, &why);
    if (!reply)
        return why;
    const char *id = apr_psprintf(p, "%" APR_INT64_T_FMT, (apr_int64_t)reply->integer);
    freeReplyObject(reply);
    const char *track[8] = { "CLIENT", "TRACKING", "on", "REDIRECT", id, "BCAST", "PREFIX",
                             SK_REDIS_PREFIX };
    const char *subscribe[2] = { "SUBSCRIBE", "__redis__:invalidate" };
    if ((reply = sk_redis_setup(p, rd, ctx, 8, track, &why)))
        freeReplyObject(reply);
    if (!why && (reply = sk_redis_setup(p, rd, ctx, 2, subscribe, &why)))
        freeReplyObject(reply);
    return why;
}

/* ["message", "__redis__:invalidate", [keys] or nil (FLUSHALL: every key)] */
static void sk_redis_invalidated(const redisReply *m)
{
    if (m->type != REDIS_REPLY_ARRAY || m->elements != 3 || !m->element[0]->str
        || strcmp(m->element[0]->str, "message"))
        return;
    const redisReply *keys = m->element[2];
    if (keys->type != REDIS_REPLY_ARRAY) {
        sk_store_copy_bump_all();
        return;
    }
    size_t n = sizeof(SK_REDIS_PREFIX) - 1;
    for (size_t i = 0; i < keys->elements; i++)
        if (keys->element[i]->type == REDIS_REPLY_STRING && keys->element[i]->len > n
            && !strncmp(keys->element[i]->str, SK_REDIS_PREFIX, n))
            sk_store_copy_bump(keys->element[i]->str + n);
}

/* Read invalidations until the connection breaks (why) or the child stops.
 * A connection silent for SK_WATCH_PING is sent a PING, and given up when
 * nothing answers within the timeout: a Redis cut off without a word must
 * not leave copies in use (TCP keepalive alone takes half a minute). */
static const char *sk_redis_listen(sk_redis *rd, redisContext *ctx)
{
    apr_time_t heard = apr_time_now(), asked = 0;
    while (!apr_atomic_read32(&rd->stopping)) {
        void *reply = NULL;
        if (redisGetReplyFromReader(ctx, &reply) != REDIS_OK)
            return ctx->errstr;
        apr_time_t now = apr_time_now();
        if (reply) {
            sk_redis_invalidated(reply);
            freeReplyObject(reply);
            heard = now;
            asked = 0;
            continue;
        }
        if (asked && now - asked > apr_time_from_sec(rd->timeout.tv_sec))
            return "no answer to PING";
        if (!asked && now - heard > SK_WATCH_PING) {
            int done = 0;
            asked = now;
            if (redisAppendCommand(ctx, "PING") != REDIS_OK)
                return ctx->errstr;
            while (!done)                    /* a few bytes: the socket takes them at once */
                if (redisBufferWrite(ctx, &done) != REDIS_OK)
                    return ctx->errstr;
        }
        struct pollfd pfd = { ctx->fd, POLLIN, 0 };
        int n = poll(&pfd, 1, SK_WATCH_POLL_MS);
        if (n < 0 && errno != EINTR)
            return strerror(errno);
        if (n > 0 && redisBufferRead(ctx) != REDIS_OK)
            return ctx->errstr;
    }
    return NULL;
}

static void sk_redis_pause(sk_redis *rd, apr_time_t wait)
{
    for (apr_time_t end = apr_time_now() + wait; !apr_atomic_read32(&rd->stopping)
         && apr_time_now() < end;)
        apr_sleep(apr_time_from_msec(SK_WATCH_POLL_MS));
}

static void *APR_THREAD_FUNC sk_redis_watch(apr_thread_t *thread, void *data)
{
    sk_redis *rd = data;
    apr_pool_t *p;
    apr_time_t wait = SK_BACKOFF_MIN;
    apr_status_t rv;
    apr_pool_create(&p, apr_thread_pool_get(thread));
    while (!apr_atomic_read32(&rd->stopping)) {
        apr_pool_clear(p);
        redisContext *ctx = sk_redis_connect(p, rd->s, rd, &rv);
        const char *why = ctx ? sk_redis_subscribe(p, rd, ctx) : NULL;
        if (ctx && !why) {
            sk_store_copy_bump_all();        /* nothing read before now is vouched for */
            apr_atomic_set32(&rd->live, 1);
            ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, rd->s, "session store %s: copies of "
                         "records on (invalidations from Redis)", rd->url->display);
            wait = SK_BACKOFF_MIN;
            why = sk_redis_listen(rd, ctx);
            apr_atomic_set32(&rd->live, 0);
            sk_store_copy_bump_all();        /* messages may be missed from now on */
        }
        if (why && !apr_atomic_read32(&rd->stopping))
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, rd->s, "session store %s: no "
                         "invalidations from Redis (%s): every request reads Redis until "
                         "they are back", rd->url->display, why);
        if (ctx)
            redisFree(ctx);
        sk_redis_pause(rd, wait);
        wait = wait * 2 > SK_WATCH_RETRY_MAX ? SK_WATCH_RETRY_MAX : wait * 2;
    }
    apr_pool_destroy(p);
    return NULL;                    /* not apr_thread_exit: its pthread_exit unwinds (ASan) */
}

static apr_status_t sk_redis_stop(void *data)
{
    sk_redis *rd = data;
    apr_status_t rv;
    apr_atomic_set32(&rd->stopping, 1);
    apr_thread_join(&rv, rd->watcher);
    return APR_SUCCESS;
}

/* In each child: the invalidation thread of every redis:// store. */
void sk_redis_child_init(apr_pool_t *pchild, server_rec *s)
{
    for (; s; s = s->next) {
        sk_server_conf *c = ap_get_module_config(s->module_config, &scalekit_module);
        sk_redis *rd = c->store ? c->store->redis : NULL;
        if (!rd || !c->store->copies || rd->watcher)
            continue;
        apr_status_t rv = apr_thread_create(&rd->watcher, NULL, sk_redis_watch, rd, pchild);
        if (rv != APR_SUCCESS) {
            rd->watcher = NULL;
            ap_log_error(APLOG_MARK, APLOG_ERR, rv, s, "session store %s: cannot start the "
                         "invalidation thread: every request reads Redis", rd->url->display);
            continue;
        }
        /* Before pchild's subpools go, the thread's among them. */
        apr_pool_pre_cleanup_register(pchild, rd, sk_redis_stop);
    }
}
