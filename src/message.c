/* message.c: stdin to header fields in memory and a CRLF body in a temporary file */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "message.h"
#include "util.h"

#define NAME_MAX_LEN	998		/* a longer "name" is a body line */
#define SEGMENT_MAX	(64 * 1024)	/* longer lines are handled in pieces */
#define READ_CHUNK	(64 * 1024)

/* A buffered reader that hands out lines, or pieces of long lines, with
 * the line end removed. Every kind of line end counts: LF, CRLF, and a run
 * of CRs with or without a following LF (PHP 8 writes CR CR LF when its
 * CRLF header meets a text-mode conversion), so no bare CR or LF survives. */
struct reader {
	FILE *in;
	unsigned char buf[READ_CHUNK];
	size_t pos, len;
	bool eof, error;
	bool midline;		/* a piece of the current line was handed out */
	bool bare_cr;		/* the last line ended with CR not followed by LF */
	bool started;		/* the first chunk was read */
	bool cr_only;		/* and it held no LF: CR ends lines */
};

enum segment {
	SEG_LINE,		/* the rest of a line (ended by a line end or by EOF) */
	SEG_PART,		/* SEGMENT_MAX octets of a line that goes on */
	SEG_EOF,		/* nothing left */
};

/* what a header line turns out to be */
enum line_kind {
	LINE_UNDECIDED,		/* the line so far could still be a field */
	LINE_FIELD,
	LINE_CONTINUATION,
	LINE_EMPTY,
	LINE_BODY,		/* neither: the body starts here */
};

static int
reader_fill(struct reader *r)
{
	size_t n;

	if (r->pos < r->len)
		return 1;
	if (r->eof || r->error)
		return 0;
	n = fread(r->buf, 1, sizeof(r->buf), r->in);
	r->pos = 0;
	r->len = n;
	/* input whose first chunk has no LF at all uses CR alone to end lines
	 * (old Mac text); anywhere else a bare CR in a field is data, so that
	 * it cannot start a field of its own */
	if (!r->started && n > 0)
		r->cr_only = memchr(r->buf, '\n', n) == NULL;
	r->started = true;
	if (n == 0) {
		if (ferror(r->in))
			r->error = true;
		else
			r->eof = true;
		return 0;
	}
	return 1;
}

static int
reader_peek(struct reader *r)
{
	if (!reader_fill(r))
		return EOF;
	return r->buf[r->pos];
}

/* Appends the next piece of the current line to out. */
static enum segment
reader_segment(struct reader *r, struct buf *out)
{
	size_t taken = 0, start, i;
	int c;

	for (;;) {
		if (!reader_fill(r)) {
			if (taken > 0 || r->midline) {
				r->midline = false;
				return SEG_LINE;	/* no final line end: one is added */
			}
			return SEG_EOF;
		}
		start = r->pos;
		for (i = r->pos; i < r->len && taken + (i - start) < SEGMENT_MAX; i++)
			if (r->buf[i] == '\n' || r->buf[i] == '\r')
				break;
		buf_add(out, r->buf + start, i - start);
		taken += i - start;
		r->pos = i;
		if (i < r->len && (r->buf[i] == '\n' || r->buf[i] == '\r'))
			break;
		if (taken >= SEGMENT_MAX) {
			r->midline = true;
			return SEG_PART;
		}
	}
	/* a line end: LF, or CR+ optionally followed by LF */
	c = r->buf[r->pos++];
	r->bare_cr = false;
	if (c == '\r') {
		while ((c = reader_peek(r)) == '\r')
			r->pos++;
		if (c == '\n')
			r->pos++;
		else
			r->bare_cr = true;
	}
	r->midline = false;
	return SEG_LINE;
}

/* Skips the rest of the current line. */
static void
reader_skip_line(struct reader *r)
{
	struct buf tmp = {0};

	while (reader_segment(r, &tmp) == SEG_PART)
		buf_reset(&tmp);
	buf_free(&tmp);
}

static bool
is_name_char(unsigned char c)
{
	return c > ' ' && c < 0x7f && c != ':';
}

/* Classifies a header line from its first len octets; complete says
 * whether the whole line is there. A name, optional blanks (obsolete
 * syntax), then ':' makes a field. */
static enum line_kind
classify(const char *s, size_t len, bool complete)
{
	size_t i = 0;

	if (len == 0)
		return complete ? LINE_EMPTY : LINE_UNDECIDED;
	if (s[0] == ' ' || s[0] == '\t')
		return LINE_CONTINUATION;
	while (i < len && is_name_char((unsigned char)s[i]))
		i++;
	if (i == 0 || i > NAME_MAX_LEN)
		return LINE_BODY;
	while (i < len && (s[i] == ' ' || s[i] == '\t'))
		i++;
	if (i > NAME_MAX_LEN)
		return LINE_BODY;
	if (i < len)
		return s[i] == ':' ? LINE_FIELD : LINE_BODY;
	return complete ? LINE_BODY : LINE_UNDECIDED;
}

/* The unfolded body of a raw field: line breaks (CRLF) removed, the blanks
 * after them kept, leading and trailing blanks trimmed. A CR that is not
 * part of a CRLF stays: it is a control character in the field, and the
 * field is refused or encoded for it where it is used. */
static char *
unfold_value(const char *raw)
{
	const char *p = strchr(raw, ':');
	struct buf b = {0};

	p = p != NULL ? p + 1 : raw + strlen(raw);
	while (*p == ' ' || *p == '\t' || (p[0] == '\r' && p[1] == '\n') || *p == '\n')
		p += p[0] == '\r' ? 2 : 1;
	for (; *p != '\0'; p++) {
		if (p[0] == '\r' && p[1] == '\n')
			p++;
		else if (*p != '\n')
			buf_addc(&b, *p);
	}
	while (b.len > 0 && (b.s[b.len - 1] == ' ' || b.s[b.len - 1] == '\t'))
		b.s[--b.len] = '\0';
	return buf_steal(&b);
}

static char *
field_name(const char *raw)
{
	size_t n = 0;

	while (is_name_char((unsigned char)raw[n]))
		n++;
	return xstrndup(raw, n);
}

static void
fields_grow(struct message *m)
{
	if (m->nfields < m->cap)
		return;
	m->cap = m->cap == 0 ? 32 : m->cap * 2;
	m->fields = xrealloc(m->fields, m->cap * sizeof(*m->fields));
}

/* Takes ownership of raw (complete, CRLF-terminated). */
static void
field_init(struct field *f, char *raw)
{
	f->raw = raw;
	f->name = field_name(raw);
	f->value = unfold_value(raw);
}

static void
field_clear(struct field *f)
{
	free(f->name);
	free(f->raw);
	free(f->value);
	f->name = f->raw = f->value = NULL;
}

/* Finishes the field being collected in cur (if any). */
static void
header_flush(struct message *m, struct buf *cur)
{
	if (cur->len == 0)
		return;
	fields_grow(m);
	field_init(&m->fields[m->nfields++], buf_steal(cur));
}

static int
body_open(const char *tmpdir, struct message *m, struct status *st)
{
	char *path;
	int fd;

	if (tmpdir == NULL || *tmpdir == '\0')
		tmpdir = getenv("TMPDIR");
	if (tmpdir == NULL || *tmpdir == '\0')
		tmpdir = "/tmp";
	path = xasprintf("%s/acsmail-body.XXXXXX", tmpdir);
	if ((fd = mkstemp(path)) == -1) {
		fd = status_set(st, EX_TEMPFAIL, "cannot create a temporary file in %s: %s",
		    tmpdir, strerror(errno));
		free(path);
		return fd;
	}
	/* unlinked at once: nothing is left behind whatever happens next */
	unlink(path);
	free(path);
	if ((m->body = fdopen(fd, "w+")) == NULL) {
		close(fd);
		return status_set(st, EX_TEMPFAIL, "cannot open a temporary file: %s",
		    strerror(errno));
	}
	return EX_OK;
}

/* The state of the body line being written. */
struct body_line {
	size_t len;
	bool open;		/* part of a line was written, its CRLF not yet */
};

static void
body_note(struct message *m, struct body_line *bl, const char *p, size_t n)
{
	size_t i;

	if (!m->body_8bit)
		for (i = 0; i < n; i++)
			if ((unsigned char)p[i] >= 0x80) {
				m->body_8bit = true;
				break;
			}
	bl->len += n;
	if (bl->len > m->body_longest)
		m->body_longest = bl->len;
}

static void
body_put(struct message *m, struct body_line *bl, const char *p, size_t n, bool end)
{
	if (n > 0) {
		fwrite(p, 1, n, m->body);
		body_note(m, bl, p, n);
		m->body_size += (off_t)n;
	}
	bl->open = !end;
	if (end) {
		fwrite("\r\n", 1, 2, m->body);
		m->body_size += 2;
		bl->len = 0;
	}
}

/* A NUL cannot be kept in a C string: it becomes DEL, another control
 * character, so the field is still refused or encoded where it is used.
 * Other raw bytes stay and are judged there too. */
static void
header_add_line(struct message *m, struct buf *cur, const struct buf *line)
{
	size_t i;

	for (i = 0; i < line->len; i++) {
		if ((unsigned char)line->s[i] >= 0x80)
			m->header_8bit = true;
		buf_addc(cur, line->s[i] == '\0' ? 0x7f : line->s[i]);
	}
	buf_add(cur, "\r\n", 2);
}

int
message_read(FILE *in, bool dot_ends, const char *tmpdir, struct message *m, struct status *st)
{
	struct reader *r;
	struct buf line = {0}, cur = {0};
	struct body_line bl = {0};
	size_t header_size = 0;
	bool in_header = true, first = true, at_start;
	enum segment seg;
	enum line_kind kind;
	int rc = EX_OK;

	memset(m, 0, sizeof(*m));
	if ((rc = body_open(tmpdir, m, st)) != EX_OK)
		return rc;
	r = xcalloc(1, sizeof(*r));
	r->in = in;

	while (in_header) {
		buf_reset(&line);
		kind = LINE_UNDECIDED;
		do {
			seg = reader_segment(r, &line);
			if (seg == SEG_EOF)
				break;
			kind = classify(line.s != NULL ? line.s : "", line.len, seg == SEG_LINE);
			if (line.len + header_size > MESSAGE_HEADER_MAX && kind != LINE_BODY)
				goto overflow;
		} while (seg == SEG_PART && kind == LINE_UNDECIDED);
		if (seg == SEG_EOF)
			goto done;
		if (first && kind != LINE_FIELD && line.len >= 5 &&
		    memcmp(line.s, "From ", 5) == 0) {
			/* the mbox envelope line */
			first = false;
			if (seg == SEG_PART)
				reader_skip_line(r);
			continue;
		}
		if (dot_ends && seg == SEG_LINE && line.len == 1 && line.s[0] == '.')
			goto done;
		if (kind == LINE_CONTINUATION && cur.len == 0)
			kind = LINE_BODY;	/* nothing to continue */
		first = false;
		switch (kind) {
		case LINE_EMPTY:
			in_header = false;
			break;
		case LINE_FIELD:
		case LINE_CONTINUATION:
			/* the rest of a long field line, still under the cap; a
			 * bare CR does not end a field line: it stays in the field
			 * as a control character, refused or encoded where the
			 * field is used, so it cannot start a field of its own */
			while (seg == SEG_PART || (seg == SEG_LINE && r->bare_cr && !r->cr_only)) {
				if (seg == SEG_LINE)
					buf_addc(&line, '\r');
				seg = reader_segment(r, &line);
				if (seg == SEG_EOF)
					break;
				if (line.len + header_size > MESSAGE_HEADER_MAX)
					goto overflow;
			}
			if (kind == LINE_FIELD)
				header_flush(m, &cur);
			header_add_line(m, &cur, &line);
			header_size += line.len + 2;
			break;
		default:
			/* this line is the first of the body */
			in_header = false;
			body_put(m, &bl, line.s, line.len, seg == SEG_LINE);
			break;
		}
	}
	header_flush(m, &cur);
	goto body;
overflow:
	/* a header this large is not mail, but it is kept whole: from this
	 * line on the input is body, and the message is refused where it is used */
	m->header_too_large = true;
	header_flush(m, &cur);
	body_put(m, &bl, line.s, line.len, seg == SEG_LINE);
body:
	for (;;) {
		at_start = !bl.open;
		buf_reset(&line);
		seg = reader_segment(r, &line);
		if (seg == SEG_EOF)
			break;
		if (dot_ends && at_start && seg == SEG_LINE && line.len == 1 && line.s[0] == '.')
			break;
		body_put(m, &bl, line.s, line.len, seg == SEG_LINE);
		if (ferror(m->body))
			break;
	}
done:
	header_flush(m, &cur);
	if (r->error) {
		rc = status_set(st, EX_IOERR, "cannot read the message: %s", strerror(errno));
		goto out;
	}
	if (fflush(m->body) != 0 || ferror(m->body)) {
		rc = status_set(st, EX_TEMPFAIL, "cannot write the message to a temporary file: %s",
		    strerror(errno));
		goto out;
	}
out:
	buf_free(&line);
	buf_free(&cur);
	free(r);
	if (rc != EX_OK)
		message_free(m);
	return rc;
}

struct field *
message_find(struct message *m, const char *name)
{
	size_t i;

	for (i = 0; i < m->nfields; i++)
		if (strcasecmp(m->fields[i].name, name) == 0)
			return &m->fields[i];
	return NULL;
}

size_t
message_remove(struct message *m, const char *name)
{
	size_t i, j, removed = 0;

	for (i = j = 0; i < m->nfields; i++) {
		if (strcasecmp(m->fields[i].name, name) == 0) {
			field_clear(&m->fields[i]);
			removed++;
			continue;
		}
		m->fields[j++] = m->fields[i];
	}
	m->nfields = j;
	return removed;
}

/* "name: value" + CRLF. A line break inside value always goes out as CRLF
 * followed by a blank, so no value can start a field of its own. */
static char *
field_build(const char *name, const char *value)
{
	struct buf b = {0};
	size_t n = strlen(value);
	const char *p;

	while (n > 0 && (value[n - 1] == '\r' || value[n - 1] == '\n'))
		n--;
	buf_printf(&b, "%s: ", name);
	for (p = value; p < value + n; p++) {
		if (*p == '\r' || *p == '\n') {
			if (*p == '\r' && p + 1 < value + n && p[1] == '\n')
				p++;
			buf_add(&b, "\r\n", 2);
			if (p + 1 < value + n && p[1] != ' ' && p[1] != '\t')
				buf_addc(&b, ' ');
			continue;
		}
		buf_addc(&b, *p);
	}
	buf_add(&b, "\r\n", 2);
	return buf_steal(&b);
}

void
message_add(struct message *m, const char *name, const char *value)
{
	fields_grow(m);
	field_init(&m->fields[m->nfields++], field_build(name, value));
}

void
message_prepend(struct message *m, const char *name, const char *value)
{
	fields_grow(m);
	memmove(m->fields + 1, m->fields, m->nfields * sizeof(*m->fields));
	m->nfields++;
	field_init(&m->fields[0], field_build(name, value));
}

void
message_replace(struct message *m, struct field *f, const char *value)
{
	char *raw = field_build(f->name, value);

	(void)m;
	field_clear(f);
	field_init(f, raw);
}

int
message_write(struct message *m, FILE *out, struct status *st)
{
	char buf[READ_CHUNK];
	size_t i, n;

	for (i = 0; i < m->nfields; i++)
		fputs(m->fields[i].raw, out);
	fputs("\r\n", out);
	if (m->body != NULL) {
		if (fflush(m->body) != 0 || fseeko(m->body, 0, SEEK_SET) != 0)
			return status_set(st, EX_IOERR, "cannot rewind the message body: %s",
			    strerror(errno));
		while ((n = fread(buf, 1, sizeof(buf), m->body)) > 0)
			if (fwrite(buf, 1, n, out) != n)
				break;
		if (ferror(m->body))
			return status_set(st, EX_IOERR, "cannot read the message body: %s",
			    strerror(errno));
	}
	if (fflush(out) != 0 || ferror(out))
		return status_set(st, EX_IOERR, "cannot write the message: %s", strerror(errno));
	return EX_OK;
}

void
message_free(struct message *m)
{
	size_t i;

	for (i = 0; i < m->nfields; i++)
		field_clear(&m->fields[i]);
	free(m->fields);
	m->fields = NULL;
	m->nfields = m->cap = 0;
	if (m->body != NULL)
		fclose(m->body);
	m->body = NULL;
}
