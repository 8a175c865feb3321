/* rfc5322.c: address lists (RFC 5322 3.4 with the obsolete forms of 4.4) */

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mime.h"
#include "rfc5322.h"
#include "util.h"

#define FOLD_COLS	77	/* a folded line stays below 78 columns */
#define FOLD_RESERVE	2	/* room kept for the ";," that may follow a piece */
#define ENCODED_MIN	24	/* room an encoded name wants on a line before it starts */
#define SNIPPET_MAX	80	/* how much of a bad address an error message quotes */

/* Lexical tokens of a field body (RFC 5322 3.2) */

enum token_type { T_ATOM, T_QSTRING, T_COMMENT, T_DLITERAL, T_SPECIAL };

struct token {
	enum token_type type;
	char c;			/* T_SPECIAL: which one */
	char *text;		/* the others: the content, quoted-pairs undone */
	bool space;		/* whitespace came before it */
	size_t start, end;	/* where it lies in the field body */
};

struct tokens {
	struct token *v;
	size_t n, cap;
};

static bool
is_special(unsigned char c)
{
	return c != '\0' && strchr("()<>[]:;@\\,.\"", c) != NULL;
}

static bool
is_atext(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	    c >= 0x80 || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

static void
tokens_add(struct tokens *tl, enum token_type type, char c, char *text, bool space,
    size_t start, size_t end)
{
	struct token *t;

	if (tl->n == tl->cap) {
		tl->cap = tl->cap == 0 ? 16 : tl->cap * 2;
		tl->v = xrealloc(tl->v, tl->cap * sizeof(*tl->v));
	}
	t = &tl->v[tl->n++];
	t->type = type;
	t->c = c;
	t->text = text;
	t->space = space;
	t->start = start;
	t->end = end;
}

static void
tokens_free(struct tokens *tl)
{
	size_t i;

	for (i = 0; i < tl->n; i++)
		free(tl->v[i].text);
	free(tl->v);
	tl->v = NULL;
	tl->n = tl->cap = 0;
}

/* Each lexer below starts at its opening character and returns the index
 * after its closing one, or 0 when the input ends first. */

static size_t
lex_quoted(const char *s, size_t i, struct buf *b)
{
	for (i++; s[i] != '"'; i++) {
		if (s[i] == '\0')
			return 0;
		if (s[i] == '\\') {
			if (s[++i] == '\0')
				return 0;
		}
		buf_addc(b, s[i]);
	}
	return i + 1;
}

static size_t
lex_comment(const char *s, size_t i, struct buf *b)
{
	int depth = 1;

	for (i++;; i++) {
		if (s[i] == '\0')
			return 0;
		if (s[i] == '\\') {
			if (s[++i] == '\0')
				return 0;
		} else if (s[i] == '(')
			depth++;
		else if (s[i] == ')' && --depth == 0)
			return i + 1;
		buf_addc(b, s[i]);
	}
}

static size_t
lex_literal(const char *s, size_t i, struct buf *b)
{
	buf_addc(b, '[');
	for (i++; s[i] != ']'; i++) {
		if (s[i] == '\0' || s[i] == '[')
			return 0;
		if (s[i] == '\\') {
			if (s[++i] == '\0')
				return 0;
		}
		buf_addc(b, s[i]);
	}
	buf_addc(b, ']');
	return i + 1;
}

static int
lex(const char *s, struct tokens *tl, struct status *st)
{
	struct buf b = {0};
	enum token_type type;
	size_t i = 0, start, end;
	bool space = false;
	const char *what = NULL;

	while (s[i] != '\0') {
		start = i;
		buf_reset(&b);
		buf_adds(&b, "");
		switch (s[i]) {
		case ' ':
		case '\t':
			space = true;
			i++;
			continue;
		case '"':
			type = T_QSTRING;
			end = lex_quoted(s, i, &b);
			what = "a quoted string";
			break;
		case '(':
			type = T_COMMENT;
			end = lex_comment(s, i, &b);
			what = "a comment";
			break;
		case '[':
			type = T_DLITERAL;
			end = lex_literal(s, i, &b);
			what = "a domain literal";
			break;
		case ')':
			buf_free(&b);
			return status_set(st, EX_DATAERR,
			    "address list has a ')' that closes no comment");
		default:
			if (is_special((unsigned char)s[i]) && s[i] != '\\') {
				tokens_add(tl, T_SPECIAL, s[i], NULL, space, i, i + 1);
				space = false;
				i++;
				continue;
			}
			/* an atom; a backslash outside quotes is taken as a letter */
			type = T_ATOM;
			while (s[i] != '\0' && s[i] != ' ' && s[i] != '\t' &&
			    (s[i] == '\\' || !is_special((unsigned char)s[i])))
				buf_addc(&b, s[i++]);
			end = i;
			break;
		}
		if (end == 0) {
			buf_free(&b);
			return status_set(st, EX_DATAERR, "address list has %s that is not closed",
			    what);
		}
		tokens_add(tl, type, '\0', buf_steal(&b), space, start, end);
		space = false;
		i = end;
	}
	buf_free(&b);
	return EX_OK;
}

/* The parser: an element is everything up to the next ',' or ';' */

struct parser {
	const char *src;
	struct tokens t;
	size_t i;		/* the next token */
	bool in_group;
	struct address_list *out;
	struct status *st;
};

static bool
is_sp(const struct token *t, char c)
{
	return t->type == T_SPECIAL && t->c == c;
}

static void
list_add(struct address_list *l, enum address_kind kind, char *name, char *local, char *domain)
{
	struct address *a;

	if (l->n == l->cap) {
		l->cap = l->cap == 0 ? 8 : l->cap * 2;
		l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
	}
	a = &l->v[l->n++];
	a->kind = kind;
	a->name = name;
	a->local = local;
	a->domain = domain;
}

static int
bad_address(struct parser *p, size_t a, size_t b, const char *why)
{
	size_t start, end;

	if (a >= b || b > p->t.n)
		return status_set(p->st, EX_DATAERR, "bad address list: %s", why);
	start = p->t.v[a].start;
	end = p->t.v[b - 1].end;
	if (end - start > SNIPPET_MAX)
		end = start + SNIPPET_MAX;
	return status_set(p->st, EX_DATAERR, "bad address \"%.*s\": %s", (int)(end - start),
	    p->src + start, why);
}

static void
add_comment(struct buf *comments, const char *text)
{
	if (comments->len > 0 && *text != '\0')
		buf_addc(comments, ' ');
	buf_adds(comments, text);
}

/* The words of tokens a..b as a display name; comments go to comments. */
static void
phrase_add(struct parser *p, size_t a, size_t b, struct buf *phrase, struct buf *comments)
{
	const struct token *t;
	bool gap = phrase->len > 0;

	for (; a < b; a++) {
		t = &p->t.v[a];
		if (t->type == T_COMMENT) {
			add_comment(comments, t->text);
			gap = true;
			continue;
		}
		if (phrase->len > 0 && (gap || t->space))
			buf_addc(phrase, ' ');
		gap = false;
		if (t->type == T_SPECIAL)
			buf_addc(phrase, t->c);
		else
			buf_adds(phrase, t->text);
	}
}

/* The name an address gets: the phrase, or else its comments, decoded;
 * NULL when that is empty. */
static char *
name_make(const struct buf *phrase, const struct buf *comments)
{
	const char *src = phrase->len > 0 ? phrase->s : comments->len > 0 ? comments->s : NULL;
	char *name, *p, *q;

	if (src == NULL)
		return NULL;
	name = mime_decode_words(src);
	/* decoding may have made control characters; a name needs none */
	for (p = name; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	for (p = name; *p == ' '; p++)
		continue;
	for (q = p + strlen(p); q > p && q[-1] == ' '; q--)
		continue;
	if (q == p) {
		free(name);
		return NULL;
	}
	memmove(name, p, (size_t)(q - p));
	name[q - p] = '\0';
	return name;
}

static bool
has_words(const struct parser *p, size_t a, size_t b)
{
	for (; a < b; a++)
		if (p->t.v[a].type != T_COMMENT)
			return true;
	return false;
}

/* Tokens a..b as local-part ["@" domain]; comments go to comments. */
static int
spec_parse(struct parser *p, size_t a, size_t b, char **local, char **domain,
    struct buf *comments)
{
	struct buf lp = {0}, dom = {0};
	const struct token *t;
	bool at = false, word = false, local_word = false;
	const char *why = NULL;
	size_t j;
	char what[32];

	for (j = a; j < b && why == NULL; j++) {
		t = &p->t.v[j];
		if (t->type == T_COMMENT)
			add_comment(comments, t->text);
		else if (is_sp(t, '.')) {
			buf_addc(at ? &dom : &lp, '.');
			word = false;
		} else if (is_sp(t, '@')) {
			if (at)
				why = "has more than one '@'";
			at = true;
			word = false;
		} else if (!at && (t->type == T_ATOM || t->type == T_QSTRING)) {
			if (word)
				why = "is several words, but no <address>";
			buf_adds(&lp, t->text);
			word = local_word = true;
		} else if (at && (t->type == T_ATOM || t->type == T_DLITERAL)) {
			if (word)
				why = "has a space inside its domain";
			buf_adds(&dom, t->text);
			word = true;
		} else if (t->type == T_SPECIAL) {
			snprintf(what, sizeof(what), "has an unexpected '%c'", t->c);
			why = what;
		} else
			why = t->type == T_DLITERAL ? "has a domain literal before '@'" :
			    "has a quoted string in its domain";
	}
	if (why == NULL && !local_word && lp.len == 0)
		why = "has an empty local part";
	if (why == NULL && at && dom.len == 0)
		why = "has an empty domain";
	if (why != NULL) {
		buf_free(&lp);
		buf_free(&dom);
		return bad_address(p, a, b, why);
	}
	*local = buf_steal(&lp);
	*domain = at ? buf_steal(&dom) : NULL;
	return EX_OK;
}

static bool
is_element_end(const struct token *t)
{
	return is_sp(t, ',') || is_sp(t, ';');
}

/* name <route-addr>: tokens first..k are the phrase, k is the '<' */
static int
angle_parse(struct parser *p, size_t first, size_t k)
{
	struct buf phrase = {0}, comments = {0};
	size_t j = k + 1, spec, end, n = p->t.n;
	char *local = NULL, *domain = NULL;
	int rc = EX_OK;

	phrase_add(p, first, k, &phrase, &comments);
	/* an obsolete route, "@a,@b:", is dropped */
	while (j < n && p->t.v[j].type == T_COMMENT)
		add_comment(&comments, p->t.v[j++].text);
	if (j < n && is_sp(&p->t.v[j], '@')) {
		while (j < n && !is_sp(&p->t.v[j], ':') && !is_sp(&p->t.v[j], '>'))
			j++;
		if (j == n || !is_sp(&p->t.v[j], ':'))
			rc = bad_address(p, first, j, "has a route without ':'");
		j++;
	}
	for (spec = j; j < n && rc == EX_OK; j++)
		if (is_sp(&p->t.v[j], '>') || is_sp(&p->t.v[j], '<') || is_element_end(&p->t.v[j]))
			break;
	end = j;
	if (rc == EX_OK && j < n && is_sp(&p->t.v[j], '<'))
		rc = bad_address(p, first, j + 1, "has a '<' inside <...>");
	if (rc == EX_OK && j < n && is_sp(&p->t.v[j], '>'))
		j++;	/* else the '>' is missing: taken as if it were there */
	/* after the '>': comments name it, stray words join the phrase */
	for (k = j; rc == EX_OK && j < n && !is_element_end(&p->t.v[j]); j++)
		if (is_sp(&p->t.v[j], '<'))
			rc = bad_address(p, first, j + 1, "has two <addresses>");
	if (rc == EX_OK) {
		phrase_add(p, k, j, &phrase, &comments);
		p->i = j;
		/* "<>" alone says nothing and is skipped */
		if (has_words(p, spec, end) &&
		    (rc = spec_parse(p, spec, end, &local, &domain, &comments)) == EX_OK)
			list_add(p->out, ADDR_MAILBOX, name_make(&phrase, &comments), local, domain);
	}
	buf_free(&phrase);
	buf_free(&comments);
	return rc;
}

static int
element_parse(struct parser *p)
{
	struct buf phrase = {0}, comments = {0};
	size_t first = p->i, k, n = p->t.n;
	char *local, *domain;
	bool at = false;
	int rc;

	for (k = first; k < n; k++) {
		if (is_element_end(&p->t.v[k]) || is_sp(&p->t.v[k], '<') || is_sp(&p->t.v[k], ':'))
			break;
		at = at || is_sp(&p->t.v[k], '@');
	}
	if (k < n && is_sp(&p->t.v[k], '<'))
		return angle_parse(p, first, k);
	if (k < n && is_sp(&p->t.v[k], ':')) {
		if (at)
			return bad_address(p, first, k + 1, "has an unexpected ':'");
		/* a group; a group inside one closes the first, as no ';' came */
		phrase_add(p, first, k, &phrase, &comments);
		if (p->in_group)
			list_add(p->out, ADDR_GROUP_END, NULL, NULL, NULL);
		list_add(p->out, ADDR_GROUP_START, name_make(&phrase, &comments), NULL, NULL);
		p->in_group = true;
		p->i = k + 1;
		buf_free(&phrase);
		buf_free(&comments);
		return EX_OK;
	}
	p->i = k;
	if (!has_words(p, first, k))
		return EX_OK;	/* nothing but comments */
	if ((rc = spec_parse(p, first, k, &local, &domain, &comments)) == EX_OK)
		list_add(p->out, ADDR_MAILBOX, name_make(&phrase, &comments), local, domain);
	buf_free(&comments);
	return rc;
}

static void
list_truncate(struct address_list *l, size_t n)
{
	while (l->n > n) {
		l->n--;
		free(l->v[l->n].name);
		free(l->v[l->n].local);
		free(l->v[l->n].domain);
	}
}

int
rfc5322_parse_addresses(const char *value, struct address_list *out, struct status *st)
{
	struct parser p = { value, {0}, 0, false, out, st };
	const unsigned char *c;
	size_t n0 = out->n;
	int rc;

	if (value == NULL)
		return EX_OK;
	for (c = (const unsigned char *)value; *c != '\0'; c++)
		if ((*c < 0x20 && *c != '\t') || *c == 0x7f)
			return status_set(st, EX_DATAERR,
			    "address list holds a control character (0x%02x)", *c);
	if ((rc = lex(value, &p.t, st)) != EX_OK) {
		tokens_free(&p.t);
		return rc;
	}
	while (p.i < p.t.n && rc == EX_OK) {
		if (is_sp(&p.t.v[p.i], ';') && p.in_group) {
			list_add(out, ADDR_GROUP_END, NULL, NULL, NULL);
			p.in_group = false;
		}
		if (is_element_end(&p.t.v[p.i]) || is_sp(&p.t.v[p.i], '>'))
			p.i++;	/* stray commas and semicolons, or a '>' with no '<' */
		else
			rc = element_parse(&p);
	}
	if (rc == EX_OK && p.in_group)
		list_add(out, ADDR_GROUP_END, NULL, NULL, NULL);	/* the ';' is missing */
	if (rc != EX_OK)
		list_truncate(out, n0);
	tokens_free(&p.t);
	return rc;
}

/* Formatting */

static bool
is_dot_atom(const char *s)
{
	if (*s == '\0' || *s == '.')
		return false;
	for (; *s != '\0'; s++) {
		if (*s == '.') {
			if (s[1] == '.' || s[1] == '\0')
				return false;
		} else if (!is_atext((unsigned char)*s))
			return false;
	}
	return true;
}


char *
address_spec(const char *local, const char *domain)
{
	struct buf b = {0};

	if (local == NULL)
		local = "";
	if (is_dot_atom(local))
		buf_adds(&b, local);
	else
		buf_add_quoted(&b, local);
	if (domain != NULL) {
		buf_addc(&b, '@');
		buf_adds(&b, domain);
	}
	return buf_steal(&b);
}

/* Words of atext separated by single spaces need no quotes; a name that
 * looks like an encoded word gets them, so it is not decoded. */
/* A phrase word that needs no quotes: atext only, or an encoded word that
 * stayed encoded (a charset that is not decoded): quoted, it would be shown
 * as its raw text (RFC 2047 5). Other text holding "=?" is quoted, so it is
 * not taken for an encoded word. */
static bool
is_plain_word(const char *w, size_t n)
{
	size_t i;

	if (mime_is_encoded_word(w, n))
		return true;
	for (i = 0; i < n; i++)
		if (!is_atext((unsigned char)w[i]) || (w[i] == '=' && i + 1 < n && w[i + 1] == '?'))
			return false;
	return true;
}

static bool
is_plain_phrase(const char *s)
{
	const char *p, *end;

	if (*s == '\0' || *s == ' ')
		return false;
	for (p = s; *p != '\0'; p = *end == ' ' ? end + 1 : end) {
		end = p + strcspn(p, " ");
		if (end == p || (*end == ' ' && end[1] == '\0'))
			return false;	/* doubled or trailing blanks */
		if (!is_plain_word(p, (size_t)(end - p)))
			return false;
	}
	return true;
}

struct folder {
	struct buf b;
	size_t col;
	bool used;		/* something is written */
};

/* Appends a piece that is not broken, after a space, or after a fold when
 * the line would grow too long. */
static void
fold_add(struct folder *f, const char *s)
{
	size_t n = strlen(s);

	if (f->used) {
		if (f->col + 1 + n + FOLD_RESERVE > FOLD_COLS) {
			buf_adds(&f->b, "\r\n ");
			f->col = 1;
		} else {
			buf_addc(&f->b, ' ');
			f->col++;
		}
	}
	buf_adds(&f->b, s);
	f->col += n;
	f->used = true;
}

static void
fold_punct(struct folder *f, char c)
{
	buf_addc(&f->b, c);
	f->col++;
}

/* A piece of a phrase that holds no encoded word: as it is when it can
 * be, as encoded words when it is not ASCII, else quoted. */
static void
fold_phrase_piece(struct folder *f, const char *clean)
{
	struct buf q = {0};
	char *enc, *p;

	if (!str_is_ascii(clean)) {
		if (f->used) {
			if (f->col + 1 + ENCODED_MIN > FOLD_COLS) {
				buf_adds(&f->b, "\r\n ");
				f->col = 1;
			} else {
				buf_addc(&f->b, ' ');
				f->col++;
			}
		}
		enc = mime_encode_phrase(clean, f->col);
		buf_adds(&f->b, enc);
		if ((p = strrchr(enc, '\n')) != NULL)
			f->col = strlen(p + 1);
		else
			f->col += strlen(enc);
		f->used = true;
		free(enc);
	} else if (is_plain_phrase(clean)) {
		fold_add(f, clean);
	} else {
		buf_add_quoted(&q, clean);
		fold_add(f, q.s);
		buf_free(&q);
	}
}

static bool
has_encoded_word(const char *s)
{
	const char *p, *end;

	for (p = strstr(s, "=?"); p != NULL; p = strstr(end, "=?")) {
		end = p + strcspn(p, " ");
		if ((p == s || p[-1] == ' ') && mime_is_encoded_word(p, (size_t)(end - p)))
			return true;
	}
	return false;
}

/* A display name. Encoded words that decoding left (a charset it does not
 * know) are written as they are, outside any quotes (RFC 2047 5(3)); the
 * runs of words between them are pieces of their own, a blank apart, which
 * is how the parser reads them back. */
static void
fold_phrase(struct folder *f, const char *name)
{
	struct buf run = {0};
	char *clean, *p, *end, *w;
	bool word;

	clean = xstrdup(name);
	for (p = clean; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	if (!has_encoded_word(clean)) {
		fold_phrase_piece(f, clean);	/* the usual case, blanks kept as they are */
		free(clean);
		return;
	}
	for (p = clean;; p = end + 1) {
		end = p + strcspn(p, " ");
		word = end > p && mime_is_encoded_word(p, (size_t)(end - p));
		if (word || *end == '\0') {
			if (!word && end > p) {
				if (run.len > 0)
					buf_addc(&run, ' ');
				buf_add(&run, p, (size_t)(end - p));
			}
			if (run.len > 0) {
				fold_phrase_piece(f, run.s);
				buf_reset(&run);
			}
			if (word) {
				w = xstrndup(p, (size_t)(end - p));
				fold_add(f, w);
				free(w);
			}
		} else if (end > p) {
			if (run.len > 0)
				buf_addc(&run, ' ');
			buf_add(&run, p, (size_t)(end - p));
		}
		if (*end == '\0')
			break;
	}
	buf_free(&run);
	free(clean);
}

static void
fold_mailbox(struct folder *f, const struct address *a)
{
	char *spec = address_spec(a->local, a->domain), *angle;

	if (a->name != NULL && *a->name != '\0') {
		fold_phrase(f, a->name);
		angle = xasprintf("<%s>", spec);
		fold_add(f, angle);
		free(angle);
	} else
		fold_add(f, spec);
	free(spec);
}

char *
rfc5322_format_addresses(const struct address_list *l, size_t column)
{
	struct folder f = { {0}, column, false };
	bool comma = false, in_group = false;
	const struct address *a;
	size_t i;

	buf_adds(&f.b, "");
	for (i = 0; i < l->n; i++) {
		a = &l->v[i];
		switch (a->kind) {
		case ADDR_MAILBOX:
			if (comma)
				fold_punct(&f, ',');
			fold_mailbox(&f, a);
			comma = true;
			break;
		case ADDR_GROUP_START:
			if (in_group)
				fold_punct(&f, ';');
			if (comma || in_group)
				fold_punct(&f, ',');
			if (a->name != NULL && *a->name != '\0')
				fold_phrase(&f, a->name);
			else
				fold_add(&f, "\"\"");
			fold_punct(&f, ':');
			comma = false;
			in_group = true;
			break;
		case ADDR_GROUP_END:
			if (!in_group)
				break;	/* one that closes nothing */
			fold_punct(&f, ';');
			comma = true;
			in_group = false;
			break;
		}
	}
	if (in_group)
		fold_punct(&f, ';');
	return buf_steal(&f.b);
}

bool
rfc5322_is_address_field(const char *name)
{
	static const char *const fields[] = {
		"From", "Sender", "Reply-To", "To", "Cc", "Bcc",
		"Mail-Followup-To", "Mail-Reply-To", "Disposition-Notification-To",
		"Return-Receipt-To", "Errors-To",
	};
	size_t i;

	if (strncasecmp(name, "Resent-", 7) == 0)
		name += 7;
	for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		if (strcasecmp(name, fields[i]) == 0)
			return true;
	return false;
}

void
address_list_free(struct address_list *l)
{
	list_truncate(l, 0);
	free(l->v);
	l->v = NULL;
	l->n = l->cap = 0;
}
