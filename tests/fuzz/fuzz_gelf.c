/* fuzz_gelf.c -- GELF records: whatever the texts hold (control
 * characters, invalid UTF-8, quotes, backslashes), bh__gelf_format gives one
 * valid JSON object, and every field reads back as it was given (text that
 * is not valid UTF-8 is replaced, so only valid text is compared).
 *
 * Input: a level byte, 8 bytes of timestamp (any double, NaN included), 4
 * of pid, then NUL-separated texts: service, hostname, conversation id,
 * message, and up to 8 extra key/value pairs. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fuzz.h"
#include "gelf.h"

enum { MAX_TEXTS = 4 + 2 * 8 };

static void expect(bool ok, const char *what, const char *json)
{
    if (!ok) {
        fprintf(stderr, "fuzz_gelf: %s in %s\n", what, json);
        abort();
    }
}

static bool valid_utf8(const char *s)
{
    json_t *j = json_string(s);
    bool ok = j != NULL;

    json_decref(j);
    return ok;
}

/* A string field reads back as want, when want is valid UTF-8. */
static void expect_str(json_t *o, const char *key, const char *want, const char *json)
{
    const char *got = json_string_value(json_object_get(o, key));

    expect(got != NULL, key, json);
    if (valid_utf8(want)) expect(strcmp(got, want) == 0, key, json);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *texts[MAX_TEXTS + 2] = {0}, *extra[2 * 8 + 1] = {0};
    char *copy, *p, *end, *json, *nl;
    size_t n = 0, len = 0, first;
    bh__gelf_t g = {0};
    int32_t pid;
    json_t *o;

    if (size < 13) return 0;
    g.level = (bh_level_t)(data[0] & 15);
    memcpy(&g.timestamp, data + 1, 8);
    memcpy(&pid, data + 9, 4);
    g.pid = pid;
    data += 13, size -= 13;
    if (!(copy = malloc(size + 1))) return 0;
    memcpy(copy, data, size);
    copy[size] = '\0';
    for (p = copy, end = copy + size; n < MAX_TEXTS && p <= end; p += strlen(p) + 1) texts[n++] = p;
    g.service = texts[0];
    g.hostname = texts[1];
    g.conversation_id = texts[2];
    g.message = texts[3];
    for (size_t i = 4; i + 1 < n; i += 2) {
        extra[i - 4] = texts[i];
        extra[i - 3] = texts[i + 1];
    }
    g.extra = extra;

    json = bh__gelf_format(&g, &len);
    if (!json) { /* out of memory only */
        free(copy);
        return 0;
    }
    expect(strlen(json) == len, "the length", json);
    o = json_loadb(json, len, JSON_REJECT_DUPLICATES, NULL);
    expect(json_is_object(o), "not a JSON object", json);

    const char *service = g.service ? g.service : "", *hostname = g.hostname ? g.hostname : "";
    const char *msg = g.message ? g.message : "", *levelname = bh__level_name(g.level);
    char *host = malloc(strlen(service) + strlen(hostname) + 2);

    if (host) {
        sprintf(host, "%s@%s", service, hostname);
        expect_str(o, "host", host, json);
        free(host);
    }
    expect_str(o, "version", "1.1", json);
    expect_str(o, "_logical_service", service, json);
    expect_str(o, "_conversation_id", g.conversation_id ? g.conversation_id : "", json);
    expect_str(o, "_levelname", levelname ? levelname : "UNKNOWN", json);
    nl = strchr(msg, '\n');
    expect_str(o, "full_message", nl && nl[1] ? msg : "", json);
    first = nl ? (size_t)(nl - msg) : strlen(msg);
    if (first && msg[first - 1] == '\r') first--;
    if (valid_utf8(msg)) {
        const char *s = json_string_value(json_object_get(o, "short_message"));

        expect(s != NULL, "short_message", json);
        expect(first ? strlen(s) == first && !memcmp(s, msg, first) : !strcmp(s, "-"),
               "short_message", json);
    }
    expect(json_integer_value(json_object_get(o, "level")) == g.level, "level", json);
    expect(json_integer_value(json_object_get(o, "_worker_pid")) == g.pid, "_worker_pid", json);
    expect(json_real_value(json_object_get(o, "timestamp")) ==
               (isfinite(g.timestamp) ? g.timestamp : 0),
           "timestamp", json);
    /* An extra is there under "_key" (or an earlier field of that name is). */
    for (size_t i = 0; extra[i]; i += 2) {
        const char *k = extra[i][0] == '_' ? extra[i] + 1 : extra[i];
        char key[256];
        size_t j;

        if (!*k || !strcmp(k, "id") || strlen(k) > sizeof key - 2) continue;
        key[0] = '_';
        for (j = 0; k[j]; j++) {
            char c = k[j];
            bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '_' || c == '.' || c == '-';

            key[j + 1] = ok ? c : '_';
        }
        key[j + 1] = '\0';
        expect(json_is_string(json_object_get(o, key)), "an extra field", json);
    }
    json_decref(o);
    free(json);
    free(copy);
    return 0;
}
