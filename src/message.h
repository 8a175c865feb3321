/* message.h: a message read from stdin: header fields in memory, the body in a temporary file */
#ifndef ACSMAIL_MESSAGE_H
#define ACSMAIL_MESSAGE_H

#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

#include "status.h"

struct field {
	char *name;	/* as written, e.g. "To" */
	char *raw;	/* the whole field, folding kept, each line ending in CRLF */
	char *value;	/* the body unfolded: CRLFs removed, leading blanks trimmed */
};

struct message {
	struct field *fields;
	size_t nfields, cap;
	FILE *body;		/* temporary file: CRLF lines, not dot-stuffed */
	off_t body_size;	/* octets in body */
	bool body_8bit;		/* a byte >= 0x80 in the body */
	size_t body_longest;	/* longest body line in octets, CRLF excluded */
	bool header_8bit;	/* a raw byte >= 0x80 in some header field */
	bool header_too_large;	/* the header passed MESSAGE_HEADER_MAX: from the line
				 * that did on, the input is in the body, kept whole */
};

#define MESSAGE_HEADER_MAX (1024 * 1024)

/* Reads stdin to the end (or to a lone "." when dot_ends): line ends of any
 * kind become CRLF, a leading mbox "From " line is dropped, the header ends
 * at the first empty line or at the first line that is neither a field nor
 * a continuation (which starts the body). The body is written to an
 * unlinked temporary file in tmpdir. EX_DATAERR for input that cannot be a
 * message, EX_IOERR/EX_TEMPFAIL when the temporary file cannot be written. */
int message_read(FILE *in, bool dot_ends, const char *tmpdir, struct message *m, struct status *st);

/* The first field called name (case-insensitive), or NULL. */
struct field *message_find(struct message *m, const char *name);
/* Removes every field called name; returns how many. */
size_t message_remove(struct message *m, const char *name);
/* Appends "name: value" (value already fit for a header: ASCII, folded). */
void message_add(struct message *m, const char *name, const char *value);
/* Inserts "name: value" before every other field. */
void message_prepend(struct message *m, const char *name, const char *value);
/* Replaces a field's body with value (already fit for a header). */
void message_replace(struct message *m, struct field *f, const char *value);

/* Writes the header fields, the empty line and the body to out.
 * Returns EX_OK or EX_IOERR. */
int message_write(struct message *m, FILE *out, struct status *st);

void message_free(struct message *m);
#endif
