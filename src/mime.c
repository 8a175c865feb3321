/* mime.c: RFC 2047 encoded words, quoted-printable, the 8-bit downgrade */

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

#include "mime.h"
#include "util.h"

#define HEADER_COLS	77	/* a header line stays below 78 columns */
#define WORD_MAX	75	/* RFC 2047: the longest encoded word */
#define WORD_OVERHEAD	12	/* "=?UTF-8?B?" and "?=" */
#define QP_TEXT_MAX	75	/* QP text on a line, leaving room for a soft break's '=' */
#define BODY_LINE_MAX	998	/* RFC 5322: octets on a line, CRLF excluded */
#define PIECE_MAX	4096	/* a longer line is handled in pieces */
#define NEST_MAX	32	/* deeper MIME structures are copied as they are */

static const char hexdigits[] = "0123456789ABCDEF";

/* RFC 2047 decoding */

enum charset { CS_UNKNOWN, CS_UTF8, CS_LATIN1 };

static enum charset
charset_lookup(const char *s, size_t n)
{
	static const struct {
		const char *name;
		enum charset cs;
	} names[] = {
		{ "utf-8", CS_UTF8 }, { "utf8", CS_UTF8 },
		{ "us-ascii", CS_UTF8 }, { "ascii", CS_UTF8 },
		{ "iso-8859-1", CS_LATIN1 }, { "iso8859-1", CS_LATIN1 },
		{ "iso_8859-1", CS_LATIN1 }, { "latin1", CS_LATIN1 },
		{ "latin-1", CS_LATIN1 },
	};
	const char *star;
	size_t i;

	/* RFC 2231 allows a language after the charset: "utf-8*en" */
	if ((star = memchr(s, '*', n)) != NULL)
		n = (size_t)(star - s);
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strlen(names[i].name) == n && strncasecmp(names[i].name, s, n) == 0)
			return names[i].cs;
	return CS_UNKNOWN;
}

static int
hex_value(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static int
base64_value(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

static bool
decode_b(const char *s, size_t n, struct buf *out)
{
	unsigned long acc = 0;
	size_t i, data = 0;
	int bits = 0, v;

	for (i = 0; i < n && s[i] != '='; i++) {
		if ((v = base64_value((unsigned char)s[i])) < 0)
			return false;
		acc = ((acc << 6) | (unsigned long)v) & 0xffffff;
		bits += 6;
		data++;
		if (bits >= 8) {
			bits -= 8;
			buf_addc(out, (char)((acc >> bits) & 0xff));
		}
	}
	for (; i < n; i++)
		if (s[i] != '=')
			return false;
	return data % 4 != 1;
}

static bool
decode_q(const char *s, size_t n, struct buf *out)
{
	size_t i;
	int hi, lo;

	for (i = 0; i < n; i++) {
		if (s[i] == '_')
			buf_addc(out, ' ');
		else if (s[i] != '=')
			buf_addc(out, s[i]);
		else {
			if (i + 2 >= n)
				return false;
			hi = hex_value((unsigned char)s[i + 1]);
			lo = hex_value((unsigned char)s[i + 2]);
			if (hi < 0 || lo < 0)
				return false;
			buf_addc(out, (char)(hi * 16 + lo));
			i += 2;
		}
	}
	return true;
}

static void
add_latin1(struct buf *out, const char *s, size_t n)
{
	unsigned char c;
	size_t i;

	for (i = 0; i < n; i++) {
		c = (unsigned char)s[i];
		if (c < 0x80)
			buf_addc(out, (char)c);
		else {
			buf_addc(out, (char)(0xc0 | (c >> 6)));
			buf_addc(out, (char)(0x80 | (c & 0x3f)));
		}
	}
}

static bool
is_charset_char(unsigned char c)
{
	return c > ' ' && c < 0x7f && strchr("()<>@,;:\"/[]?.=\\", c) == NULL;
}

/* Decodes the encoded word at s into utf8; returns its length in s, or 0
 * when s does not start a well-formed word in a known charset. */
static size_t
decode_word(const char *s, struct buf *raw, struct buf *utf8)
{
	const char *p = s + 2, *charset, *text;
	enum charset cs;
	char enc;
	bool good;

	charset = p;
	while (is_charset_char((unsigned char)*p))
		p++;
	if (*p != '?' || p == charset)
		return 0;
	cs = charset_lookup(charset, (size_t)(p - charset));
	p++;
	enc = *p;
	if (enc != 'B' && enc != 'b' && enc != 'Q' && enc != 'q')
		return 0;
	if (*++p != '?')
		return 0;
	text = ++p;
	while (*p > ' ' && *p < 0x7f && *p != '?')
		p++;
	if (p[0] != '?' || p[1] != '=' || cs == CS_UNKNOWN)
		return 0;

	buf_reset(raw);
	buf_adds(raw, "");
	if (enc == 'B' || enc == 'b')
		good = decode_b(text, (size_t)(p - text), raw);
	else
		good = decode_q(text, (size_t)(p - text), raw);
	/* a NUL cannot travel in a C string: such a word stays encoded */
	if (!good || memchr(raw->s, '\0', raw->len) != NULL)
		return 0;
	buf_reset(utf8);
	if (cs == CS_LATIN1)
		add_latin1(utf8, raw->s, raw->len);
	else
		buf_add(utf8, raw->s, raw->len);
	return (size_t)(p + 2 - s);
}

static bool
only_space(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
			return false;
	return true;
}

char *
mime_decode_words(const char *text)
{
	struct buf out = {0}, raw = {0}, word = {0};
	size_t i = 0, n, gap_in = 0, gap_out = 0;
	bool after_word = false;

	buf_adds(&out, "");
	while (text[i] != '\0') {
		if (text[i] == '=' && text[i + 1] == '?' &&
		    (n = decode_word(text + i, &raw, &word)) > 0) {
			/* RFC 2047 6.2: space between two encoded words is not text */
			if (after_word && only_space(text + gap_in, i - gap_in)) {
				out.len = gap_out;
				out.s[out.len] = '\0';
			}
			buf_add(&out, word.s, word.len);
			i += n;
			gap_in = i;
			gap_out = out.len;
			after_word = true;
			continue;
		}
		buf_addc(&out, text[i]);
		i++;
	}
	buf_free(&raw);
	buf_free(&word);
	return buf_steal(&out);
}

/* RFC 2047 encoding */

/* The length of the UTF-8 character at s; 1 for a byte that starts none. */
static size_t
utf8_length(const char *s)
{
	unsigned char c = (unsigned char)s[0];
	size_t n, i;

	if (c < 0xc0)
		return 1;
	else if (c < 0xe0)
		n = 2;
	else if (c < 0xf0)
		n = 3;
	else if (c < 0xf8)
		n = 4;
	else
		return 1;
	for (i = 1; i < n; i++)
		if (((unsigned char)s[i] & 0xc0) != 0x80)
			return 1;
	return n;
}

/* What a Q encoded word may hold as it is: in a phrase only letters,
 * digits and !*+-/ (RFC 2047 5(3)); in text any printable but =?_ */
static bool
q_literal(unsigned char c, bool phrase)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	if (phrase)
		return c != '\0' && strchr("!*+-/", c) != NULL;
	return c > ' ' && c < 0x7f && c != '=' && c != '?' && c != '_';
}

static size_t
q_cost(const char *s, size_t n, bool phrase)
{
	size_t i, cost = 0;

	for (i = 0; i < n; i++)
		cost += s[i] == ' ' || q_literal((unsigned char)s[i], phrase) ? 1 : 3;
	return cost;
}

static size_t
b_cost(size_t n)
{
	return (n + 2) / 3 * 4;
}

static void
add_q(struct buf *out, const char *s, size_t n, bool phrase)
{
	unsigned char c;
	size_t i;

	for (i = 0; i < n; i++) {
		c = (unsigned char)s[i];
		if (c == ' ')
			buf_addc(out, '_');
		else if (q_literal(c, phrase))
			buf_addc(out, (char)c);
		else {
			buf_addc(out, '=');
			buf_addc(out, hexdigits[c >> 4]);
			buf_addc(out, hexdigits[c & 15]);
		}
	}
}

static void
add_b(struct buf *out, const char *s, size_t n)
{
	static const char alphabet[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *u = (const unsigned char *)s;
	unsigned long v;
	size_t i;

	for (i = 0; i + 2 < n; i += 3) {
		v = (unsigned long)u[i] << 16 | (unsigned long)u[i + 1] << 8 | u[i + 2];
		buf_addc(out, alphabet[v >> 18 & 63]);
		buf_addc(out, alphabet[v >> 12 & 63]);
		buf_addc(out, alphabet[v >> 6 & 63]);
		buf_addc(out, alphabet[v & 63]);
	}
	if (n - i == 1) {
		v = (unsigned long)u[i] << 16;
		buf_addc(out, alphabet[v >> 18 & 63]);
		buf_addc(out, alphabet[v >> 12 & 63]);
		buf_adds(out, "==");
	} else if (n - i == 2) {
		v = (unsigned long)u[i] << 16 | (unsigned long)u[i + 1] << 8;
		buf_addc(out, alphabet[v >> 18 & 63]);
		buf_addc(out, alphabet[v >> 12 & 63]);
		buf_addc(out, alphabet[v >> 6 & 63]);
		buf_addc(out, '=');
	}
}

static bool
needs_encoding(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s >= 0x80 || (*s != '\t' && ((unsigned char)*s < 0x20 || *s == 0x7f)))
			return true;
	return false;
}

/* The whole of s as UTF-8 encoded words, one a line: each line below 78
 * columns, each word at most 75 characters, no character split. */
static char *
encode_words(const char *s, size_t column, bool phrase)
{
	struct buf out = {0};
	size_t n = strlen(s), pos = 0, col = column, room, take, len, cl;
	/* Q reads better; B only when Q would be much longer */
	bool q = q_cost(s, n, phrase) <= b_cost(n) + b_cost(n) / 4;

	while (pos < n) {
		room = col < HEADER_COLS ? HEADER_COLS - col : 0;
		if (room > WORD_MAX)
			room = WORD_MAX;
		cl = utf8_length(s + pos);
		len = q ? q_cost(s + pos, cl, phrase) : b_cost(cl);
		if (room < WORD_OVERHEAD + len && col > 1) {
			/* not even one character fits on this line */
			buf_adds(&out, "\r\n ");
			col = 1;
			continue;
		}
		take = cl;
		while (pos + take < n) {
			cl = utf8_length(s + pos + take);
			len = q ? q_cost(s + pos, take + cl, phrase) : b_cost(take + cl);
			if (WORD_OVERHEAD + len > room)
				break;
			take += cl;
		}
		len = out.len;
		buf_adds(&out, q ? "=?UTF-8?Q?" : "=?UTF-8?B?");
		if (q)
			add_q(&out, s + pos, take, phrase);
		else
			add_b(&out, s + pos, take);
		buf_adds(&out, "?=");
		col += out.len - len;
		pos += take;
		if (pos < n) {
			buf_adds(&out, "\r\n ");
			col = 1;
		}
	}
	return buf_steal(&out);
}

char *
mime_encode_text(const char *utf8, size_t column)
{
	if (!needs_encoding(utf8))
		return xstrdup(utf8);
	return encode_words(utf8, column, false);
}

char *
mime_encode_phrase(const char *utf8, size_t column)
{
	if (!needs_encoding(utf8))
		return xstrdup(utf8);
	return encode_words(utf8, column, true);
}

/* Quoted-printable (RFC 2045 6.7), as a stream */

struct qp {
	FILE *out;
	size_t col;
	int space;	/* a space or tab held back: encoded when the line ends after it */
	bool cr;	/* a CR held back: a line break when LF follows */
};

static void
qp_put(struct qp *q, const char *s, size_t n)
{
	if (q->col + n > QP_TEXT_MAX) {
		fputs("=\r\n", q->out);
		q->col = 0;
	}
	fwrite(s, 1, n, q->out);
	q->col += n;
}

static void
qp_put_byte(struct qp *q, unsigned char c, bool literal)
{
	char e[3];

	if (literal) {
		e[0] = (char)c;
		qp_put(q, e, 1);
		return;
	}
	e[0] = '=';
	e[1] = hexdigits[c >> 4];
	e[2] = hexdigits[c & 15];
	qp_put(q, e, 3);
}

static void
qp_flush_space(struct qp *q, bool line_ends)
{
	if (q->space < 0)
		return;
	qp_put_byte(q, (unsigned char)q->space, !line_ends);
	q->space = -1;
}

static void
qp_init(struct qp *q, FILE *out)
{
	q->out = out;
	q->col = 0;
	q->space = -1;
	q->cr = false;
}

static void
qp_byte(struct qp *q, unsigned char c)
{
	if (q->cr) {
		q->cr = false;
		if (c == '\n') {
			qp_flush_space(q, true);
			fputs("\r\n", q->out);
			q->col = 0;
			return;
		}
		qp_flush_space(q, false);
		qp_put_byte(q, '\r', false);
	}
	if (c == '\r') {
		q->cr = true;
		return;
	}
	if (c == ' ' || c == '\t') {
		qp_flush_space(q, false);
		q->space = c;
		return;
	}
	qp_flush_space(q, false);
	qp_put_byte(q, c, c > ' ' && c < 0x7f && c != '=');
}

static void
qp_finish(struct qp *q)
{
	if (q->cr) {
		q->cr = false;
		qp_flush_space(q, false);
		qp_put_byte(q, '\r', false);
	}
	qp_flush_space(q, true);
}

static int
finish_output(FILE *out, struct status *st)
{
	if (fflush(out) == EOF || ferror(out))
		return status_set(st, EX_IOERR, "cannot write the message: %s",
		    errno != 0 ? strerror(errno) : "write error");
	return EX_OK;
}

int
mime_qp_encode(FILE *in, FILE *out, struct status *st)
{
	char chunk[8192];
	struct qp q;
	size_t n, i;

	qp_init(&q, out);
	errno = 0;
	while ((n = fread(chunk, 1, sizeof(chunk), in)) > 0)
		for (i = 0; i < n; i++)
			qp_byte(&q, (unsigned char)chunk[i]);
	if (ferror(in))
		return status_set(st, EX_IOERR, "cannot read the message body: %s",
		    errno != 0 ? strerror(errno) : "read error");
	qp_finish(&q);
	return finish_output(out, st);
}

/* The downgrade: a MIME walk over pieces of lines */

struct reader {
	FILE *in;
	char piece[PIECE_MAX];
	size_t len;
	bool line_start;	/* the piece begins a line */
	bool line_end;		/* the piece ends its line (with LF) */
	bool have;		/* the piece is read but not taken */
	bool next_starts;
};

/* The next piece: a line with its LF, or PIECE_MAX octets of a longer
 * one. False at the end of the input. */
static bool
reader_peek(struct reader *r)
{
	int c = 0;

	if (r->have)
		return true;
	r->len = 0;
	r->line_start = r->next_starts;
	r->line_end = false;
	while (r->len < PIECE_MAX && (c = getc(r->in)) != EOF) {
		r->piece[r->len++] = (char)c;
		if (c == '\n') {
			r->line_end = true;
			break;
		}
	}
	r->next_starts = r->line_end;
	r->have = r->len > 0;
	return r->have;
}

static void
reader_take(struct reader *r)
{
	r->have = false;
}

static bool
reader_seek(struct reader *r, off_t at)
{
	r->have = false;
	r->next_starts = true;
	return fseeko(r->in, at, SEEK_SET) == 0;
}

/* The boundaries of the multiparts around the current point, innermost first. */
struct bounds {
	const char *b;
	size_t len;
	const struct bounds *up;
};

enum delim { DELIM_NONE, DELIM_PART, DELIM_CLOSE };

static enum delim
delimiter_of(const char *p, size_t n, const struct bounds *b)
{
	enum delim kind = DELIM_PART;
	size_t i;

	if (n < 2 + b->len || p[0] != '-' || p[1] != '-' || memcmp(p + 2, b->b, b->len) != 0)
		return DELIM_NONE;
	i = 2 + b->len;
	if (i + 2 <= n && p[i] == '-' && p[i + 1] == '-') {
		kind = DELIM_CLOSE;
		i += 2;
	}
	while (i < n && (p[i] == ' ' || p[i] == '\t'))
		i++;
	if (i < n && p[i] == '\r')
		i++;
	if (i < n && p[i] == '\n')
		i++;
	return i == n ? kind : DELIM_NONE;
}

/* Which enclosing boundary the current piece delimits, if any. */
static const struct bounds *
delimiter_at(const struct reader *r, const struct bounds *b, enum delim *kind)
{
	if (!r->line_start)
		return NULL;
	for (; b != NULL; b = b->up)
		if ((*kind = delimiter_of(r->piece, r->len, b)) != DELIM_NONE)
			return b;
	return NULL;
}

struct downgrade {
	struct reader r;
	FILE *out;
};

struct header {
	struct buf *fields;	/* each field whole: folding and CRLFs kept */
	size_t n, cap;
	bool blank;		/* the empty line after it was there */
};

static void
header_add(struct header *h, struct buf *field)
{
	if (h->n == h->cap) {
		h->cap = h->cap == 0 ? 16 : h->cap * 2;
		h->fields = xrealloc(h->fields, h->cap * sizeof(*h->fields));
	}
	h->fields[h->n++] = *field;
	memset(field, 0, sizeof(*field));
}

static void
header_free(struct header *h)
{
	size_t i;

	for (i = 0; i < h->n; i++)
		buf_free(&h->fields[i]);
	free(h->fields);
}

/* Reads header fields through the empty line, or up to a delimiter of an
 * enclosing multipart, which is left unread. */
static void
header_read(struct reader *r, const struct bounds *enc, struct header *h)
{
	struct buf field = {0};
	enum delim kind;

	h->blank = false;
	while (reader_peek(r)) {
		if (r->line_start) {
			if ((r->len == 2 && r->piece[0] == '\r' && r->piece[1] == '\n') ||
			    (r->len == 1 && r->piece[0] == '\n')) {
				reader_take(r);
				h->blank = true;
				break;
			}
			if (delimiter_at(r, enc, &kind) != NULL)
				break;
			if (field.len > 0 && r->piece[0] != ' ' && r->piece[0] != '\t')
				header_add(h, &field);
		}
		buf_add(&field, r->piece, r->len);
		reader_take(r);
	}
	if (field.len > 0)
		header_add(h, &field);
}

static bool
field_is(const char *raw, const char *name)
{
	size_t n = strlen(name);

	if (strncasecmp(raw, name, n) != 0)
		return false;
	raw += n;
	while (*raw == ' ' || *raw == '\t')
		raw++;
	return *raw == ':';
}

/* The unfolded body of the first field called name, or NULL. */
static char *
header_value(const struct header *h, const char *name)
{
	struct buf v = {0};
	const char *p;
	size_t i;

	for (i = 0; i < h->n; i++) {
		if (!field_is(h->fields[i].s, name))
			continue;
		p = strchr(h->fields[i].s, ':') + 1;
		for (; *p != '\0'; p++)
			if (*p != '\r' && *p != '\n')
				buf_addc(&v, *p);
		return buf_steal(&v);
	}
	return NULL;
}

static const char *
skip_cfws(const char *p)
{
	int depth;

	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p != '(')
			return p;
		for (depth = 0; *p != '\0'; p++) {
			if (*p == '\\' && p[1] != '\0')
				p++;
			else if (*p == '(')
				depth++;
			else if (*p == ')' && --depth == 0) {
				p++;
				break;
			}
		}
	}
}

static bool
is_token_char(unsigned char c)
{
	return c > ' ' && c < 0x7f && strchr("()<>@,;:\\\"/[]?=", c) == NULL;
}

/* A Content-Type body: the type lowercased ("multipart/mixed") and the
 * boundary parameter, either of them NULL when absent. */
static void
content_type_parse(const char *v, char **type, char **boundary)
{
	struct buf name = {0}, value = {0};
	const char *p = skip_cfws(v), *start;

	*type = *boundary = NULL;
	for (start = p; is_token_char((unsigned char)*p) || *p == '/'; p++)
		buf_addc(&name, (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p));
	if (p == start)
		return;
	*type = buf_steal(&name);
	for (;;) {
		p = skip_cfws(p);
		if (*p != ';') {
			/* skip whatever is not understood up to the next parameter */
			while (*p != '\0' && *p != ';')
				p++;
			if (*p == '\0')
				break;
		}
		p = skip_cfws(p + 1);
		buf_reset(&name);
		buf_reset(&value);
		while (is_token_char((unsigned char)*p))
			buf_addc(&name, *p++);
		p = skip_cfws(p);
		if (*p != '=')
			continue;
		p = skip_cfws(p + 1);
		if (*p == '"') {
			for (p++; *p != '\0' && *p != '"'; p++) {
				if (*p == '\\' && p[1] != '\0')
					p++;
				buf_addc(&value, *p);
			}
			if (*p == '"')
				p++;
		} else
			while (is_token_char((unsigned char)*p))
				buf_addc(&value, *p++);
		if (name.len > 0 && strcasecmp(name.s, "boundary") == 0 && value.len > 0 &&
		    value.len <= 200 && *boundary == NULL)
			*boundary = xstrdup(value.s);
	}
	buf_free(&name);
	buf_free(&value);
}

enum cte { CTE_NONE, CTE_7BIT, CTE_8BIT, CTE_OTHER };

static enum cte
cte_parse(const char *v)
{
	const char *p;
	size_t n;

	if (v == NULL)
		return CTE_NONE;
	p = skip_cfws(v);
	for (n = 0; is_token_char((unsigned char)p[n]); n++)
		continue;
	if (n == 4 && strncasecmp(p, "7bit", 4) == 0)
		return CTE_7BIT;
	if ((n == 4 && strncasecmp(p, "8bit", 4) == 0) ||
	    (n == 6 && strncasecmp(p, "binary", 6) == 0))
		return CTE_8BIT;
	return CTE_OTHER;
}

/* Writes the header; cte, when not NULL, replaces the Content-Transfer-
 * Encoding (added when missing), and the other fields are added at the end. */
static void
header_write(FILE *out, const struct header *h, const char *cte, bool add_version, bool add_type)
{
	bool written = false;
	size_t i;

	for (i = 0; i < h->n; i++) {
		if (cte != NULL && field_is(h->fields[i].s, "Content-Transfer-Encoding")) {
			if (!written)
				fprintf(out, "Content-Transfer-Encoding: %s\r\n", cte);
			written = true;
			continue;
		}
		fwrite(h->fields[i].s, 1, h->fields[i].len, out);
	}
	if (add_version)
		fputs("MIME-Version: 1.0\r\n", out);
	if (add_type)
		fputs("Content-Type: text/plain; charset=UTF-8\r\n", out);
	if (cte != NULL && !written)
		fprintf(out, "Content-Transfer-Encoding: %s\r\n", cte);
	if (h->blank)
		fputs("\r\n", out);
}

/* Whether the body up to the next enclosing delimiter has 8-bit octets,
 * NULs or lines over 998 octets. */
static bool
body_needs_encoding(struct reader *r, const struct bounds *enc)
{
	size_t line = 0, i;
	enum delim kind;
	char c, prev = '\0';

	while (reader_peek(r)) {
		if (delimiter_at(r, enc, &kind) != NULL)
			return false;
		for (i = 0; i < r->len; i++) {
			c = r->piece[i];
			if ((unsigned char)c >= 0x80 || c == '\0')
				return true;
			if (c == '\n') {
				if (line - (prev == '\r') > BODY_LINE_MAX)
					return true;
				line = 0;
			} else if (++line > BODY_LINE_MAX + 1)
				return true;
			prev = c;
		}
		reader_take(r);
	}
	return line > BODY_LINE_MAX;
}

/* Copies (or encodes) the body up to the next enclosing delimiter. */
static void
body_copy(struct downgrade *d, const struct bounds *enc, bool encode)
{
	struct reader *r = &d->r;
	enum delim kind;
	struct qp q;
	size_t i;

	qp_init(&q, d->out);
	while (reader_peek(r) && delimiter_at(r, enc, &kind) == NULL) {
		if (encode)
			for (i = 0; i < r->len; i++)
				qp_byte(&q, (unsigned char)r->piece[i]);
		else
			fwrite(r->piece, 1, r->len, d->out);
		reader_take(r);
	}
	if (encode)
		qp_finish(&q);
}

static int entity_downgrade(struct downgrade *, const struct bounds *, int, struct status *);

static int
multipart_downgrade(struct downgrade *d, const char *boundary, const struct bounds *enc,
    int depth, struct status *st)
{
	struct bounds self = { boundary, strlen(boundary), enc };
	const struct bounds *which;
	enum delim kind;
	int rc;

	body_copy(d, &self, false);	/* the preamble */
	while (reader_peek(&d->r)) {
		if ((which = delimiter_at(&d->r, &self, &kind)) == NULL) {
			/* not reached: every entity ends at a delimiter */
			fwrite(d->r.piece, 1, d->r.len, d->out);
			reader_take(&d->r);
			continue;
		}
		if (which != &self)
			return EX_OK;	/* an enclosing part ends this one unclosed */
		fwrite(d->r.piece, 1, d->r.len, d->out);
		reader_take(&d->r);
		if (kind == DELIM_CLOSE) {
			body_copy(d, enc, false);	/* the epilogue */
			return EX_OK;
		}
		if ((rc = entity_downgrade(d, &self, depth + 1, st)) != EX_OK)
			return rc;
	}
	return EX_OK;
}

/* One entity: the message itself (depth 0), a part, or an encapsulated message. */
static int
entity_downgrade(struct downgrade *d, const struct bounds *enc, int depth, struct status *st)
{
	struct header h = { NULL, 0, 0, false };
	char *ctv, *ctev, *version, *type = NULL, *boundary = NULL;
	bool has_version = false, multipart, message, encode = false;
	const char *relabel;
	enum cte cte;
	off_t start;
	int rc = EX_OK;

	header_read(&d->r, enc, &h);
	ctv = header_value(&h, "Content-Type");
	ctev = header_value(&h, "Content-Transfer-Encoding");
	if (depth == 0 && (version = header_value(&h, "MIME-Version")) != NULL) {
		has_version = true;
		free(version);
	}
	if (ctv != NULL)
		content_type_parse(ctv, &type, &boundary);
	cte = cte_parse(ctev);
	multipart = type != NULL && strncmp(type, "multipart/", 10) == 0;
	message = type != NULL && strncmp(type, "message/", 8) == 0;
	/* what a composite holds is 7-bit once its parts are encoded */
	relabel = cte == CTE_8BIT ? "7bit" : NULL;

	if (cte == CTE_OTHER || depth >= NEST_MAX || !h.blank || (multipart && boundary == NULL) ||
	    (message && strcmp(type, "message/rfc822") != 0)) {
		/* encoded already, too deep, no body, or a structure not understood */
		header_write(d->out, &h, NULL, false, false);
		body_copy(d, enc, false);
	} else if (multipart) {
		header_write(d->out, &h, relabel, false, false);
		rc = multipart_downgrade(d, boundary, enc, depth, st);
	} else if (message) {
		header_write(d->out, &h, relabel, false, false);
		rc = entity_downgrade(d, enc, depth + 1, st);
	} else {
		if ((start = ftello(d->r.in)) < 0)
			rc = status_set(st, EX_IOERR, "cannot read the message: %s", strerror(errno));
		else {
			encode = body_needs_encoding(&d->r, enc);
			if (!reader_seek(&d->r, start))
				rc = status_set(st, EX_IOERR, "cannot read the message: %s",
				    strerror(errno));
		}
		if (rc == EX_OK) {
			header_write(d->out, &h, encode ? "quoted-printable" : NULL,
			    encode && depth == 0 && !has_version, encode && ctv == NULL);
			body_copy(d, enc, encode);
		}
	}
	header_free(&h);
	free(ctv);
	free(ctev);
	free(type);
	free(boundary);
	return rc;
}

int
mime_downgrade(FILE *in, FILE *out, struct status *st)
{
	struct downgrade *d;
	FILE *spool = NULL;
	char chunk[8192];
	size_t n;
	int rc;

	/* the walk reads each leaf twice, so it needs a file it can seek in */
	if (ftello(in) < 0 || fseeko(in, 0, SEEK_CUR) != 0) {
		if ((spool = tmpfile()) == NULL)
			return status_set(st, EX_TEMPFAIL, "cannot create a temporary file: %s",
			    strerror(errno));
		while ((n = fread(chunk, 1, sizeof(chunk), in)) > 0)
			if (fwrite(chunk, 1, n, spool) != n)
				break;
		if (ferror(in) || ferror(spool) || fflush(spool) == EOF) {
			fclose(spool);
			return status_set(st, EX_IOERR, "cannot spool the message: %s",
			    strerror(errno));
		}
		rewind(spool);
		in = spool;
	}
	d = xcalloc(1, sizeof(*d));
	d->r.in = in;
	d->r.next_starts = true;
	d->out = out;
	errno = 0;
	rc = entity_downgrade(d, NULL, 0, st);
	if (rc == EX_OK)
		body_copy(d, NULL, false);	/* nothing is left behind, whatever the structure */
	if (rc == EX_OK && ferror(in))
		rc = status_set(st, EX_IOERR, "cannot read the message: %s",
		    errno != 0 ? strerror(errno) : "read error");
	if (rc == EX_OK)
		rc = finish_output(out, st);
	free(d);
	if (spool != NULL)
		fclose(spool);
	return rc;
}

/* An RFC 2047 encoded word as a phrase may hold it (RFC 2047 5(3)):
 * =?charset?B|Q?text?=, the charset a token, the text of letters, digits
 * and !*+-/=_ only. */
bool
mime_is_encoded_word(const char *w, size_t n)
{
	const char *p = w + 2, *end = w + n - 2;

	if (n < 8 || w[0] != '=' || w[1] != '?' || end[0] != '?' || end[1] != '=')
		return false;
	for (; p < end && *p != '?'; p++)
		if (!isalnum((unsigned char)*p) && strchr("-_!#$%&'*+^`{|}~", *p) == NULL)
			return false;
	if (p == w + 2 || p + 2 >= end || strchr("BbQq", p[1]) == NULL || p[2] != '?')
		return false;
	for (p += 3; p < end; p++)
		if (!isalnum((unsigned char)*p) && strchr("!*+-/=_", *p) == NULL)
			return false;
	return true;
}
