/* test_aliases.c: the /etc/aliases reader and recursive expansion */

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aliases.h"
#include "tap.h"
#include "util.h"

static char path[64];

/* Writes text to a temporary file and loads it; warnings land in *warned. */
static int
load(const char *text, struct aliases **a, char **warned, struct status *st)
{
	size_t n = 0;
	FILE *warn = open_memstream(warned, &n);
	FILE *f;
	int fd, rc;

	strcpy(path, "/tmp/test_aliases.XXXXXX");
	fd = mkstemp(path);
	f = fdopen(fd, "w");
	fputs(text, f);
	fclose(f);
	status_clear(st);
	rc = aliases_load(path, a, warn, st);
	fclose(warn);
	unlink(path);
	return rc;
}

/* The expansion of name, joined with " | ", or "" when it has no alias. */
static char *
expansion(const struct aliases *a, const char *name, size_t *added)
{
	struct strlist out = {0};
	struct buf b = {0};
	size_t i, n = aliases_expand(a, name, &out);

	if (added != NULL)
		*added = n;
	for (i = 0; i < out.n; i++)
		buf_printf(&b, "%s%s", i > 0 ? " | " : "", out.v[i]);
	strlist_free(&out);
	return buf_steal(&b);
}

struct expand_case {
	const char *name;
	const char *want;
};

static const char table[] =
    "# /etc/aliases\n"
    "\n"
    "mailer-daemon: postmaster\n"
    "postmaster: root\n"
    "root: admin@example.org\n"
    "   # a comment line in the middle\n"
    "Ops:\tone@example.org,\n"
    "\ttwo@example.org ,\n"
    "# comment between continuation lines\n"
    "  three@example.org\n"
    "quoted: \"Some One\" <some@example.org>, \"a,b\"@example.org\n"
    "chain1: chain2\n"
    "chain2: chain3, c2@example.org\n"
    "chain3: c3@example.org\n"
    "self: self, other@example.org\n"
    "loopa: loopb\n"
    "loopb: loopa\n"
    "dups: x@example.org, dup2, x@example.org\n"
    "dup2: x@example.org, y@example.org\n"
    "backslash: \\backslash, b@example.org\n"
    "program: \"|/usr/bin/procmail -a x\"\n"
    "mixed: |/usr/bin/prog, /var/mail/file, :include:/etc/list, kept@example.org\n"
    "localdomain: someone@localhost\n"
    "\"Quoted Name\": qn@example.org\n"
    "crlf: crlf@example.org\r\n";

static const struct expand_case expand_cases[] = {
	{ "root", "admin@example.org" },
	{ "ROOT", "admin@example.org" },
	{ "mailer-daemon", "admin@example.org" },
	{ "postmaster", "admin@example.org" },
	{ "ops", "one@example.org | two@example.org | three@example.org" },
	{ "quoted", "\"Some One\" <some@example.org> | \"a,b\"@example.org" },
	{ "chain1", "c3@example.org | c2@example.org" },
	{ "self", "self | other@example.org" },
	{ "loopa", "loopa" },
	{ "loopb", "loopb" },
	{ "dups", "x@example.org | y@example.org" },
	{ "backslash", "backslash | b@example.org" },
	{ "mixed", "kept@example.org" },
	{ "program", "" },
	{ "localdomain", "someone@localhost" },
	{ "quoted name", "qn@example.org" },
	{ "crlf", "crlf@example.org" },
	{ "nobody", "" },
	{ "admin@example.org", "" },
};

static void
test_table(void)
{
	struct aliases *a = NULL;
	struct status st;
	char *warned = NULL, *got;
	size_t i, added;

	ok(load(table, &a, &warned, &st) == EX_OK, "table loads: %s", st.text);
	ok(aliases_count(a) == 18, "18 aliases (%zu)", aliases_count(a));
	for (i = 0; i < sizeof(expand_cases) / sizeof(expand_cases[0]); i++) {
		got = expansion(a, expand_cases[i].name, &added);
		is_str(got, expand_cases[i].want, "expand %s", expand_cases[i].name);
		free(got);
	}
	ok(strstr(warned, "|/usr/bin/prog") != NULL, "program target warned about");
	ok(strstr(warned, "/var/mail/file") != NULL, "file target warned about");
	ok(strstr(warned, ":include:/etc/list") != NULL, "include warned about");
	ok(strstr(warned, "alias program has no target") != NULL,
	    "alias left without targets warned about");
	ok(strstr(warned, path) != NULL, "warning names the file");
	free(warned);

	/* appending to a list that already holds some targets */
	{
		struct strlist out = {0};

		strlist_add(&out, "two@example.org");
		ok(aliases_expand(a, "ops", &out) == 2, "only new targets counted");
		ok(out.n == 3, "no duplicate appended");
		is_str(out.v[0], "two@example.org", "existing entries stay first");
		strlist_free(&out);
	}
	aliases_free(a);
}

static void
test_missing(void)
{
	struct aliases *a = NULL;
	struct status st;
	struct strlist out = {0};

	status_clear(&st);
	ok(aliases_load("/nonexistent/aliases", &a, NULL, &st) == EX_OK, "missing file is fine");
	ok(a != NULL && aliases_count(a) == 0, "missing file: empty table");
	ok(aliases_expand(a, "root", &out) == 0 && out.n == 0, "nothing expands");
	aliases_free(a);
	ok(aliases_load("", &a, NULL, &st) == EX_OK && aliases_count(a) == 0, "no path: empty");
	aliases_free(a);
	ok(aliases_expand(NULL, "root", &out) == 0, "NULL table expands nothing");
}

struct bad_case {
	const char *desc;
	const char *text;
	const char *reason;	/* part of the error text */
};

static const struct bad_case bad_cases[] = {
	{ "line without a colon", "root: a@x\nthis is wrong\n", ":2: expected" },
	{ "alias without a name", "a: b@x\n\n# c\n: b@x\n", ":4: alias without a name" },
	{ "unterminated quote", "a: \"b@x\nc: d@x\n", ":1: alias a: unterminated quote" },
	{ "unterminated quote over continuation", "x: y@z\na: \"b@x,\n c@x\n", ":2: alias a" },
};

static void
test_bad(void)
{
	size_t i;

	for (i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		struct aliases *a = NULL;
		struct status st;
		char *warned = NULL;
		int rc = load(bad_cases[i].text, &a, &warned, &st);

		ok(rc == EX_CONFIG, "%s: EX_CONFIG", bad_cases[i].desc);
		ok(strstr(st.text, bad_cases[i].reason) != NULL && strstr(st.text, path) != NULL,
		    "%s: reason names file and line: %s", bad_cases[i].desc, st.text);
		ok(a == NULL, "%s: no table", bad_cases[i].desc);
		free(warned);
	}
}

static void
test_lenient(void)
{
	struct aliases *a = NULL;
	struct status st;
	char *warned = NULL, *got;

	ok(load("  stray@x\nroot: first@x\nRoot: second@x\nempty:\n", &a, &warned, &st) == EX_OK,
	    "leading continuation, duplicate and empty alias are warnings");
	got = expansion(a, "root", NULL);
	is_str(got, "first@x", "the first definition wins");
	free(got);
	ok(aliases_count(a) == 1, "one alias");
	ok(strstr(warned, "continuation line without an alias") != NULL, "stray continuation warned");
	ok(strstr(warned, "defined again") != NULL, "duplicate warned");
	ok(strstr(warned, "alias empty has no target") != NULL, "empty alias warned");
	free(warned);
	aliases_free(a);
}

static void
test_deep(void)
{
	struct buf text = {0};
	struct aliases *a = NULL;
	struct status st;
	char *warned = NULL, *got;
	int i;

	for (i = 0; i < 200; i++)
		buf_printf(&text, "n%d: n%d\n", i, i + 1);
	buf_adds(&text, "n200: end@example.org\n");
	ok(load(text.s, &a, &warned, &st) == EX_OK, "long chain loads");
	got = expansion(a, "n190", NULL);
	is_str(got, "end@example.org", "a chain of ten resolves");
	free(got);
	got = expansion(a, "n0", NULL);
	ok(got != NULL && *got != '\0', "a chain of 200 is cut, not followed forever: %s", got);
	free(got);
	free(warned);
	aliases_free(a);
	buf_free(&text);
}

int
main(void)
{
	test_table();
	test_missing();
	test_bad();
	test_lenient();
	test_deep();
	return tap_done();
}
