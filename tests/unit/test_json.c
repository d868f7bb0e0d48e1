/* Unit tests for json.c: the shared strict parse. */
#include <cjson/cJSON.h>
#include "sk_test.h"
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
