/* test_rfc5322.c: address lists parsed, formatted and parsed again */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rfc5322.h"
#include "util.h"
#include "tap.h"

/* A list as one line: "Name<local@domain>" for a mailbox, "GROUP(name):"
 * and ";" around a group's members, "|" between the items. */
static char *
dump(const struct address_list *l)
{
	struct buf b = {0};
	size_t i;

	buf_adds(&b, "");
	for (i = 0; i < l->n; i++) {
		if (i > 0)
			buf_addc(&b, '|');
		switch (l->v[i].kind) {
		case ADDR_MAILBOX:
			buf_printf(&b, "%s<%s", l->v[i].name != NULL ? l->v[i].name : "",
			    l->v[i].local);
			if (l->v[i].domain != NULL)
				buf_printf(&b, "@%s", l->v[i].domain);
			buf_addc(&b, '>');
			break;
		case ADDR_GROUP_START:
			buf_printf(&b, "GROUP(%s):", l->v[i].name != NULL ? l->v[i].name : "");
			break;
		case ADDR_GROUP_END:
			buf_addc(&b, ';');
			break;
		}
	}
	return buf_steal(&b);
}

/* The dump of a parse, or "ERR <code>: <text>" */
static char *
parse(const char *in)
{
	struct address_list l = {0};
	struct status st;
	char *s;

	status_clear(&st);
	if (rfc5322_parse_addresses(in, &l, &st) != EX_OK) {
		s = xasprintf("ERR %d: %s", st.code, st.text);
		address_list_free(&l);
		return s;
	}
	s = dump(&l);
	address_list_free(&l);
	return s;
}

/* s with control characters shown as \xNN, fit for a TAP line */
static const char *
show(const char *s)
{
	static char out[4][1024];
	static int turn;
	char *o = out[turn++ % 4];
	size_t n = 0;

	for (; *s != '\0' && n + 5 < sizeof(out[0]); s++) {
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			n += (size_t)snprintf(o + n, 5, "\\x%02x", (unsigned char)*s);
		else
			o[n++] = *s;
	}
	o[n] = '\0';
	return o;
}

static void
check_parse(const char *in, const char *want)
{
	char *got = parse(in);

	is_str(got, want, "parse [%s]", show(in));
	free(got);
}

static void
check_error(const char *in, const char *needle)
{
	char *got = parse(in);

	ok(strncmp(got, "ERR 65: ", 8) == 0 && strstr(got, needle) != NULL &&
	    strchr(got, '\n') == NULL && strchr(got, '\r') == NULL,
	    "refused [%s]: %s", show(in), show(got));
	free(got);
}

/* CRLF SP folds taken out again */
static char *
unfold(const char *s)
{
	struct buf b = {0};

	buf_adds(&b, "");
	for (; *s != '\0'; s++)
		if (*s != '\r' && *s != '\n')
			buf_addc(&b, *s);
	return buf_steal(&b);
}

/* Longest line of a folded field whose first line starts at column. */
static size_t
longest_line(const char *s, size_t column)
{
	size_t longest = 0, len = column;

	for (; *s != '\0'; s++) {
		if (*s == '\r' && s[1] == '\n') {
			if (len > longest)
				longest = len;
			len = 0;
			s++;
		} else
			len++;
	}
	return len > longest ? len : longest;
}

static bool
folds_well(const char *s)
{
	const char *p;

	for (p = s; *p != '\0'; p++) {
		if (*p == '\n' && (p == s || p[-1] != '\r'))
			return false;
		if (*p == '\r' && (p[1] != '\n' || p[2] != ' '))
			return false;
		if ((unsigned char)*p < 0x20 && *p != '\r' && *p != '\n' && *p != '\t')
			return false;
	}
	return true;
}

/* parse, format at column, unfold, parse: the same list */
static int
round_trip(const char *in, size_t column, char **formatted)
{
	struct address_list a = {0}, b = {0};
	struct status st;
	char *f, *u, *da, *db;
	int same;

	if (rfc5322_parse_addresses(in, &a, &st) != EX_OK) {
		address_list_free(&a);
		return -1;
	}
	f = rfc5322_format_addresses(&a, column);
	u = unfold(f);
	if (rfc5322_parse_addresses(u, &b, &st) != EX_OK) {
		fprintf(stderr, "# [%s] formatted as [%s] does not parse: %s\n", show(in), show(f),
		    st.text);
		same = 0;
	} else {
		da = dump(&a);
		db = dump(&b);
		same = strcmp(da, db) == 0 && folds_well(f);
		if (!same)
			fprintf(stderr, "# [%s] -> [%s]: %s vs %s\n", show(in), show(f), show(da),
			    show(db));
		free(da);
		free(db);
	}
	if (formatted != NULL)
		*formatted = f;
	else
		free(f);
	free(u);
	address_list_free(&a);
	address_list_free(&b);
	return same;
}

static char *
format_of(const char *in, size_t column)
{
	struct address_list l = {0};
	struct status st;
	char *f;

	if (rfc5322_parse_addresses(in, &l, &st) != EX_OK)
		return xasprintf("ERR %s", st.text);
	f = rfc5322_format_addresses(&l, column);
	address_list_free(&l);
	return f;
}

static const char *const forms[] = {
	"a@x",
	"John Doe <j@example.com>",
	"\"Doe, John\" <j@example.com>",
	"\"a b\"@x",
	"\"a,b\"@x, c@y",
	"root (Cron Daemon)",
	"a@x (Name)",
	"team: a@x, b@y;",
	"undisclosed-recipients:;",
	"team: a@x, b@y",
	"<@r1,@r2:a@x>",
	"Name <@r1.example,@r2:a@x>",
	"a@[1.2.3.4]",
	"root",
	"Logwatch",
	"a@x,,b@y,",
	"John <j@x",
	"John Q. Public <j@x>",
	"mdadm monitoring <root>",
	"=?UTF-8?B?V1NM44GL44KJ44Gu44OG44K544OI44Oh44O844Or?= <w@x>",
	"J\xc3\xb6rg M\xc3\xbcller <j@x>",
	"j\xc3\xb6rg@b\xc3\xbc" "cher.example",
	"John (the (nested \\) one) man) Doe <j@x>",
	"\"quoted \\\"pair\\\"\" <q@x>",
	"a@x, team: b@y; c@z",
	"A <a@x>, \"B, b\" <b@y>, c@z (C)",
	"=?iso-8859-1?q?J=F6rg?= <j@x>",
	"Name \"with\" quotes <n@x>",
	"team: A <a@x>, \"B\" <b@y>;, other: c@z;",
	"\"back\\\\slash\" <b@x>",
	"\"\"@x",
	".dot.@x",
	"a..b@x",
	"\"=?utf-8?q?not_decoded?=\" <x@y>",
	"\"\" <empty@name>",
	"a@x (  )",
};

int
main(void)
{
	struct address_list l = {0};
	struct status st;
	char *s, *f;
	size_t i, j;

	/* every form the brief names */
	check_parse("a@x", "<a@x>");
	check_parse("  a@x  ", "<a@x>");
	check_parse("John Doe <j@example.com>", "John Doe<j@example.com>");
	check_parse("\"Doe, John\" <j@example.com>", "Doe, John<j@example.com>");
	check_parse("\"Doe, John\" <j@x>, b@y", "Doe, John<j@x>|<b@y>");
	check_parse("\"a b\"@x", "<a b@x>");
	check_parse("\"a,b\"@x, c@y", "<a,b@x>|<c@y>");
	check_parse("\"a\\\"b\"@x", "<a\"b@x>");
	check_parse("root (Cron Daemon)", "Cron Daemon<root>");
	check_parse("root (systemd-cron)", "systemd-cron<root>");
	check_parse("a@x (Name)", "Name<a@x>");
	check_parse("a@x (Name) (More)", "Name More<a@x>");
	check_parse("Real <a@x> (comment)", "Real<a@x>");
	check_parse("<a@x> (Only Comment)", "Only Comment<a@x>");
	check_parse("(Before) a@x", "Before<a@x>");
	check_parse("team: a@x, b@y;", "GROUP(team):|<a@x>|<b@y>|;");
	check_parse("undisclosed-recipients:;", "GROUP(undisclosed-recipients):|;");
	check_parse("undisclosed-recipients: ;", "GROUP(undisclosed-recipients):|;");
	check_parse("team: a@x, b@y", "GROUP(team):|<a@x>|<b@y>|;");
	check_parse("team:", "GROUP(team):|;");
	check_parse("My Team: a@x;", "GROUP(My Team):|<a@x>|;");
	check_parse("\"A, Team\": a@x;", "GROUP(A, Team):|<a@x>|;");
	check_parse("a@x, team: b@y; c@z", "<a@x>|GROUP(team):|<b@y>|;|<c@z>");
	check_parse("team: A <a@x>, \"B\" <b@y>;", "GROUP(team):|A<a@x>|B<b@y>|;");
	check_parse("a: b: c@x;", "GROUP(a):|;|GROUP(b):|<c@x>|;");
	check_parse("<@r1,@r2:a@x>", "<a@x>");
	check_parse("Name <@r1.example, @r2.example:a@x>", "Name<a@x>");
	check_parse("<@r1:a@x>, b@y", "<a@x>|<b@y>");
	check_parse("a@[1.2.3.4]", "<a@[1.2.3.4]>");
	check_parse("Lit <a@[IPv6:2001:db8::1]>", "Lit<a@[IPv6:2001:db8::1]>");
	check_parse("root", "<root>");
	check_parse("Logwatch", "<Logwatch>");
	check_parse("root, a@x", "<root>|<a@x>");
	check_parse("a@x,,b@y,", "<a@x>|<b@y>");
	check_parse(", ,a@x", "<a@x>");
	check_parse("; , a@x ;", "<a@x>");
	check_parse("", "");
	check_parse("   ", "");
	check_parse("John <j@x", "John<j@x>");
	check_parse("John <j@x, b@y", "John<j@x>|<b@y>");
	check_parse("John Q. Public <j@x>", "John Q. Public<j@x>");
	check_parse("Dr. J.R. Smith Jr. <s@x>", "Dr. J.R. Smith Jr.<s@x>");
	check_parse("mdadm monitoring <root>", "mdadm monitoring<root>");
	check_parse("<root>", "<root>");
	check_parse("\"quoted \\\"pair\\\"\" <q@x>", "quoted \"pair\"<q@x>");
	check_parse("\"back\\\\slash\" <b@x>", "back\\slash<b@x>");
	check_parse("Name \"with\" quotes <n@x>", "Name with quotes<n@x>");
	check_parse("John\tDoe\t<j@x>", "John Doe<j@x>");
	check_parse("\"  padded  \" <p@x>", "padded<p@x>");
	check_parse("\"\" <empty@name>", "<empty@name>");
	check_parse("\"\"@x", "<@x>");
	check_parse("<>", "");
	check_parse("Nobody <>, a@x", "<a@x>");
	check_parse("(just a comment)", "");
	check_parse("a@x; b@y;c@z", "<a@x>|<b@y>|<c@z>");
	check_parse("<a@x>,<b@y>", "<a@x>|<b@y>");
	check_parse("john@x <john@x>", "john@x<john@x>");
	check_parse("[bot] <b@x>", "[bot]<b@x>");
	check_parse("<a@x> trailing words", "trailing words<a@x>");
	check_parse("Re: John <j@x>", "GROUP(Re):|John<j@x>|;");
	check_parse("Doe, John <j@x>", "<Doe>|John<j@x>");
	check_parse("a@x>", "ERR 65: bad address \"a@x>\": has an unexpected '>'");
	check_parse("> a@x", "<a@x>");

	/* comments anywhere, nested, with quoted-pairs */
	check_parse("John (the (nested \\) one) man) Doe <j@x>", "John Doe<j@x>");
	check_parse("a(c1)@(c2)x(c3)", "c1 c2 c3<a@x>");
	check_parse("a@x (outer (inner) outer)", "outer (inner) outer<a@x>");
	check_parse("a@x (a \\( b)", "a ( b<a@x>");
	check_parse("john . doe @ example . com", "<john.doe@example.com>");
	check_parse("<(c) a@x (d)>", "c d<a@x>");
	check_parse("Name (c) <a@x>", "Name<a@x>");

	/* encoded words in names, raw UTF-8 */
	check_parse("=?UTF-8?B?V1NM44GL44KJ44Gu44OG44K544OI44Oh44O844Or?= <w@x>",
	    "WSL\xe3\x81\x8b\xe3\x82\x89\xe3\x81\xae\xe3\x83\x86\xe3\x82\xb9\xe3\x83\x88"
	    "\xe3\x83\xa1\xe3\x83\xbc\xe3\x83\xab<w@x>");
	check_parse("=?iso-8859-1?q?J=F6rg?= <j@x>", "J\xc3\xb6rg<j@x>");
	check_parse("=?utf-8?q?a?= =?utf-8?q?b?= <x@y>", "ab<x@y>");
	check_parse("=?utf-8?q?Caf=C3=A9?= Owner <x@y>", "Caf\xc3\xa9 Owner<x@y>");
	check_parse("\"=?utf-8?q?J=C3=B6rg?=\" <j@x>", "J\xc3\xb6rg<j@x>");
	check_parse("x@y (=?utf-8?q?Comment_=C3=A9?=)", "Comment \xc3\xa9<x@y>");
	check_parse("=?utf-8?q?a=0Ab?= <x@y>", "a b<x@y>");
	check_parse("=?utf-8?q?T=C3=A9am?=: a@x;", "GROUP(T\xc3\xa9" "am):|<a@x>|;");
	check_parse("J\xc3\xb6rg M\xc3\xbcller <j@x>", "J\xc3\xb6rg M\xc3\xbcller<j@x>");
	check_parse("\"J\xc3\xb6rg\" <j@x>", "J\xc3\xb6rg<j@x>");
	check_parse("j\xc3\xb6rg@b\xc3\xbc" "cher.example", "<j\xc3\xb6rg@b\xc3\xbc" "cher.example>");
	check_parse("Caf\xe9 <latin1@x>", "Caf\xe9<latin1@x>");

	/* control characters: refused with one line of text */
	check_error("a@x\r\nBcc: victim@y", "control character (0x0d)");
	check_error("a@x\nb@y", "control character (0x0a)");
	check_error("a\001@x", "control character (0x01)");
	check_error("a@x\177", "control character (0x7f)");
	check_error("\"a\033b\"@x", "control character (0x1b)");
	check_error("Name (\010) <a@x>", "control character (0x08)");

	/* structure that cannot be an address */
	check_error("\"abc <a@x>", "quoted string that is not closed");
	check_error("(abc a@x", "comment that is not closed");
	check_error("a@x (a (b)", "comment that is not closed");
	check_error("a@x)", "')' that closes no comment");
	check_error("a@[1.2", "domain literal that is not closed");
	check_error("a@[1[2]", "domain literal that is not closed");
	check_error("\"a\\", "quoted string that is not closed");
	check_error("(a\\", "comment that is not closed");
	check_error("a@", "empty domain");
	check_error("Name <a@>", "empty domain");
	check_error("@x", "empty local part");
	check_error("a@b@c", "more than one '@'");
	check_error("John Doe", "several words");
	check_error("a@x b@y", "space inside its domain");
	check_error("a@x:", "unexpected ':'");
	check_error("<@r1>", "route without ':'");
	check_error("A <a@x> <b@y>", "two <addresses>");
	check_error("A <a@x <b@y>", "'<' inside <...>");
	check_error("\"q\"@\"d\"", "quoted string in its domain");
	check_error("[1.2.3.4]@x", "domain literal before '@'");
	check_parse("John Doe, b@y", "ERR 65: bad address \"John Doe\": is several words, but no <address>");
	check_parse("a\\", "<a\\>");
	check_error("a\\ b@x", "several words");
	check_parse("a\\@x\\", "<a\\@x\\>");

	/* a failed parse leaves out as it was */
	ok(rfc5322_parse_addresses("a@x", &l, &st) == EX_OK && l.n == 1, "first parse appends");
	ok(rfc5322_parse_addresses("b@y, team: c@z; d@", &l, &st) == EX_DATAERR && l.n == 1,
	    "a failing parse appends nothing");
	ok(rfc5322_parse_addresses("b@y", &l, &st) == EX_OK && l.n == 2 &&
	    strcmp(l.v[1].local, "b") == 0, "a second parse appends");
	ok(rfc5322_parse_addresses(NULL, &l, &st) == EX_OK && l.n == 2, "NULL is an empty list");
	address_list_free(&l);
	ok(l.n == 0 && l.v == NULL, "address_list_free empties the list");

	/* address_spec */
	s = address_spec("a", "x");
	is_str(s, "a@x", "plain spec");
	free(s);
	s = address_spec("first.last", "example.com");
	is_str(s, "first.last@example.com", "dot-atom spec");
	free(s);
	s = address_spec("a b", "x");
	is_str(s, "\"a b\"@x", "spec with a space quoted");
	free(s);
	s = address_spec("a\"b\\c", "x");
	is_str(s, "\"a\\\"b\\\\c\"@x", "spec quotes \" and \\");
	free(s);
	s = address_spec("a,b", "x");
	is_str(s, "\"a,b\"@x", "spec with a comma quoted");
	free(s);
	s = address_spec(".a", "x");
	is_str(s, "\".a\"@x", "leading dot quoted");
	free(s);
	s = address_spec("a..b", "x");
	is_str(s, "\"a..b\"@x", "double dot quoted");
	free(s);
	s = address_spec("a.", "x");
	is_str(s, "\"a.\"@x", "trailing dot quoted");
	free(s);
	s = address_spec("", "x");
	is_str(s, "\"\"@x", "empty local part quoted");
	free(s);
	s = address_spec("root", NULL);
	is_str(s, "root", "bare name");
	free(s);
	s = address_spec("j\xc3\xb6rg", "x");
	is_str(s, "j\xc3\xb6rg@x", "UTF-8 local part is an atom (RFC 6532)");
	free(s);
	s = address_spec("a", "[1.2.3.4]");
	is_str(s, "a@[1.2.3.4]", "domain literal kept");
	free(s);

	/* formatting */
	f = format_of("John Doe <j@x>", 4);
	is_str(f, "John Doe <j@x>", "plain name unquoted");
	free(f);
	f = format_of("\"Doe, John\" <j@x>", 4);
	is_str(f, "\"Doe, John\" <j@x>", "name with a comma quoted");
	free(f);
	f = format_of("John Q. Public <j@x>", 4);
	is_str(f, "\"John Q. Public\" <j@x>", "name with dots quoted");
	free(f);
	f = format_of("\"quoted \\\"pair\\\"\" <q@x>", 4);
	is_str(f, "\"quoted \\\"pair\\\"\" <q@x>", "quotes in a name escaped");
	free(f);
	f = format_of("root (Cron Daemon)", 6);
	is_str(f, "Cron Daemon <root>", "comment name becomes a phrase");
	free(f);
	f = format_of("a@x, b@y", 4);
	is_str(f, "a@x, b@y", "two addresses");
	free(f);
	f = format_of("team: a@x, b@y;, c@z", 4);
	is_str(f, "team: a@x, b@y;, c@z", "group then mailbox");
	free(f);
	f = format_of("team: a@x, b@y", 4);
	is_str(f, "team: a@x, b@y;", "a missing ';' is written");
	free(f);
	f = format_of("undisclosed-recipients:;", 4);
	is_str(f, "undisclosed-recipients:;", "empty group");
	free(f);
	f = format_of("a: b@x; c:;", 4);
	is_str(f, "a: b@x;, c:;", "two groups");
	free(f);
	f = format_of("\"a b\"@x", 4);
	is_str(f, "\"a b\"@x", "quoted local part");
	free(f);
	f = format_of("<@r:a@x>", 4);
	is_str(f, "a@x", "route dropped");
	free(f);
	f = format_of("J\xc3\xb6rg M\xc3\xbcller <j@x>", 4);
	is_str(f, "=?UTF-8?Q?J=C3=B6rg_M=C3=BCller?= <j@x>", "non-ASCII name encoded");
	free(f);
	f = format_of("\"M\xc3\xbcller, J\xc3\xb6rg\" <j@x>", 4);
	ok(strncmp(f, "=?UTF-8?", 8) == 0 && strchr(f, ',') == NULL && strchr(f, '"') == NULL,
	    "encoded phrase holds no comma or quote: %s", f);
	free(f);
	f = format_of("\"=?utf-8?q?x?=\" <x@y>", 4);
	is_str(f, "x <x@y>", "a quoted encoded word is decoded, then written plainly");
	free(f);

	/* a name in the list that a parse cannot produce */
	l.n = 0;
	{
		struct address_list m = {0};
		struct address a = { ADDR_MAILBOX, NULL, NULL, NULL };

		m.v = &a;
		m.n = 1;
		a.name = "Evil\r\nBcc: x@y";
		a.local = "e";
		a.domain = "x";
		f = rfc5322_format_addresses(&m, 4);
		is_str(f, "\"Evil  Bcc: x@y\" <e@x>", "control characters in a name never reach the header");
		free(f);
		a.name = "=?x";
		f = rfc5322_format_addresses(&m, 4);
		is_str(f, "\"=?x\" <e@x>", "a name like an encoded word is quoted");
		free(f);
		a.kind = ADDR_GROUP_END;
		f = rfc5322_format_addresses(&m, 4);
		is_str(f, "", "a group end that closes nothing writes nothing");
		free(f);
		a.kind = ADDR_GROUP_START;
		a.name = NULL;
		f = rfc5322_format_addresses(&m, 4);
		is_str(f, "\"\":;", "a nameless group gets an empty quoted name");
		free(f);
	}

	/* folding at commas: lines below 78 columns */
	{
		struct buf in = {0};
		char *u, *d1, *d2;

		for (i = 0; i < 30; i++)
			buf_printf(&in, "%suser%02zu@example.com", i ? ", " : "", i);
		f = format_of(in.s, 4);
		ok(longest_line(f, 4) < 78, "folded list: longest line %zu", longest_line(f, 4));
		ok(strstr(f, ",\r\n ") != NULL, "folded at a comma");
		ok(folds_well(f), "every fold is CRLF SP");
		u = unfold(f);
		d1 = parse(in.s);
		d2 = parse(u);
		is_str(d2, d1, "folded list parses back to the same 30 addresses");
		free(u);
		free(d1);
		free(d2);
		free(f);
		f = format_of(in.s, 70);
		ok(strncmp(f, "user00@example.com,\r\n ", 21) == 0 && longest_line(f + 21, 1) < 78,
		    "at column 70 the first address stays on the first line, the rest folds");
		free(f);
		buf_free(&in);
	}
	{
		struct buf in = {0};
		char *u, *d1, *d2;

		buf_adds(&in, "first@x, ");
		for (i = 0; i < 100; i++)
			buf_addc(&in, 'l');
		buf_adds(&in, "@example.com, after@x");
		f = format_of(in.s, 4);
		ok(strstr(f, "first@x,\r\n llll") != NULL && strstr(f, ".com,\r\n after@x") != NULL,
		    "a too long address sits alone on its line, unbroken: %s", show(f));
		u = unfold(f);
		d1 = parse(in.s);
		d2 = parse(u);
		is_str(d2, d1, "the long address parses back");
		free(u);
		free(d1);
		free(d2);
		free(f);
		buf_free(&in);
	}
	{
		struct buf in = {0};
		size_t longest;
		char *u, *d1, *d2;

		for (i = 0; i < 8; i++)
			buf_printf(&in, "%s\xe5\xb1\xb1\xe7\x94\xb0\xe5\xa4\xaa\xe9\x83\x8e "
			    "\xe3\x83\x86\xe3\x82\xb9\xe3\x83\x88\xe3\x83\xa6\xe3\x83\xbc\xe3\x82\xb6"
			    "%zu <yamada%zu@example.jp>", i ? ", " : "", i, i);
		buf_adds(&in, ", Team: \"Long Ascii Name Of Someone Important\" <important@example.com>;");
		f = format_of(in.s, 4);
		longest = longest_line(f, 4);
		ok(longest < 78, "encoded names folded below 78 columns: %zu", longest);
		ok(folds_well(f), "encoded names: every fold is CRLF SP");
		ok(str_is_ascii(f), "encoded names: the field is ASCII");
		u = unfold(f);
		d1 = parse(in.s);
		d2 = parse(u);
		is_str(d2, d1, "encoded names parse back to the same list");
		free(u);
		free(d1);
		free(d2);
		free(f);
		for (j = 0; j < 78; j++) {
			f = format_of(in.s, j);
			if (longest_line(f, j) >= 78)
				break;
			free(f);
			f = NULL;
		}
		ok(j == 78, "no line reaches 78 columns whatever the start column (failed at %zu)", j);
		free(f);
		buf_free(&in);
	}

	/* round trips: parse, format, parse */
	for (i = 0; i < sizeof(forms) / sizeof(forms[0]); i++)
		ok(round_trip(forms[i], 4, NULL) == 1, "round trip [%s]", forms[i]);

	/* the fields that hold addresses */
	ok(rfc5322_is_address_field("From") && rfc5322_is_address_field("to") &&
	    rfc5322_is_address_field("CC") && rfc5322_is_address_field("Bcc") &&
	    rfc5322_is_address_field("Reply-To") && rfc5322_is_address_field("Sender"),
	    "From, To, Cc, Bcc, Reply-To, Sender are address fields");
	ok(rfc5322_is_address_field("Resent-From") && rfc5322_is_address_field("resent-to") &&
	    rfc5322_is_address_field("Resent-Cc") && rfc5322_is_address_field("Resent-Bcc") &&
	    rfc5322_is_address_field("Resent-Sender"), "the Resent- forms are address fields");
	ok(!rfc5322_is_address_field("Subject") && !rfc5322_is_address_field("Resent-Date") &&
	    !rfc5322_is_address_field("X-To") && !rfc5322_is_address_field("Resent-") &&
	    !rfc5322_is_address_field("") && !rfc5322_is_address_field("Tox") &&
	    !rfc5322_is_address_field("Return-Path"), "other fields are not");

	/* fuzz-ish: truncated and garbled inputs never crash; what parses formats and parses back */
	{
		static const char garble[] = "\"()<>[]:;@\\,. \t=?\xc3\xa9\xff\x80" "a";
		unsigned long seed = 12345;
		size_t tries = 0, parsed = 0, bad = 0, len, pos;
		char buf[512];
		int r;

		for (i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
			len = strlen(forms[i]);
			for (j = 0; j <= len; j++) {
				memcpy(buf, forms[i], j);
				buf[j] = '\0';
				r = round_trip(buf, 4, NULL);
				tries++;
				parsed += r >= 0;
				bad += r == 0;
			}
			for (j = 0; j < 300; j++) {
				size_t k, edits;

				memcpy(buf, forms[i], len + 1);
				seed = seed * 6364136223846793005UL + 1442695040888963407UL;
				edits = 1 + (seed >> 33) % 4;
				for (k = 0; k < edits; k++) {
					size_t cur = strlen(buf);

					seed = seed * 6364136223846793005UL + 1442695040888963407UL;
					pos = cur > 0 ? (seed >> 33) % (cur + 1) : 0;
					seed = seed * 6364136223846793005UL + 1442695040888963407UL;
					if ((seed >> 40) % 3 == 0 && cur + 2 < sizeof(buf)) {
						memmove(buf + pos + 1, buf + pos, cur - pos + 1);
						buf[pos] = garble[(seed >> 33) % (sizeof(garble) - 1)];
					} else if ((seed >> 40) % 3 == 1 && pos < cur)
						memmove(buf + pos, buf + pos + 1, cur - pos);
					else if (pos < cur)
						buf[pos] = garble[(seed >> 33) % (sizeof(garble) - 1)];
				}
				r = round_trip(buf, (seed >> 20) % 60, NULL);
				tries++;
				parsed += r >= 0;
				bad += r == 0;
			}
		}
		ok(bad == 0, "fuzz: %zu inputs, %zu parsed, %zu failed to round trip", tries, parsed, bad);
		ok(parsed > tries / 4 && parsed < tries, "fuzz: some parse, some are refused");
	}
	/* every single-byte input, and long runs of specials */
	{
		char one[2] = { 0, 0 };
		int c;
		struct buf b = {0};

		for (c = 1; c < 256; c++) {
			one[0] = (char)c;
			s = parse(one);
			free(s);
		}
		for (i = 0; i < 2000; i++)
			buf_addc(&b, "(<\"["[i % 4]);
		s = parse(b.s);
		ok(strncmp(s, "ERR 65", 6) == 0, "a run of openers is refused");
		free(s);
		buf_reset(&b);
		for (i = 0; i < 2000; i++)
			buf_adds(&b, "(");
		for (i = 0; i < 2000; i++)
			buf_adds(&b, ")");
		buf_adds(&b, "a@x");
		s = parse(b.s);
		ok(strlen(s) == 3998 + 5 && strcmp(s + 3998, "<a@x>") == 0,
		    "deeply nested comments name the address");
		free(s);
		buf_reset(&b);
		for (i = 0; i < 500; i++)
			buf_adds(&b, "g:");
		s = parse(b.s);
		ok(strncmp(s, "GROUP(g):|;|GROUP(g)", 20) == 0, "many group starts");
		free(s);
		buf_free(&b);
		ok(1, "all single bytes survived");
	}
	return tap_done();
}
