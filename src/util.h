/* util.h: allocation that cannot fail silently, growable strings, string lists */
#ifndef ACSMAIL_UTIL_H
#define ACSMAIL_UTIL_H

#include <stdbool.h>
#include <stddef.h>

/* Allocation failure ends the process with EX_TEMPFAIL: the caller still
 * holds the message and will retry, so nothing is lost. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A growable byte string, always NUL-terminated. */
struct buf {
	char *s;
	size_t len, cap;
};
void buf_add(struct buf *b, const void *p, size_t n);
void buf_adds(struct buf *b, const char *s);
void buf_addc(struct buf *b, char c);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* s in double quotes, its own quotes and backslashes escaped (RFC 5322 quoted-string) */
void buf_add_quoted(struct buf *b, const char *s);
void buf_reset(struct buf *b);
char *buf_steal(struct buf *b);	/* returns the string ("" when empty), leaves b empty */
void buf_free(struct buf *b);

/* A list of owned strings. */
struct strlist {
	char **v;
	size_t n, cap;
};
void strlist_add(struct strlist *l, const char *s);		/* copies s */
void strlist_add_owned(struct strlist *l, char *s);		/* takes s */
bool strlist_has(const struct strlist *l, const char *s);	/* case-insensitive */
bool strlist_add_unique(struct strlist *l, const char *s);	/* case-insensitive; true when added */
void strlist_free(struct strlist *l);

/* Copies src into dst of size octets, truncating; dst is always terminated. */
void str_copy(char *dst, size_t size, const char *src);
bool str_has_ctl(const char *s);	/* any byte < 0x20 or 0x7f */
bool str_is_ascii(const char *s);
#endif
