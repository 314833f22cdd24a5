/* inifile.h -- bushost's one INI reader.
 *
 * The dialect is inih's with its default options, so a file reads the same
 * in inih-based tools: `key = value` or `key: value` with both trimmed;
 * comment lines starting with ';' or '#'; an inline comment is a ';' after
 * whitespace; an indented line continues the key above it; a UTF-8 BOM may
 * open the file; lines of at most 197 characters and names of at most 49
 * (inih's buffers, which would split or cut anything longer). What inih
 * would accept but is surely a mistake is refused: text after a [header],
 * empty names, names with spaces.
 *
 * Unlike inih, every item comes with its line, section headers included,
 * and the first error stops the read. It knows nothing of bushost's keys. */
#ifndef BH_INIFILE_H
#define BH_INIFILE_H

#include <stddef.h>

enum { BH__INI_MAX_LINE = 197, BH__INI_MAX_NAME = 49 };

typedef enum bh__ini_kind {
    BH__INI_SECTION, /* a [section] header */
    BH__INI_KEY,     /* key = value */
    BH__INI_CONT,    /* an indented line: one more value for the key above */
} bh__ini_kind_t;

typedef struct bh__ini_item {
    bh__ini_kind_t kind;
    int line;            /* 1-based */
    const char *section; /* the header's name; for keys, their section's */
    const char *key;     /* NULL for a header */
    const char *value;   /* trimmed, without its inline comment; NULL for a header */
} bh__ini_item_t;

/* Called for each item, in file order. Returns 0, or a BH_E* code after
 * writing the reason to why; the reader puts "file:line: " in front. */
typedef int (*bh__ini_fn)(void *user, const bh__ini_item_t *item, char *why, size_t whylen);

/* Read the file at path. 0, or the first error with its message in err:
 * BH_ENOENT "path: cannot open: <strerror>", BH_EINVAL "path: cannot read:
 * <strerror>" or "path:line: <what is wrong>", BH_ENOMEM, or fn's code. */
int bh__ini_read(const char *path, bh__ini_fn fn, void *user, char *err, size_t errlen);

#endif
