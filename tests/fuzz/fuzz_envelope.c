/* fuzz_envelope.c -- envelope classification (host/envelope.c).
 * Input: a first byte choosing the error buffer's size and which fields are
 * absent, then exchange, conversation_id, reply_to and status separated by
 * NUL bytes. The kind must follow the rules of docs/wire-conventions.md and
 * the reason be one terminated line exactly when the message is refused. */
#include <string.h>

#include "envelope.h"
#include "fuzz.h"

static bool set(const char *s) { return s && *s; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf, *field[4] = {0}, *p, err[300];
    size_t errlen;
    unsigned flags;
    bh__envelope_t e;
    bh_kind_t k;
    if (size == 0) return 0;
    flags = data[0];
    errlen = (size_t)(flags & 0x0f) * 20; /* 0 (no room), 20 .. 300 */
    buf = malloc(size);
    if (!buf) return 0;
    memcpy(buf, data + 1, size - 1);
    buf[size - 1] = '\0';
    p = buf;
    for (int i = 0; i < 4 && p < buf + size; i++) {
        field[i] = flags & (0x10u << i) ? NULL : p;
        p += strlen(p) + 1;
    }
    e = (bh__envelope_t){field[0], field[1], field[2], field[3]};
    memset(err, 'x', sizeof err);
    k = bh__envelope_classify(&e, errlen ? err : NULL, errlen);
    if (errlen) {
        FUZZ_CHECK(memchr(err, '\0', errlen) != NULL);
        FUZZ_CHECK(!strchr(err, '\n') || (e.exchange && strchr(e.exchange, '\n')));
        FUZZ_CHECK(k == 0 ? err[0] != '\0' : err[0] == '\0');
    }
    switch ((int)k) {
    case 0:
        FUZZ_CHECK(!set(e.conversation_id) || !e.exchange || strcmp(e.exchange, "events") != 0);
        break;
    case BH_KIND_EVENT:
        FUZZ_CHECK(set(e.conversation_id) && strcmp(e.exchange, "events") == 0);
        break;
    case BH_KIND_COMMAND:
        FUZZ_CHECK(set(e.conversation_id) && strcmp(e.exchange, "commands") == 0 &&
                   set(e.reply_to));
        break;
    case BH_KIND_RESULT:
        FUZZ_CHECK(set(e.conversation_id) && strcmp(e.exchange, "commands") == 0 &&
                   !set(e.reply_to) && set(e.status));
        break;
    default:
        FUZZ_CHECK(!"a kind outside bh_kind_t");
    }
    free(buf);
    return 0;
}
