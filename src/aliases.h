/* aliases.h: sendmail's /etc/aliases */
#ifndef ACSMAIL_ALIASES_H
#define ACSMAIL_ALIASES_H

#include <stdio.h>

#include "status.h"
#include "util.h"

struct aliases;

/* Reads the file (comments, continuation lines, "name: a, b"). A missing
 * file is an empty table. Entries that are "|command", "/file" or
 * ":include:" are skipped with a warning written to warn (may be NULL).
 * EX_CONFIG for a file that cannot be parsed, naming file and line. */
int aliases_load(const char *path, struct aliases **out, FILE *warn, struct status *st);

/* Resolves name recursively (loops are cut) and appends the final targets
 * to out, in order, without duplicates. A target that has no alias of its
 * own is final. Returns the number of targets added, or 0 when name has
 * no alias. Lookup is case-insensitive. */
size_t aliases_expand(const struct aliases *a, const char *name, struct strlist *out);

/* How many aliases the table holds (for -bi). */
size_t aliases_count(const struct aliases *a);

void aliases_free(struct aliases *a);
#endif
