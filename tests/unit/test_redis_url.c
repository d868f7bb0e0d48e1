/* SPDX-License-Identifier: Apache-2.0 */
/* The redis:// address of a session store. */
#include <apr_pools.h>
#include "sk_test.h"
#include "sk_redis_url.h"

SK_TEST(redis_url_defaults)
{
    sk_redis_url u;
    SK_REQUIRE(!sk_redis_url_parse(sk_test_pool(), "redis://10.0.0.5", &u));
    SK_CHECK_STR(u.host, "10.0.0.5");
    SK_CHECK_INT(u.port, 6379);
    SK_CHECK_INT(u.db, 0);
    SK_CHECK(!u.user && !u.password);
    SK_CHECK_STR(u.display, "redis://10.0.0.5:6379/0");
    SK_REQUIRE(!sk_redis_url_parse(sk_test_pool(), "REDIS://cache.internal:6380/", &u));
    SK_CHECK_STR(u.host, "cache.internal");
    SK_CHECK_INT(u.port, 6380);
}

SK_TEST(redis_url_user_password_db)
{
    sk_redis_url u;
    SK_REQUIRE(!sk_redis_url_parse(sk_test_pool(), "redis://app:s%40cr:et@h:1/3", &u));
    SK_CHECK_STR(u.user, "app");
    SK_CHECK_STR(u.password, "s@cr:et");
    SK_CHECK_STR(u.host, "h");
    SK_CHECK_INT(u.port, 1);
    SK_CHECK_INT(u.db, 3);
    SK_CHECK_STR(u.display, "redis://app@h:1/3");          /* never the password */
    SK_REQUIRE(!sk_redis_url_parse(sk_test_pool(), "redis://:p@ss@h", &u));  /* last '@' */
    SK_CHECK(!u.user);
    SK_CHECK_STR(u.password, "p@ss");
    SK_CHECK_STR(u.display, "redis://h:6379/0");
    SK_REQUIRE(!sk_redis_url_parse(sk_test_pool(), "redis://app@[::1]:7000/2", &u));
    SK_CHECK_STR(u.user, "app");
    SK_CHECK(!u.password);
    SK_CHECK_STR(u.host, "::1");
    SK_CHECK_INT(u.port, 7000);
    SK_CHECK_STR(u.display, "redis://app@[::1]:7000/2");
}

SK_TEST(redis_url_refused)
{
    static const char *bad[] = {
        "redis://", "redis://h:0", "redis://h:65536", "redis://h:x", "redis://h/x",
        "redis://h/-1", "redis://@h", "redis://h?db=1", "redis://h#f", "redis://a b",
        "redis://::1", "redis://[::1", "redis://[::1]x", "redis://u:%zz@h", "redis://u%00@h",
        "redis://h:", "redis://h/1/2", "redis:h:6379", "memcache://h",
    };
    sk_redis_url u;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *why = sk_redis_url_parse(sk_test_pool(), bad[i], &u);
        if (!why)
            fprintf(stderr, "  accepted: %s\n", bad[i]);
        SK_CHECK(why != NULL);
    }
    const char *why = sk_redis_url_parse(sk_test_pool(), "rediss://h", &u);
    SK_CHECK(why && strstr(why, "TLS"));
    /* A refused address never echoes its password. */
    why = sk_redis_url_parse(sk_test_pool(), "redis://u:hunter2@h:99999", &u);
    SK_CHECK(why && !strstr(why, "hunter2"));
}

SK_TEST(redis_url_is_meant)
{
    SK_CHECK(sk_is_redis_url("redis://h"));
    SK_CHECK(sk_is_redis_url("Rediss://h"));
    SK_CHECK(!sk_is_redis_url("redis:127.0.0.1:6379"));     /* mod_socache_redis */
    SK_CHECK(!sk_is_redis_url("shmcb"));
}
