/* SPDX-License-Identifier: Apache-2.0 */
/* sk_redis_url.h: the redis:// address of a session store
 * (ScalekitSessionStore redis://[user[:password]@]host[:port][/db]).
 * Links without httpd. */
#ifndef SK_REDIS_URL_H
#define SK_REDIS_URL_H

#include <apr_pools.h>

typedef struct sk_redis_url {
    const char *user;       /* an ACL user, or NULL: Redis' default user */
    const char *password;   /* as written in the URL (percent-decoded), or NULL */
    const char *host;       /* a name or an address; IPv6 without its brackets */
    int port;               /* 6379 unless said */
    int db;                 /* 0 unless said */
    const char *display;    /* redis://[user@]host:port/db: for log lines, never the password */
} sk_redis_url;

/* Parse url into out: NULL, or why it is not a Redis address we can use. */
const char *sk_redis_url_parse(apr_pool_t *p, const char *url, sk_redis_url *out);

/* 1 when arg is meant as a redis:// (or rediss://) address, whatever its
 * faults, rather than an httpd shared object cache such as "redis:host:port". */
int sk_is_redis_url(const char *arg);

#endif
