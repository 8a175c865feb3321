/* aliases.c: sendmail's /etc/aliases, read into a sorted table */

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "aliases.h"

#define EXPAND_DEPTH	64	/* deeper chains are cut like loops */

struct alias {
	char *name;		/* lower-cased */
	struct strlist targets;
	size_t line;		/* where it was defined */
};

struct aliases {
	struct alias *v;
	size_t n, cap;
};

static char *
trim(char *s)
{
	size_t n;

	while (*s == ' ' || *s == '\t')
		s++;
	n = strlen(s);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		s[--n] = '\0';
	return s;
}

static void
lower(char *s)
{
	for (; *s != '\0'; s++)
		*s = (char)tolower((unsigned char)*s);
}

static struct alias *
aliases_find(const struct aliases *a, const char *name)
{
	size_t lo = 0, hi = a->n, mid;
	int c;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		c = strcasecmp(name, a->v[mid].name);
		if (c == 0)
			return &a->v[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

/* by name, then by line, so the first definition of a name comes first */
static int
alias_cmp(const void *x, const void *y)
{
	const struct alias *a = x, *b = y;
	int c = strcmp(a->name, b->name);

	if (c != 0)
		return c;
	return a->line < b->line ? -1 : a->line > b->line;
}

static void
alias_clear(struct alias *al)
{
	free(al->name);
	strlist_free(&al->targets);
	al->name = NULL;
}

/* A target as written, or what a quoted target holds when it is one
 * quoted string ("|/usr/bin/prog arg"). */
static char *
target_meaning(const char *t)
{
	size_t n = strlen(t);
	struct buf b = {0};
	size_t i;

	if (n < 2 || t[0] != '"' || t[n - 1] != '"')
		return xstrdup(t);
	for (i = 1; i < n - 1; i++) {
		if (t[i] == '"')
			return xstrdup(t);	/* "a"@b or "a" "b": not one string */
		if (t[i] == '\\' && i + 1 < n - 1)
			i++;
		buf_addc(&b, t[i]);
	}
	return buf_steal(&b);
}

/* Adds one target of name's entry, or warns when it is a kind this
 * program cannot deliver to. */
static void
target_add(struct alias *al, const char *raw, const char *path, size_t line, FILE *warn)
{
	char *t = target_meaning(raw);

	if (*t == '|' || *t == '/' || strncasecmp(t, ":include:", 9) == 0) {
		if (warn != NULL)
			fprintf(warn, "acsmail: %s:%zu: alias %s: target %s skipped "
			    "(programs, files and includes are not delivered here)\n",
			    path, line, al->name, raw);
		free(t);
		return;
	}
	free(t);
	strlist_add_unique(&al->targets, raw);
}

/* Splits the right-hand side at commas outside quotes and angle brackets. */
static int
targets_parse(struct alias *al, char *rhs, const char *path, size_t line, FILE *warn,
    struct status *st)
{
	char *p, *start = rhs;
	bool quoted = false;
	int angle = 0;

	for (p = rhs;; p++) {
		if (quoted && *p == '\\' && p[1] != '\0') {
			p++;
			continue;
		}
		if (*p == '"')
			quoted = !quoted;
		else if (!quoted && *p == '<')
			angle++;
		else if (!quoted && *p == '>' && angle > 0)
			angle--;
		if (*p == '\0' || (*p == ',' && !quoted && angle == 0)) {
			bool end = *p == '\0';
			char *t;

			if (end && quoted)
				return status_set(st, EX_CONFIG,
				    "%s:%zu: alias %s: unterminated quote", path, line, al->name);
			*p = '\0';
			t = trim(start);
			if (*t != '\0')
				target_add(al, t, path, line, warn);
			if (end)
				break;
			start = p + 1;
		}
	}
	return EX_OK;
}

/* One logical line: "name: target, target". */
static int
entry_parse(struct aliases *a, char *text, const char *path, size_t line, FILE *warn,
    struct status *st)
{
	char *colon = strchr(text, ':'), *name;
	struct alias al = {0};
	size_t n;
	int rc;

	if (colon == NULL)
		return status_set(st, EX_CONFIG, "%s:%zu: expected \"name: target, ...\"",
		    path, line);
	*colon = '\0';
	name = trim(text);
	n = strlen(name);
	if (n >= 2 && name[0] == '"' && name[n - 1] == '"') {
		name[n - 1] = '\0';
		name++;
	}
	if (*name == '\0')
		return status_set(st, EX_CONFIG, "%s:%zu: alias without a name", path, line);
	al.name = xstrdup(name);
	al.line = line;
	lower(al.name);
	if ((rc = targets_parse(&al, colon + 1, path, line, warn, st)) != EX_OK) {
		alias_clear(&al);
		return rc;
	}
	if (al.targets.n == 0) {
		if (warn != NULL)
			fprintf(warn, "acsmail: %s:%zu: alias %s has no target that can be "
			    "delivered; ignored\n", path, line, al.name);
		alias_clear(&al);
		return EX_OK;
	}
	if (a->n == a->cap) {
		a->cap = a->cap == 0 ? 32 : a->cap * 2;
		a->v = xrealloc(a->v, a->cap * sizeof(*a->v));
	}
	a->v[a->n++] = al;
	return EX_OK;
}

/* Sorts the table for lookups; of names defined twice, the first wins
 * (as Postfix's postalias does), with a warning. */
static void
aliases_index(struct aliases *a, const char *path, FILE *warn)
{
	size_t i, j;

	if (a->n == 0)
		return;
	qsort(a->v, a->n, sizeof(*a->v), alias_cmp);
	for (i = j = 0; i < a->n; i++) {
		if (j > 0 && strcmp(a->v[j - 1].name, a->v[i].name) == 0) {
			if (warn != NULL)
				fprintf(warn, "acsmail: %s:%zu: alias %s defined again; the "
				    "definition on line %zu is used\n", path, a->v[i].line,
				    a->v[i].name, a->v[j - 1].line);
			alias_clear(&a->v[i]);
			continue;
		}
		a->v[j++] = a->v[i];
	}
	a->n = j;
}

static bool
is_blank_or_comment(const char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	return *s == '\0' || *s == '#';
}

int
aliases_load(const char *path, struct aliases **out, FILE *warn, struct status *st)
{
	struct aliases *a = xcalloc(1, sizeof(*a));
	struct buf logical = {0};
	size_t cap = 0, lineno = 0, start = 0;
	ssize_t len;
	char *line = NULL;
	FILE *f;
	int rc = EX_OK;

	*out = a;
	if (path == NULL || *path == '\0')
		return EX_OK;
	if ((f = fopen(path, "r")) == NULL) {
		if (errno == ENOENT)
			return EX_OK;	/* no aliases file: an empty table */
		return status_set(st, EX_CONFIG, "cannot read %s: %s", path, strerror(errno));
	}
	for (;;) {
		len = getline(&line, &cap, f);
		if (len >= 0) {
			lineno++;
			while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
				line[--len] = '\0';
			if (is_blank_or_comment(line))
				continue;
			if (line[0] == ' ' || line[0] == '\t') {
				if (start == 0) {
					if (warn != NULL)
						fprintf(warn, "acsmail: %s:%zu: continuation line "
						    "without an alias; ignored\n", path, lineno);
					continue;
				}
				buf_adds(&logical, line);
				continue;
			}
		}
		/* a new logical line (or the end): finish the previous one */
		if (start != 0) {
			rc = entry_parse(a, logical.s, path, start, warn, st);
			buf_reset(&logical);
			start = 0;
			if (rc != EX_OK)
				break;
		}
		if (len < 0)
			break;
		buf_adds(&logical, line);
		start = lineno;
	}
	if (rc == EX_OK && ferror(f))
		rc = status_set(st, EX_CONFIG, "cannot read %s: %s", path, strerror(errno));
	fclose(f);
	free(line);
	buf_free(&logical);
	aliases_index(a, path, warn);
	if (rc != EX_OK) {
		aliases_free(a);
		*out = NULL;
	}
	return rc;
}

/* A target written "\name" is final: sendmail's way to stop expansion. */
static const char *
target_key(const char *t)
{
	return *t == '\\' ? t + 1 : t;
}

static void
expand(const struct aliases *a, const struct alias *al, const struct alias **path, size_t depth,
    struct strlist *out, size_t *added)
{
	const struct alias *next;
	const char *key;
	size_t i, j;
	bool on_path;

	path[depth] = al;
	for (i = 0; i < al->targets.n; i++) {
		key = target_key(al->targets.v[i]);
		next = key == al->targets.v[i] ? aliases_find(a, key) : NULL;
		on_path = false;
		for (j = 0; next != NULL && j <= depth; j++)
			if (path[j] == next)
				on_path = true;
		/* a name that reaches itself again is final there: root: root, admin@x */
		if (next != NULL && !on_path && depth + 1 < EXPAND_DEPTH) {
			expand(a, next, path, depth + 1, out, added);
			continue;
		}
		if (strlist_add_unique(out, key))
			(*added)++;
	}
}

size_t
aliases_expand(const struct aliases *a, const char *name, struct strlist *out)
{
	const struct alias *path[EXPAND_DEPTH];
	const struct alias *al;
	size_t added = 0;

	if (a == NULL || (al = aliases_find(a, name)) == NULL)
		return 0;
	expand(a, al, path, 0, out, &added);
	return added;
}

size_t
aliases_count(const struct aliases *a)
{
	return a != NULL ? a->n : 0;
}

void
aliases_free(struct aliases *a)
{
	size_t i;

	if (a == NULL)
		return;
	for (i = 0; i < a->n; i++)
		alias_clear(&a->v[i]);
	free(a->v);
	free(a);
}
