/* mime.h: RFC 2047 encoded words, quoted-printable, 8-bit detection */
#ifndef ACSMAIL_MIME_H
#define ACSMAIL_MIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "status.h"

/* Decodes every RFC 2047 encoded word in text (B and Q; charsets UTF-8,
 * US-ASCII and ISO-8859-1 become UTF-8, others are left encoded); the
 * whitespace between adjacent encoded words goes away. Always returns a
 * new string. */
char *mime_decode_words(const char *text);

/* w (n octets) is one RFC 2047 encoded word as a phrase may hold it:
 * =?charset?B|Q?text?=, the charset a token, the text of letters, digits
 * and !*+-/=_ only. */
bool mime_is_encoded_word(const char *w, size_t n);

/* Unstructured text (Subject, ...) ready for a header: returned as is
 * when ASCII without control characters; otherwise as UTF-8 encoded words,
 * folded with CRLF + space so no line reaches 78 columns given that the
 * first line already holds `column` characters ("Subject: " = 9); when not
 * even one character fits there, the result starts with the fold. Never
 * splits a UTF-8 character. */
char *mime_encode_text(const char *utf8, size_t column);

/* One encoded-word phrase for a display name (non-ASCII), same folding. */
char *mime_encode_phrase(const char *utf8, size_t column);

/* Copies a body (CRLF lines) from in to out as quoted-printable, lines
 * below 77 octets, CRLF kept as line breaks. Returns EX_OK or EX_IOERR. */
int mime_qp_encode(FILE *in, FILE *out, struct status *st);

/* Re-encodes a prepared message (header + CRLF body) whose body is 8-bit
 * or has lines over 998 octets: for a body that is not multipart, the
 * Content-Transfer-Encoding becomes quoted-printable and the body is
 * encoded; a multipart body's 8bit/binary parts are encoded one by one.
 * Used when the relay does not offer 8BITMIME. */
int mime_downgrade(FILE *in, FILE *out, struct status *st);
#endif
