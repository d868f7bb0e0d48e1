/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for json.c: the shared strict parse. */
#include <cjson/cJSON.h>
#include "sk_test.h"
#include <apr_pools.h>
#include "sk_json.h"

static int parses(const char *s)
{
    cJSON *o = sk_json_parse_exact(s, strlen(s));
    cJSON_Delete(o);
    return o != NULL;
}

SK_TEST(json_parse_exact_whole_input_only)
{
    SK_CHECK(parses("{}"));
    SK_CHECK(parses("{\"a\":1} \t\r\n"));
    SK_CHECK(parses("[1,2]"));
    SK_CHECK(!parses("{\"a\":1}x"));
    SK_CHECK(!parses("{\"a\":1}{}"));
    SK_CHECK(!parses("{\"a\":1} ,"));
    SK_CHECK(!parses("{\"a\":"));
    SK_CHECK(!parses(""));
    /* n bytes, not up to a NUL: what follows the n bytes is not read. */
    cJSON *o = sk_json_parse_exact("{}garbage", 2);
    SK_CHECK(o != NULL);
    cJSON_Delete(o);
}

SK_TEST(json_string_non_empty_strings_only)
{
    apr_pool_t *p = sk_test_pool();
    const char *s = "{\"a\":\"x\",\"e\":\"\",\"n\":1,\"z\":null,\"o\":{\"a\":\"y\"},\"A\":\"case\"}";
    cJSON *o = sk_json_parse_exact(s, strlen(s));
    SK_REQUIRE(o != NULL);
    SK_CHECK_STR(sk_json_string(p, o, "a"), "x");
    SK_CHECK(sk_json_string(p, o, "e") == NULL);
    SK_CHECK(sk_json_string(p, o, "n") == NULL);
    SK_CHECK(sk_json_string(p, o, "z") == NULL);
    SK_CHECK(sk_json_string(p, o, "o") == NULL);
    SK_CHECK(sk_json_string(p, o, "missing") == NULL);
    SK_CHECK_STR(sk_json_string(p, o, "A"), "case");       /* names are case-sensitive */
    SK_CHECK(sk_json_string(p, NULL, "a") == NULL);
    const char *copy = sk_json_string(p, o, "a");
    cJSON_Delete(o);
    SK_CHECK_STR(copy, "x");                                  /* a copy, outliving the tree */
}
