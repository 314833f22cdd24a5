/* inifile.h -- bushost's one INI reader: inih (Debian's libinih) parses, this
 * adds line-numbered messages.
 *
 * inih parses every line, with the options Debian builds it with (its
 * ini_* settings are left alone): `key = value` or `key: value` with both
 * trimmed; comment lines starting with ';' or '#'; an inline comment is a
 * ';' after whitespace, except on an indented line; an indented line
 * continues the key above; a UTF-8 BOM may open the file. Around it, this
 * reader gives every item its line, stops at the first error with a message
 * "file:line: why", and refuses what inih would split or cut (a line over
 * 197 characters, its buffer; a NUL byte; a section name of 49 bytes, all
 * inih keeps of it, so a longer one arrives cut to that; a key name over 49,
 * all inih keeps to repeat for an indented line) and what it accepts but is
 * surely a mistake (a key before any section or under [], an empty key name,
 * a section name with spaces).
 *
 * inih reports keys, not headers, and a bad line only by its number. So a
 * section is seen at its first key: a section without keys is not seen, and
 * a header repeating the section above is not noticed; an indented line is
 * one more value for the key above, as a repeated key is; text after `[name]`
 * is ignored; and inih reads on past a line it cannot parse, so fn may see
 * items after it, but the error returned is the first in the file. It knows
 * nothing of bushost's keys. */
#ifndef BH_INIFILE_H
#define BH_INIFILE_H

#include <stddef.h>

enum { BH__INI_MAX_LINE = 197, BH__INI_MAX_SECTION = 48, BH__INI_MAX_KEY = 49 };

typedef enum bh__ini_kind {
    BH__INI_SECTION, /* the keys of a section begin (again, after another section's) */
    BH__INI_KEY,     /* key = value, or an indented line: one more value for the key above */
} bh__ini_kind_t;

typedef struct bh__ini_item {
    bh__ini_kind_t kind;
    int line;            /* 1-based; a section's is its first key's */
    const char *section; /* the section's name; for keys, their section's */
    const char *key;     /* NULL for a section */
    const char *value;   /* trimmed, without its inline comment; NULL for a section */
} bh__ini_item_t;

/* Called for each item, in file order. Returns 0, or a BH_E* code after
 * writing the reason to why; the reader puts "file:line: " in front. */
typedef int (*bh__ini_fn)(void *user, const bh__ini_item_t *item, char *why, size_t whylen);

/* Read the file at path. 0, or the first error with its message in err:
 * BH_ENOENT "path: cannot open: <strerror>", BH_EINVAL "path: cannot read:
 * <strerror>" or "path:line: <what is wrong>", BH_ENOMEM, or fn's code. */
int bh__ini_read(const char *path, bh__ini_fn fn, void *user, char *err, size_t errlen);

#endif
