/* test_mime.c: encoded words, quoted-printable, the 8-bit downgrade */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mime.h"
#include "util.h"
#include "tap.h"

#define JAPANESE "WSL\xe3\x81\x8b\xe3\x82\x89\xe3\x81\xae\xe3\x83\x86\xe3\x82\xb9" \
	"\xe3\x83\x88\xe3\x83\xa1\xe3\x83\xbc\xe3\x83\xab"	/* WSLからのテストメール */

/* s with control characters shown as \xNN, fit for a TAP line */
static const char *
show(const char *s, size_t n)
{
	static char out[4][2048];
	static int turn;
	char *o = out[turn++ % 4];
	size_t i, k = 0;

	for (i = 0; i < n && k + 5 < sizeof(out[0]); i++) {
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			k += (size_t)snprintf(o + k, 5, "\\x%02x", (unsigned char)s[i]);
		else
			o[k++] = s[i];
	}
	o[k] = '\0';
	return o;
}

static void
check_decode(const char *in, const char *want)
{
	char *got = mime_decode_words(in);

	is_str(got, want, "decode [%s]", show(in, strlen(in)));
	free(got);
}

static bool
valid_utf8(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, len, k;

	while (i < n) {
		if (u[i] < 0x80)
			len = 1;
		else if (u[i] >= 0xc2 && u[i] < 0xe0)
			len = 2;
		else if (u[i] >= 0xe0 && u[i] < 0xf0)
			len = 3;
		else if (u[i] >= 0xf0 && u[i] < 0xf5)
			len = 4;
		else
			return false;
		if (i + len > n)
			return false;
		for (k = 1; k < len; k++)
			if ((u[i + k] & 0xc0) != 0x80)
				return false;
		i += len;
	}
	return true;
}

/* Checks an encoded header text: ASCII, folds are CRLF SP, lines below 78
 * columns from column, every word at most 75 characters and decoding on
 * its own to whole UTF-8 characters, the whole decoding back to want. */
static void
check_encoded(const char *enc, size_t column, const char *want, bool phrase, const char *what)
{
	size_t col = column, longest = 0, words = 0, badwords = 0;
	const char *p, *w, *end;
	char *one, *dec;

	for (p = enc; *p != '\0'; p++) {
		if (*p == '\r') {
			ok(p[1] == '\n' && p[2] == ' ', "%s: fold at %zu is CRLF SP", what,
			    (size_t)(p - enc));
			if (col > longest)
				longest = col;
			col = 0;
			p++;
			continue;
		}
		col++;
	}
	if (col > longest)
		longest = col;
	ok(longest < 78, "%s: longest line %zu columns (start %zu)", what, longest, column);
	ok(str_is_ascii(enc), "%s: ASCII", what);
	for (w = strstr(enc, "=?"); w != NULL; w = strstr(end, "=?")) {
		/* the "?=" ending the word comes after the charset and the encoding */
		end = strchr(strchr(strchr(w + 2, '?') + 1, '?') + 1, '?');
		if (end == NULL || end[1] != '=')
			break;
		end += 2;
		words++;
		one = xstrndup(w, (size_t)(end - w));
		dec = mime_decode_words(one);
		if ((size_t)(end - w) > 75 || strcmp(dec, one) == 0 || !valid_utf8(dec, strlen(dec)))
			badwords++;
		if (phrase) {
			const char *q = strchr(strchr(w + 2, '?') + 1, '?') + 1;

			if (w[8] == 'Q')
				for (; q < end - 2; q++)
					if (strchr("\"(),.:;<>@[\\]", *q) != NULL)
						badwords++;
		}
		free(one);
		free(dec);
	}
	ok(words > 0 && badwords == 0, "%s: %zu words, each at most 75 characters of whole characters",
	    what, words);
	/* a start column too far right for even one character opens with a fold */
	dec = mime_decode_words(strncmp(enc, "\r\n ", 3) == 0 ? enc + 3 : enc);
	is_str(dec, want, "%s: decodes back", what);
	free(dec);
}

/* Runs f over in (n octets) and returns what it wrote, its length in *outlen. */
static char *
filter(int (*f)(FILE *, FILE *, struct status *), const char *in, size_t n, size_t *outlen,
    int *rc)
{
	FILE *fi = tmpfile(), *fo = tmpfile();
	char *out;
	long len;
	struct status st;

	fwrite(in, 1, n, fi);
	rewind(fi);
	status_clear(&st);
	*rc = f(fi, fo, &st);
	len = ftell(fo);
	out = xmalloc((size_t)len + 1);
	rewind(fo);
	if (fread(out, 1, (size_t)len, fo) != (size_t)len)
		len = 0;
	out[len] = '\0';
	*outlen = (size_t)len;
	fclose(fi);
	fclose(fo);
	return out;
}

static char *
qp(const char *in, size_t n, size_t *outlen)
{
	int rc;

	return filter(mime_qp_encode, in, n, outlen, &rc);
}

static char *
downgrade(const char *in, size_t *outlen)
{
	int rc;
	char *s = filter(mime_downgrade, in, strlen(in), outlen, &rc);

	if (rc != EX_OK)
		ok(0, "mime_downgrade failed: %d", rc);
	return s;
}

/* A quoted-printable decoder to check encodings against */
static char *
qp_decode(const char *s, size_t n, size_t *outlen)
{
	struct buf b = {0};
	size_t i;
	char hex[3] = { 0, 0, 0 };

	buf_adds(&b, "");
	for (i = 0; i < n; i++) {
		if (s[i] == '=' && i + 2 < n && s[i + 1] == '\r' && s[i + 2] == '\n')
			i += 2;
		else if (s[i] == '=' && i + 2 < n) {
			hex[0] = s[i + 1];
			hex[1] = s[i + 2];
			buf_addc(&b, (char)strtol(hex, NULL, 16));
			i += 2;
		} else
			buf_addc(&b, s[i]);
	}
	*outlen = b.len;
	return buf_steal(&b);
}

/* Every line below 77 octets, no 8-bit octet, no space or tab before a
 * CRLF, no '=' that starts nothing, every CR in a CRLF. */
static bool
qp_well_formed(const char *s, size_t n, size_t *longest)
{
	size_t i, line = 0;

	*longest = 0;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c >= 0x80 || (c < 0x20 && c != '\r' && c != '\n' && c != '\t'))
			return false;
		if (c == '\r') {
			if (i + 1 >= n || s[i + 1] != '\n')
				return false;
			if (i > 0 && (s[i - 1] == ' ' || s[i - 1] == '\t'))
				return false;
			if (line > *longest)
				*longest = line;
			line = 0;
			i++;
			continue;
		}
		if (c == '\n')
			return false;
		if (c == '=' && !(i + 2 < n && ((s[i + 1] == '\r' && s[i + 2] == '\n') ||
		    (strchr("0123456789ABCDEF", s[i + 1]) && strchr("0123456789ABCDEF", s[i + 2])))))
			return false;
		line++;
	}
	if (line > *longest)
		*longest = line;
	return *longest < 77;
}

static void
check_qp(const char *in, size_t n, const char *want, const char *what)
{
	size_t outlen, declen, longest;
	char *out = qp(in, n, &outlen), *dec;
	bool formed;

	if (want != NULL)
		is_str(show(out, outlen), show(want, strlen(want)), "qp %s", what);
	formed = qp_well_formed(out, outlen, &longest);
	ok(formed, "qp %s: well formed, longest line %zu", what, longest);
	dec = qp_decode(out, outlen, &declen);
	ok(declen == n && memcmp(dec, in, n) == 0, "qp %s: decodes back", what);
	free(dec);
	free(out);
}

static void
check_downgrade(const char *in, const char *want, const char *what)
{
	size_t outlen;
	char *out = downgrade(in, &outlen);

	is_str(show(out, outlen), show(want, strlen(want)), "downgrade: %s", what);
	free(out);
}

/* A downgraded message has no 8-bit octet and no line over 998 octets. */
static bool
seven_bit(const char *s, size_t n)
{
	size_t i, line = 0;

	for (i = 0; i < n; i++) {
		if ((unsigned char)s[i] >= 0x80)
			return false;
		if (s[i] == '\n')
			line = 0;
		else if (++line > 999)
			return false;
	}
	return true;
}

int
main(void)
{
	struct buf b = {0}, want = {0};
	size_t i, n, outlen;
	char *s, *t;
	int rc;

	/* decoding */
	check_decode("=?UTF-8?B?V1NM44GL44KJ44Gu44OG44K544OI44Oh44O844Or?=", JAPANESE);
	check_decode("=?utf-8?b?V1NM44GL44KJ44Gu44OG44K544OI44Oh44O844Or?=", JAPANESE);
	check_decode("=?utf-8?q?Caf=C3=A9_cr=c3=a8me?=", "Caf\xc3\xa9 cr\xc3\xa8me");
	check_decode("=?UTF8?Q?x?=", "x");
	check_decode("=?ISO-8859-1?Q?J=F6rg?=", "J\xc3\xb6rg");
	check_decode("=?iso-8859-1?b?SvZyZw==?=", "J\xc3\xb6rg");
	check_decode("=?latin1?q?=E9?=", "\xc3\xa9");
	check_decode("=?us-ascii?q?plain_text?=", "plain text");
	check_decode("=?utf-8*en?q?lang?=", "lang");
	check_decode("=?utf-8?q?" "?=", "");
	check_decode("=?utf-8?b?YQ?=", "a");
	check_decode("=?utf-8?b?YWI?=", "ab");
	check_decode("no words here", "no words here");
	check_decode("", "");
	check_decode("a =?utf-8?q?b?= c", "a b c");
	check_decode("=?utf-8?q?a?= =?utf-8?q?b?=", "ab");
	check_decode("=?utf-8?q?a?=\t =?utf-8?q?b?=", "ab");
	check_decode("=?utf-8?q?a?=\r\n =?utf-8?q?b?=", "ab");
	check_decode("=?utf-8?q?a?= x =?utf-8?q?b?=", "a x b");
	check_decode("=?utf-8?q?a_?= =?utf-8?q?b?=", "a b");
	check_decode("Re: =?utf-8?q?J=C3=B6rg?=!", "Re: J\xc3\xb6rg!");
	/* a character split over two words (common, though RFC 2047 forbids it) */
	check_decode("=?utf-8?b?w6Q=?= =?utf-8?b?w6Q=?=", "\xc3\xa4\xc3\xa4");
	check_decode("=?utf-8?q?=C3?= =?utf-8?q?=A4?=", "\xc3\xa4");
	/* left as they are */
	check_decode("=?koi8-r?q?=F0?=", "=?koi8-r?q?=F0?=");
	check_decode("=?koi8-r?q?a?= =?utf-8?q?b?=", "=?koi8-r?q?a?= b");
	check_decode("=?utf-8?q?a?= =?koi8-r?q?b?=", "a =?koi8-r?q?b?=");
	check_decode("=?utf-8?x?abc?=", "=?utf-8?x?abc?=");
	check_decode("=?utf-8?b?!!!!?=", "=?utf-8?b?!!!!?=");
	check_decode("=?utf-8?b?Y?=", "=?utf-8?b?Y?=");
	check_decode("=?utf-8?b?YQ==YQ==?=", "=?utf-8?b?YQ==YQ==?=");
	check_decode("=?utf-8?q?=G1?=", "=?utf-8?q?=G1?=");
	check_decode("=?utf-8?q?=4?=", "=?utf-8?q?=4?=");
	check_decode("=?utf-8?q?a=?=", "=?utf-8?q?a=?=");
	check_decode("=?utf-8?q?no end", "=?utf-8?q?no end");
	check_decode("=?utf-8?q?sp ace?=", "=?utf-8?q?sp ace?=");
	check_decode("=??q?a?=", "=??q?a?=");
	check_decode("=?utf-8?", "=?utf-8?");
	check_decode("=?", "=?");
	check_decode("=", "=");
	check_decode("=?utf-8?q?a=00b?=", "=?utf-8?q?a=00b?=");
	check_decode("=?utf-8?b?AA==?=", "=?utf-8?b?AA==?=");
	check_decode("=?utf-8?q?bad?= =?utf-8?q?=ZZ?= =?utf-8?q?ok?=", "bad =?utf-8?q?=ZZ?= ok");
	check_decode("=?utf-8?q?x?==?utf-8?q?y?=", "xy");

	/* encoding: ASCII as it is */
	s = mime_encode_text("Cron <root@host> test -x /usr/bin/foo", 9);
	is_str(s, "Cron <root@host> test -x /usr/bin/foo", "ASCII text unchanged");
	free(s);
	s = mime_encode_text("", 9);
	is_str(s, "", "empty text unchanged");
	free(s);
	s = mime_encode_phrase("John Doe", 4);
	is_str(s, "John Doe", "ASCII phrase unchanged");
	free(s);
	s = mime_encode_text("tab\there", 9);
	is_str(s, "tab\there", "a tab is not a reason to encode");
	free(s);

	/* the Japanese subject */
	s = mime_encode_text(JAPANESE, 9);
	is_str(s, "=?UTF-8?B?V1NM44GL44KJ44Gu44OG44K544OI44Oh44O844Or?=", "Japanese subject encoded");
	check_encoded(s, 9, JAPANESE, false, "Japanese subject");
	free(s);
	for (i = 0; i < 12; i++)
		buf_adds(&b, JAPANESE);
	s = mime_encode_text(b.s, 9);
	check_encoded(s, 9, b.s, false, "long Japanese subject");
	ok(strstr(s, "\r\n ") != NULL, "long Japanese subject folds");
	free(s);
	for (n = 0; n < 78; n++) {
		s = mime_encode_text(b.s, n);
		t = mime_decode_words(strncmp(s, "\r\n ", 3) == 0 ? s + 3 : s);
		if ((n < 62) != (strncmp(s, "\r\n ", 3) != 0)) {
			free(s);
			free(t);
			break;
		}
		if (strcmp(t, b.s) != 0 || strstr(s, "\n") == NULL) {
			free(s);
			free(t);
			break;
		}
		{
			size_t col = n, longest = 0;
			const char *p;

			for (p = s; *p != '\0'; p++) {
				if (*p == '\r') {
					longest = col > longest ? col : longest;
					col = 0;
					p++;
				} else
					col++;
			}
			longest = col > longest ? col : longest;
			free(s);
			free(t);
			if (longest >= 78)
				break;
		}
	}
	ok(n == 78, "every start column from 0 to 77 keeps lines below 78, a fold first from 62 on (reached %zu)", n);

	/* mixed text: Q, readable, spaces and specials encoded as they must be */
	s = mime_encode_text("Caf\xc3\xa9 = 100% _sure_? yes", 9);
	is_str(s, "=?UTF-8?Q?Caf=C3=A9_=3D_100%_=5Fsure=5F=3F_yes?=", "Q text encoding");
	check_encoded(s, 9, "Caf\xc3\xa9 = 100% _sure_? yes", false, "Q text");
	free(s);
	buf_reset(&b);
	for (i = 0; i < 40; i++)
		buf_adds(&b, "\xc3\xa9t\xc3\xa9 ");
	s = mime_encode_text(b.s, 9);
	check_encoded(s, 9, b.s, false, "long accented text");
	free(s);
	/* four-byte characters are never split */
	buf_reset(&b);
	for (i = 0; i < 50; i++)
		buf_adds(&b, "\xf0\x9f\x93\xa7");
	s = mime_encode_text(b.s, 9);
	check_encoded(s, 9, b.s, false, "emoji text");
	free(s);
	s = mime_encode_text(b.s, 76);
	check_encoded(s, 76, b.s, false, "emoji text from column 76");
	free(s);
	/* invalid UTF-8 still encodes and decodes to the same bytes */
	s = mime_encode_text("bad \xff\xfe\xc3 bytes", 9);
	t = mime_decode_words(s);
	is_str(t, "bad \xff\xfe\xc3 bytes", "invalid UTF-8 survives a round trip");
	free(s);
	free(t);
	/* control characters are encoded, never written raw */
	s = mime_encode_text("line\r\nBcc: x@y", 9);
	ok(strchr(s, '\n') == NULL && strncmp(s, "=?UTF-8?Q?", 10) == 0,
	    "CR LF in text is encoded: %s", s);
	free(s);

	/* phrases: only the characters RFC 2047 5(3) allows */
	s = mime_encode_phrase("M\xc3\xbcller, J\xc3\xb6rg (Dr.) \"x\" <y>", 4);
	check_encoded(s, 4, "M\xc3\xbcller, J\xc3\xb6rg (Dr.) \"x\" <y>", true, "phrase");
	free(s);
	s = mime_encode_phrase("J\xc3\xb6rg M\xc3\xbcller", 4);
	is_str(s, "=?UTF-8?Q?J=C3=B6rg_M=C3=BCller?=", "phrase in Q");
	free(s);
	s = mime_encode_phrase(JAPANESE JAPANESE JAPANESE, 40);
	check_encoded(s, 40, JAPANESE JAPANESE JAPANESE, true, "long phrase from column 40");
	free(s);

	/* quoted-printable */
	check_qp("abc\r\n", 5, "abc\r\n", "plain line");
	check_qp("", 0, "", "empty body");
	check_qp("a=b\r\n", 5, "a=3Db\r\n", "'=' encoded");
	check_qp("abc \r\n", 6, "abc=20\r\n", "trailing space");
	check_qp("abc\t\r\n", 6, "abc=09\r\n", "trailing tab");
	check_qp("a  b  \r\nc\r\n", 11, "a  b =20\r\nc\r\n", "inner spaces kept, the last encoded");
	check_qp("trailing at end ", 16, "trailing at end=20", "space at the end of input");
	check_qp("caf\xc3\xa9\r\n", 7, "caf=C3=A9\r\n", "8-bit");
	check_qp("no final line end", 17, "no final line end", "no final CRLF");
	check_qp("a\rb\r\n", 5, "a=0Db\r\n", "bare CR");
	check_qp("a\nb\r\n", 5, "a=0Ab\r\n", "bare LF");
	check_qp("a \r", 3, "a =0D", "space then CR at the end");
	check_qp("a\r\r\n", 4, "a=0D\r\n", "CR CR LF");
	check_qp("x\0y\r\n", 5, "x=00y\r\n", "NUL");
	check_qp("\r\n\r\n", 4, "\r\n\r\n", "empty lines");
	check_qp(".\r\nFrom x\r\n", 11, ".\r\nFrom x\r\n", "dots and From are the SMTP layer's business");
	buf_reset(&b);
	for (i = 0; i < 200; i++)
		buf_addc(&b, 'x');
	buf_adds(&b, "\r\n");
	buf_reset(&want);
	buf_printf(&want, "%.75s=\r\n%.75s=\r\n%.50s\r\n", b.s, b.s, b.s);
	check_qp(b.s, b.len, want.s, "long line");
	buf_reset(&b);
	for (i = 0; i < 100; i++)
		buf_adds(&b, "\xc3\xa9");
	buf_adds(&b, "\r\n");
	check_qp(b.s, b.len, NULL, "long 8-bit line");
	buf_reset(&b);
	for (i = 0; i < 74; i++)
		buf_addc(&b, 'x');
	buf_adds(&b, " \r\n");
	check_qp(b.s, b.len, NULL, "trailing space at the fold");
	buf_reset(&b);
	for (i = 0; i < 5000; i++)
		buf_addc(&b, " \t=\xff\r\nabc"[i * 7 % 10]);
	check_qp(b.s, b.len, NULL, "a mixture");
	{
		unsigned long seed = 99;

		buf_reset(&b);
		for (i = 0; i < 20000; i++) {
			seed = seed * 6364136223846793005UL + 1442695040888963407UL;
			buf_addc(&b, (char)(seed >> 56));
		}
		check_qp(b.s, b.len, NULL, "random bytes");
	}
	{
		/* a read error is reported */
		FILE *in = fopen("/", "r"), *out = tmpfile();
		struct status st;

		status_clear(&st);
		if (in != NULL) {
			rc = mime_qp_encode(in, out, &st);
			ok(rc == EX_IOERR && strstr(st.text, "cannot read") != NULL,
			    "a read error is EX_IOERR: %s", st.text);
			fclose(in);
		} else
			ok(1, "a read error is EX_IOERR (no directory stream here)");
		fclose(out);
	}

	/* the downgrade */
	check_downgrade("From: a@x\r\nSubject: t\r\n\r\nplain\r\n",
	    "From: a@x\r\nSubject: t\r\n\r\nplain\r\n", "7-bit message unchanged");
	check_downgrade("From: a@x\r\nSubject: t\r\n\r\ncaf\xc3\xa9\r\n",
	    "From: a@x\r\nSubject: t\r\nMIME-Version: 1.0\r\n"
	    "Content-Type: text/plain; charset=UTF-8\r\n"
	    "Content-Transfer-Encoding: quoted-printable\r\n\r\ncaf=C3=A9\r\n",
	    "8-bit body without MIME fields");
	check_downgrade("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
	    "Content-Transfer-Encoding: 8bit\r\nX-A: b\r\n\r\ncaf\xc3\xa9 \r\n",
	    "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
	    "Content-Transfer-Encoding: quoted-printable\r\nX-A: b\r\n\r\ncaf=C3=A9=20\r\n",
	    "8bit becomes quoted-printable in place");
	check_downgrade("Content-Transfer-Encoding:\r\n binary\r\n\r\n\xff\r\n",
	    "Content-Transfer-Encoding: quoted-printable\r\nMIME-Version: 1.0\r\n"
	    "Content-Type: text/plain; charset=UTF-8\r\n\r\n=FF\r\n", "folded binary");
	check_downgrade("Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\nw6k=\r\n",
	    "Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\nw6k=\r\n",
	    "base64 left alone");
	check_downgrade("Content-Transfer-Encoding: quoted-printable\r\n\r\n\xc3\xa9\r\n",
	    "Content-Transfer-Encoding: quoted-printable\r\n\r\n\xc3\xa9\r\n",
	    "declared quoted-printable left alone");
	check_downgrade("Subject: only a header\r\n", "Subject: only a header\r\n", "no body");
	check_downgrade("", "", "empty input");
	check_downgrade("Subject: x\r\n\r\n", "Subject: x\r\n\r\n", "empty body");
	check_downgrade("Subject: x\r\n\r\n\xc3\xa9", "Subject: x\r\nMIME-Version: 1.0\r\n"
	    "Content-Type: text/plain; charset=UTF-8\r\n"
	    "Content-Transfer-Encoding: quoted-printable\r\n\r\n=C3=A9",
	    "8-bit body without a final CRLF");
	buf_reset(&b);
	buf_adds(&b, "Subject: long\r\n\r\n");
	for (i = 0; i < 2000; i++)
		buf_addc(&b, 'a' + i % 26);
	buf_adds(&b, "\r\nend\r\n");
	s = downgrade(b.s, &outlen);
	ok(strstr(s, "Content-Transfer-Encoding: quoted-printable\r\n") != NULL &&
	    seven_bit(s, outlen), "a 2000-octet line is encoded");
	t = strstr(s, "\r\n\r\n") + 4;
	{
		size_t declen;
		char *dec = qp_decode(t, outlen - (size_t)(t - s), &declen);

		ok(declen == b.len - 17 && memcmp(dec, b.s + 17, declen) == 0,
		    "the long line decodes back");
		free(dec);
	}
	free(s);
	buf_reset(&b);
	buf_adds(&b, "Subject: ok\r\n\r\n");
	for (i = 0; i < 998; i++)
		buf_addc(&b, 'a');
	buf_adds(&b, "\r\n");
	check_downgrade(b.s, b.s, "a 998-octet line is fine");

	/* multipart: only the 8-bit part is encoded */
	check_downgrade(
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: multipart/mixed; boundary=\"b1\"\r\n"
	    "Content-Transfer-Encoding: 8bit\r\n"
	    "\r\n"
	    "preamble\r\n"
	    "--b1\r\n"
	    "Content-Type: text/plain; charset=us-ascii\r\n"
	    "\r\n"
	    "ascii part\r\n"
	    "--b1\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\n"
	    "Content-Transfer-Encoding: 8bit\r\n"
	    "\r\n"
	    "caf\xc3\xa9\r\n"
	    "\r\n"
	    "--b1\r\n"
	    "\r\n"
	    "no header, 8-bit \xc3\xa9\r\n"
	    "--b1\r\n"
	    "Content-Type: application/octet-stream\r\n"
	    "Content-Transfer-Encoding: base64\r\n"
	    "\r\n"
	    "AAEC\r\n"
	    "--b1--  \r\n"
	    "epilogue\r\n",
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: multipart/mixed; boundary=\"b1\"\r\n"
	    "Content-Transfer-Encoding: 7bit\r\n"
	    "\r\n"
	    "preamble\r\n"
	    "--b1\r\n"
	    "Content-Type: text/plain; charset=us-ascii\r\n"
	    "\r\n"
	    "ascii part\r\n"
	    "--b1\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\n"
	    "Content-Transfer-Encoding: quoted-printable\r\n"
	    "\r\n"
	    "caf=C3=A9\r\n"
	    "\r\n"
	    "--b1\r\n"
	    "Content-Type: text/plain; charset=UTF-8\r\n"
	    "Content-Transfer-Encoding: quoted-printable\r\n"
	    "\r\n"
	    "no header, 8-bit =C3=A9\r\n"
	    "--b1\r\n"
	    "Content-Type: application/octet-stream\r\n"
	    "Content-Transfer-Encoding: base64\r\n"
	    "\r\n"
	    "AAEC\r\n"
	    "--b1--  \r\n"
	    "epilogue\r\n",
	    "multipart, part by part");
	check_downgrade(
	    "Content-Type: multipart/mixed;\r\n boundary=outer\r\n\r\n"
	    "--outer\r\n"
	    "Content-Type: multipart/alternative; boundary=\"in ner\"\r\n\r\n"
	    "--in ner\r\n"
	    "Content-Type: text/plain\r\n\r\n"
	    "\xc3\xa9\r\n"
	    "--in ner\r\n"
	    "Content-Type: text/html\r\n\r\n"
	    "<p>\xc3\xa9</p>\r\n"
	    "--outer\r\n"
	    "Content-Type: message/rfc822\r\n\r\n"
	    "Subject: inner\r\n\r\n"
	    "\xc3\xa9\r\n"
	    "--outer--\r\n",
	    "Content-Type: multipart/mixed;\r\n boundary=outer\r\n\r\n"
	    "--outer\r\n"
	    "Content-Type: multipart/alternative; boundary=\"in ner\"\r\n\r\n"
	    "--in ner\r\n"
	    "Content-Type: text/plain\r\n"
	    "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
	    "=C3=A9\r\n"
	    "--in ner\r\n"
	    "Content-Type: text/html\r\n"
	    "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
	    "<p>=C3=A9</p>\r\n"
	    "--outer\r\n"
	    "Content-Type: message/rfc822\r\n\r\n"
	    "Subject: inner\r\n"
	    "Content-Type: text/plain; charset=UTF-8\r\n"
	    "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
	    "=C3=A9\r\n"
	    "--outer--\r\n",
	    "nested multipart ended by the outer boundary, encapsulated message");
	check_downgrade(
	    "Content-Type: multipart/mixed; boundary=b\r\n\r\n"
	    "--b\r\n\r\n\xc3\xa9\r\n--bx\r\n\xc3\xa9\r\n",
	    "Content-Type: multipart/mixed; boundary=b\r\n\r\n"
	    "--b\r\n"
	    "Content-Type: text/plain; charset=UTF-8\r\n"
	    "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
	    "=C3=A9\r\n--bx\r\n=C3=A9\r\n",
	    "no close delimiter, a line that only starts like one");
	check_downgrade("Content-Type: multipart/mixed\r\n\r\n\xc3\xa9\r\n",
	    "Content-Type: multipart/mixed\r\n\r\n\xc3\xa9\r\n",
	    "a multipart without a boundary is not encoded as a whole");

	{
		/* a NUL in a header field is carried, not cut */
		static const char msg[] = "X-Odd: a\0b\r\n\r\n\xc3\xa9\r\n";
		static const char exp[] = "X-Odd: a\0b\r\nMIME-Version: 1.0\r\n"
		    "Content-Type: text/plain; charset=UTF-8\r\n"
		    "Content-Transfer-Encoding: quoted-printable\r\n\r\n=C3=A9\r\n";

		s = filter(mime_downgrade, msg, sizeof(msg) - 1, &outlen, &rc);
		ok(rc == EX_OK && outlen == sizeof(exp) - 1 && memcmp(s, exp, outlen) == 0,
		    "a NUL in the header survives: %s", show(s, outlen));
		free(s);
	}

	/* input that cannot seek: a pipe */
	{
		const char *msg = "Subject: p\r\n\r\n\xc3\xa9\r\n";
		int fds[2];
		FILE *in, *out = tmpfile();
		struct status st;
		char got[512];
		size_t n;

		if (pipe(fds) == 0 && write(fds[1], msg, strlen(msg)) == (ssize_t)strlen(msg)) {
			close(fds[1]);
			in = fdopen(fds[0], "r");
			rc = mime_downgrade(in, out, &st);
			rewind(out);
			n = fread(got, 1, sizeof(got) - 1, out);
			got[n] = '\0';
			ok(rc == EX_OK && strstr(got, "\r\n\r\n=C3=A9\r\n") != NULL,
			    "a pipe is downgraded too");
			fclose(in);
		} else
			ok(0, "pipe");
		fclose(out);
	}

	/* fuzz-ish: garbled MIME never crashes, and what is written keeps all octets */
	{
		static const char *const seeds[] = {
			"Content-Type: multipart/mixed; boundary=b\r\n\r\npre\r\n--b\r\n"
			"Content-Type: text/plain\r\n\r\n\xc3\xa9\r\n--b\r\n"
			"Content-Type: multipart/related; boundary=c\r\n\r\n--c\r\n\r\nx\xff\r\n"
			"--c--\r\n--b--\r\npost\r\n",
			"Content-Type: message/rfc822\r\n\r\nContent-Type: multipart/mixed; "
			"boundary=\"q\\\"x\"\r\n\r\n--q\"x\r\n\r\n\xc3\xa9\r\n--q\"x--\r\n",
			"Content-Type: multipart/mixed; boundary=(c)b; x=\"unterminated\r\n\r\n--b\r\n",
		};
		unsigned long seed = 7;
		size_t k, bad = 0, tries = 0;

		for (i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
			for (k = 0; k < 400; k++) {
				size_t len = strlen(seeds[i]), pos, e;
				char *out;

				buf_reset(&b);
				buf_adds(&b, seeds[i]);
				if (k < len)
					b.s[b.len = k] = '\0';	/* truncated */
				for (e = 0; k >= len && e < 4; e++) {
					seed = seed * 6364136223846793005UL + 1442695040888963407UL;
					pos = (seed >> 33) % b.len;
					b.s[pos] = "-\r\n;=\"b:\xc3 "[(seed >> 20) % 10];
				}
				out = downgrade(b.s, &outlen);
				tries++;
				if (outlen < b.len) {
					bad++;
					fprintf(stderr, "# lost: [%s]\n# -> [%s]\n", show(b.s, b.len), show(out, outlen));
				}
				free(out);
			}
		}
		ok(bad == 0, "garbled MIME: %zu inputs, none lost octets", tries);
	}
	{
		/* a deep structure */
		buf_reset(&b);
		for (i = 0; i < 100; i++)
			buf_printf(&b, "Content-Type: multipart/mixed; boundary=d%zu\r\n\r\n--d%zu\r\n",
			    i, i);
		buf_adds(&b, "\r\n\xc3\xa9\r\n");
		s = downgrade(b.s, &outlen);
		ok(outlen >= b.len, "100 nested multiparts are handled");
		free(s);
	}

	buf_free(&b);
	buf_free(&want);
	return tap_done();
}
