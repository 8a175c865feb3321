/* test_message.c: reading stdin into header fields and a CRLF body */

#include <stdlib.h>
#include <string.h>

#include "message.h"
#include "tap.h"
#include "util.h"

/* Reads input (len octets) as a message; returns message_read's code. */
static int
read_input(const char *input, size_t len, bool dot_ends, struct message *m, struct status *st)
{
	FILE *in = tmpfile();
	int rc;

	fwrite(input, 1, len, in);
	rewind(in);
	status_clear(st);
	rc = message_read(in, dot_ends, NULL, m, st);
	fclose(in);
	return rc;
}

static int
read_str(const char *input, bool dot_ends, struct message *m, struct status *st)
{
	return read_input(input, strlen(input), dot_ends, m, st);
}

/* The whole message as message_write produces it. */
static char *
written(struct message *m, size_t *len)
{
	struct status st;
	char *s = NULL;
	size_t n = 0;
	FILE *out = open_memstream(&s, &n);

	message_write(m, out, &st);
	fclose(out);
	if (len != NULL)
		*len = n;
	return s;
}

static char *
body_of(struct message *m)
{
	struct buf b = {0};
	char tmp[4096];
	size_t n;

	rewind(m->body);
	while ((n = fread(tmp, 1, sizeof(tmp), m->body)) > 0)
		buf_add(&b, tmp, n);
	return buf_steal(&b);
}

struct line_case {
	const char *desc;
	const char *input;
	bool dot_ends;
	const char *want;	/* message_write's output */
};

static const struct line_case line_cases[] = {
	{ "LF line ends become CRLF",
	  "To: a@x\nSubject: s\n\nline 1\nline 2\n", true,
	  "To: a@x\r\nSubject: s\r\n\r\nline 1\r\nline 2\r\n" },
	{ "CRLF line ends stay",
	  "To: a@x\r\n\r\nbody\r\n", true,
	  "To: a@x\r\n\r\nbody\r\n" },
	{ "mixed LF and CRLF (PHP mail())",
	  "To: a@x\r\nSubject: s\r\n\r\none\ntwo\r\nthree\n", true,
	  "To: a@x\r\nSubject: s\r\n\r\none\r\ntwo\r\nthree\r\n" },
	{ "CR CR LF is one line end, not an empty line",
	  "To: a@x\r\r\nSubject: s\r\r\n\r\r\nbody\r\r\n", true,
	  "To: a@x\r\nSubject: s\r\n\r\nbody\r\n" },
	{ "a lone CR inside a line ends it",
	  "To: a@x\n\n10%\r20%\r30%\n", true,
	  "To: a@x\r\n\r\n10%\r\n20%\r\n30%\r\n" },
	{ "no final line end: CRLF added",
	  "To: a@x\n\nlast line", true,
	  "To: a@x\r\n\r\nlast line\r\n" },
	{ "mbox From line dropped",
	  "From root@host Mon Jan  1 00:00:00 2026\nTo: a@x\n\nb\n", true,
	  "To: a@x\r\n\r\nb\r\n" },
	{ "From: field on the first line kept",
	  "From: root\nTo: a@x\n\nb\n", true,
	  "From: root\r\nTo: a@x\r\n\r\nb\r\n" },
	{ "obsolete 'From :' on the first line is a field, not an mbox line",
	  "From : root\n\nb\n", true,
	  "From : root\r\n\r\nb\r\n" },
	{ "a later 'From ' line in the body kept",
	  "To: a@x\n\nFrom here on\n", true,
	  "To: a@x\r\n\r\nFrom here on\r\n" },
	{ "lone dot ends the input without -i",
	  "To: a@x\n\nkept\n.\nnot kept\n", true,
	  "To: a@x\r\n\r\nkept\r\n" },
	{ "lone dot with CRLF ends the input",
	  "To: a@x\r\n\r\nkept\r\n.\r\nnot kept\r\n", true,
	  "To: a@x\r\n\r\nkept\r\n" },
	{ "lone dot is data with -i",
	  "To: a@x\n\nkept\n.\nalso kept\n", false,
	  "To: a@x\r\n\r\nkept\r\n.\r\nalso kept\r\n" },
	{ "a line of two dots is data",
	  "To: a@x\n\n..\n.x\n", true,
	  "To: a@x\r\n\r\n..\r\n.x\r\n" },
	{ "lone dot inside the header ends the input",
	  "To: a@x\n.\nSubject: no\n", true,
	  "To: a@x\r\n\r\n" },
	{ "a non-field line ends the header and starts the body",
	  "To: a@x\nthis is text\nSubject: body too\n", true,
	  "To: a@x\r\n\r\nthis is text\r\nSubject: body too\r\n" },
	{ "no header at all: everything is body",
	  "hello world\nsecond\n", true,
	  "\r\nhello world\r\nsecond\r\n" },
	{ "a first line starting with a blank is body",
	  " indented\nTo: a@x\n", true,
	  "\r\n indented\r\nTo: a@x\r\n" },
	{ "empty input",
	  "", true,
	  "\r\n" },
	{ "header without a body",
	  "To: a@x\nSubject: s", true,
	  "To: a@x\r\nSubject: s\r\n\r\n" },
	{ "folding kept in raw",
	  "To: a@x,\n  b@y\nSubject: s\n\nb\n", true,
	  "To: a@x,\r\n  b@y\r\nSubject: s\r\n\r\nb\r\n" },
	{ "empty lines in the body kept",
	  "To: a@x\n\n\n\nend\n\n", true,
	  "To: a@x\r\n\r\n\r\n\r\nend\r\n\r\n" },
};

static void
test_line_ends(void)
{
	size_t i;

	for (i = 0; i < sizeof(line_cases) / sizeof(line_cases[0]); i++) {
		const struct line_case *c = &line_cases[i];
		struct message m;
		struct status st;
		char *out;
		int rc = read_str(c->input, c->dot_ends, &m, &st);

		ok(rc == EX_OK, "%s: read", c->desc);
		out = written(&m, NULL);
		is_str(out, c->want, "%s", c->desc);
		free(out);
		message_free(&m);
	}
}

static void
test_fields(void)
{
	struct message m;
	struct status st;
	struct field *f;

	read_str("Subject:   hello\n\tworld  \nTO: <a@x>,\r\n b@y\nX-Empty:\n"
	    "Subject : obsolete\n\nbody\n", true, &m, &st);
	ok(m.nfields == 4, "four fields (%zu)", m.nfields);
	f = message_find(&m, "subject");
	ok(f != NULL, "find is case-insensitive");
	is_str(f ? f->name : NULL, "Subject", "name as written");
	is_str(f ? f->value : NULL, "hello\tworld", "value unfolded, blanks trimmed");
	is_str(f ? f->raw : NULL, "Subject:   hello\r\n\tworld  \r\n", "raw keeps folding");
	f = message_find(&m, "To");
	is_str(f ? f->name : NULL, "TO", "name case kept");
	is_str(f ? f->value : NULL, "<a@x>, b@y", "To unfolded");
	f = message_find(&m, "X-Empty");
	is_str(f ? f->value : NULL, "", "empty value");
	is_str(m.fields[3].name, "Subject", "obsolete 'Name :' form: name without the blank");
	is_str(m.fields[3].value, "obsolete", "obsolete form: value");
	ok(!m.header_8bit, "ASCII header");
	ok(m.body_size == 6, "body size counts CRLF (%lld)", (long long)m.body_size);
	ok(message_find(&m, "Cc") == NULL, "absent field not found");
	message_free(&m);

	read_str("Subject: caf\xc3\xa9\n\nplain\n", true, &m, &st);
	ok(m.header_8bit, "8-bit header noticed");
	ok(!m.body_8bit, "ASCII body");
	message_free(&m);
}

static void
test_edit(void)
{
	struct message m;
	struct status st;
	struct field *f;
	char *out;

	read_str("To: a@x\nBcc: hidden@x\nSubject: s\nbcc: again@x\n\nb\n", true, &m, &st);
	ok(message_remove(&m, "Bcc") == 2, "both Bcc removed");
	ok(message_remove(&m, "Bcc") == 0, "nothing left to remove");
	message_add(&m, "Date", "Thu, 1 Jan 2026 00:00:00 +0000");
	message_prepend(&m, "From", "\"Cron Daemon\" <d@x>");
	f = message_find(&m, "To");
	message_replace(&m, f, "a@x,\r\n b@y");
	f = message_find(&m, "To");
	is_str(f ? f->value : NULL, "a@x, b@y", "replaced value unfolded");
	out = written(&m, NULL);
	is_str(out, "From: \"Cron Daemon\" <d@x>\r\nTo: a@x,\r\n b@y\r\nSubject: s\r\n"
	    "Date: Thu, 1 Jan 2026 00:00:00 +0000\r\n\r\nb\r\n", "add, prepend, replace, remove");
	free(out);
	out = written(&m, NULL);
	is_str(out, "From: \"Cron Daemon\" <d@x>\r\nTo: a@x,\r\n b@y\r\nSubject: s\r\n"
	    "Date: Thu, 1 Jan 2026 00:00:00 +0000\r\n\r\nb\r\n", "writing twice rewinds the body");
	free(out);

	message_add(&m, "X-Test", "one\nInjected: yes\r\n");
	f = message_find(&m, "X-Test");
	is_str(f ? f->raw : NULL, "X-Test: one\r\n Injected: yes\r\n",
	    "a line break in a value cannot start a field");
	ok(message_find(&m, "Injected") == NULL, "no injected field");
	message_add(&m, "X-Many", "a");
	message_add(&m, "X-Many", "b");
	ok(message_remove(&m, "x-many") == 2, "remove is case-insensitive");
	message_free(&m);
	message_free(&m);
	ok(1, "message_free twice is harmless");
}

static void
test_many_fields(void)
{
	struct buf in = {0};
	struct message m;
	struct status st;
	int i;

	for (i = 0; i < 500; i++)
		buf_printf(&in, "X-Cron-Env: <VAR%d=value>\n", i);
	buf_adds(&in, "\nbody\n");
	ok(read_input(in.s, in.len, true, &m, &st) == EX_OK, "500 fields read");
	ok(m.nfields == 500, "500 fields kept");
	is_str(m.fields[499].value, "<VAR499=value>", "last field intact");
	message_free(&m);
	buf_free(&in);
}

static void
test_body_facts(void)
{
	static const char input[] = "To: a@x\n\nab\0cd\nlong line here\n\xe2\x82\xac\n";
	struct message m;
	struct status st;
	char *body;

	ok(read_input(input, sizeof(input) - 1, true, &m, &st) == EX_OK, "body with NUL read");
	body = body_of(&m);
	ok(m.body_size == 28, "NUL kept: size %lld", (long long)m.body_size);
	ok(memcmp(body, "ab\0cd\r\nlong line here\r\n\xe2\x82\xac\r\n", 28) == 0, "NUL body bytes kept");
	ok(m.body_8bit, "8-bit body");
	ok(m.body_longest == 14, "longest line %zu", m.body_longest);
	ok(!m.header_8bit, "header ASCII");
	free(body);
	message_free(&m);

	ok(read_str("To: a@x\nX-Bin: a\1b\n\nx\n", true, &m, &st) == EX_OK, "control byte in header read");
	is_str(m.fields[1].value, "a\1b", "control bytes in header are judged later");
	message_free(&m);
}

static void
test_long_lines(void)
{
	size_t n = 1024 * 1024 + 17, len, i;
	char *input = xmalloc(n + 64), *body;
	struct message m;
	struct status st;
	bool all = true;

	/* no header, one 1 MB line without a line end */
	memset(input, 'a', n);
	ok(read_input(input, n, true, &m, &st) == EX_OK, "1 MB line without LF");
	ok(m.nfields == 0, "no fields");
	ok(m.body_longest == n, "longest line %zu", m.body_longest);
	ok(m.body_size == (off_t)n + 2, "CRLF added to the long line");
	body = body_of(&m);
	for (i = 0; i < n; i++)
		if (body[i] != 'a')
			all = false;
	ok(all && body[n] == '\r' && body[n + 1] == '\n', "long line intact");
	free(body);
	message_free(&m);

	/* header, then a long line of name characters: body, not a field */
	len = (size_t)sprintf(input, "To: a@x\n\n");
	memset(input + len, 'b', n - len);
	input[n - 1] = '\n';
	ok(read_input(input, n, true, &m, &st) == EX_OK, "long body line after a header");
	ok(m.nfields == 1 && m.body_longest == n - len - 1, "body line length %zu", m.body_longest);
	message_free(&m);

	/* a long first line that looks like the start of a field name, then a lone dot */
	memset(input, 'c', n);
	input[n - 3] = '\n';
	input[n - 2] = '.';
	input[n - 1] = '\n';
	ok(read_input(input, n, true, &m, &st) == EX_OK, "long nameish line then dot");
	ok(m.nfields == 0 && m.body_longest == n - 3 && m.body_size == (off_t)(n - 3 + 2),
	    "dot after a long line ends the input");
	message_free(&m);

	/* a CR CR LF split across the reader's buffer boundary */
	for (i = 0; i < n; i++)
		input[i] = 'd';
	memcpy(input, "To: a@x\n\n", 9);
	input[65535] = '\r';
	input[65536] = '\r';
	input[65537] = '\n';
	ok(read_input(input, n, true, &m, &st) == EX_OK, "CR CR LF across a buffer boundary");
	body = body_of(&m);
	ok(m.body_size == (off_t)(n - 9 - 3 + 4), "one line end there (%lld)", (long long)m.body_size);
	ok(memcmp(body + 65535 - 9, "\r\nd", 3) == 0, "CRLF in place");
	free(body);
	message_free(&m);
	free(input);
}

static void
test_header_limits(void)
{
	struct buf in = {0};
	struct message m;
	struct status st;
	size_t i;

	/* a field of 200 KB folded over many lines is fine */
	buf_adds(&in, "To: a@x,\n");
	for (i = 0; i < 10000; i++)
		buf_printf(&in, " user%05zu@example.org,\n", i);
	buf_adds(&in, " last@x\n\nbody\n");
	ok(read_input(in.s, in.len, true, &m, &st) == EX_OK, "large folded field read");
	ok(m.nfields == 1 && strstr(m.fields[0].value, "user09999@example.org, last@x") != NULL,
	    "large field unfolded");
	message_free(&m);
	buf_free(&in);

	/* over 1 MB of header */
	for (i = 0; i < 40000; i++)
		buf_printf(&in, "X-Filler-%zu: %s\n", i, "0123456789012345678901234567890");
	buf_adds(&in, "\nbody\n");
	ok(read_input(in.s, in.len, true, &m, &st) == EX_OK && m.header_too_large,
	    "header over 1 MB: read, marked too large");
	ok(m.nfields > 0 && m.nfields < 40000 && m.body_size > 0,
	    "the fields under the cap are fields, the rest is kept in the body");
	message_free(&m);
	buf_free(&in);

	/* one field line over 1 MB */
	buf_adds(&in, "Subject: ");
	for (i = 0; i < 1100000; i++)
		buf_addc(&in, 'x');
	buf_adds(&in, "\n\nbody\n");
	ok(read_input(in.s, in.len, true, &m, &st) == EX_OK && m.header_too_large &&
	    m.body_size > 1100000, "single field line over 1 MB: marked, kept whole in the body");
	message_free(&m);
	buf_free(&in);
}

static void
test_tmpdir(void)
{
	struct message m;
	struct status st;
	FILE *in = tmpfile();

	fputs("To: a@x\n\nb\n", in);
	rewind(in);
	status_clear(&st);
	ok(message_read(in, true, "/nonexistent/dir", &m, &st) == EX_TEMPFAIL,
	    "unusable tmpdir is a temporary failure");
	ok(strstr(st.text, "/nonexistent/dir") != NULL, "reason names the directory: %s", st.text);
	message_free(&m);
	fclose(in);
}

int
main(void)
{
	test_line_ends();
	test_fields();
	test_edit();
	test_many_fields();
	test_body_facts();
	test_long_lines();
	test_header_limits();
	test_tmpdir();
	return tap_done();
}
