/* spool.c: queue files on disk (their format is doc/queue.md): ids, areas, writing, locking, reading */
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "log.h"
#include "spool.h"
#include "util.h"

#define QUEUE_FORMAT	"acsmail-queue"
#define QUEUE_VERSION	1
#define QUEUE_GROUP	"acsmail"
#define STALE_TMP	3600		/* a temporary file this old was left by a crash */
#define BACKOFF_FIRST	60
#define BACKOFF_MAX	3600
#define LINE_MAX_LEN	4096		/* a longer header line means a damaged file */
#define VALUE_MAX	1000		/* the longest value written into a header */
#define COPY_CHUNK	65536

static const char *const area_names[AREA_COUNT] = { "tmp", "queue", "failed" };

/* ---- ids and times ---- */

void
queue_new_id(char id[QUEUE_ID_MAX])
{
	/* the same process may ask twice within a microsecond */
	static unsigned serial;
	struct timeval tv;

	gettimeofday(&tv, NULL);
	snprintf(id, QUEUE_ID_MAX, "%08jX%05lX%06lX%03X",
	    (uintmax_t)tv.tv_sec & 0xFFFFFFFFu, (unsigned long)tv.tv_usec & 0xFFFFFu,
	    (unsigned long)getpid() & 0xFFFFFFu, serial++ & 0xFFFu);
}

/* Letters and digits only: an id is also a file name. */
bool
id_valid(const char *id)
{
	size_t n = 0;

	for (; id[n] != '\0'; n++)
		if (!((id[n] >= '0' && id[n] <= '9') || (id[n] >= 'A' && id[n] <= 'Z') ||
		    (id[n] >= 'a' && id[n] <= 'z')) || n + 1 >= QUEUE_ID_MAX)
			return false;
	return n > 0;
}

time_t
queue_backoff(long attempts)
{
	time_t wait = BACKOFF_FIRST;

	if (attempts <= 0)
		return 0;
	while (--attempts > 0 && wait < BACKOFF_MAX)
		wait *= 2;
	return wait < BACKOFF_MAX ? wait : BACKOFF_MAX;
}

/* "5 days", "3 hours", "1 minute": for people. */
void
format_span(char *dst, size_t size, long secs)
{
	static const struct { long len; const char *name; } units[] = {
		{ 86400, "day" }, { 3600, "hour" }, { 60, "minute" }, { 1, "second" },
	};
	size_t i;
	long n;

	if (secs < 0)
		secs = 0;
	for (i = 0; i < 3 && secs < units[i].len; i++)
		continue;
	n = secs / units[i].len;
	snprintf(dst, size, "%ld %s%s", n, units[i].name, n == 1 ? "" : "s");
}

/* "42s", "3m", "5h", "2d": an age in mailq's columns. */
void
format_age(char *dst, size_t size, long secs)
{
	if (secs < 0)
		secs = 0;
	if (secs < 60)
		snprintf(dst, size, "%lds", secs);
	else if (secs < 3600)
		snprintf(dst, size, "%ldm", secs / 60);
	else if (secs < 86400)
		snprintf(dst, size, "%ldh", secs / 3600);
	else
		snprintf(dst, size, "%ldd", secs / 86400);
}

/* "14:05:09", local time */
void
format_clock(char *dst, size_t size, time_t t)
{
	struct tm tm;

	if (localtime_r(&t, &tm) == NULL || strftime(dst, size, "%H:%M:%S", &tm) == 0)
		snprintf(dst, size, "%jd", (intmax_t)t);
}

/* ---- the directories ---- */

/* A spool directory: 0770 whatever the umask, group acsmail when that group
 * exists (the setgid binary and the runner share the queue through it). */
static int
make_dir(int at, const char *path, const char *shown, struct status *st)
{
	struct group *gr;

	if (mkdirat(at, path, 0770) != 0) {
		if (errno == EEXIST)
			return EX_OK;
		return status_set(st, errno == ENOSPC ? EX_TEMPFAIL : EX_CANTCREAT,
		    "cannot create the queue directory %s: %s", shown, strerror(errno));
	}
	if (fchmodat(at, path, 0770, 0) != 0)
		log_line(LOG_WARNING, "queue: cannot chmod %s: %s", shown, strerror(errno));
	gr = getgrnam(QUEUE_GROUP);
	if (gr != NULL && fchownat(at, path, (uid_t)-1, gr->gr_gid, 0) != 0)
		log_line(LOG_WARNING, "queue: cannot give %s to group %s: %s", shown, QUEUE_GROUP,
		    strerror(errno));
	return EX_OK;
}

void
spool_close(struct spool *sp)
{
	int i;

	for (i = 0; i < AREA_COUNT; i++) {
		if (sp->dir[i] >= 0)
			close(sp->dir[i]);
		sp->dir[i] = -1;
	}
}

/* Opens queue_dir's areas, creating what is missing when create is set.
 * Without create, a missing queue_dir is EX_NOINPUT and a missing area -1. */
int
spool_open(const struct config *cfg, bool create, struct spool *sp, struct status *st)
{
	char *shown;
	int root, i, rc = EX_OK;

	sp->cfg = cfg;
	for (i = 0; i < AREA_COUNT; i++)
		sp->dir[i] = -1;
	if (create && make_dir(AT_FDCWD, cfg->queue_dir, cfg->queue_dir, st) != EX_OK)
		return st->code;
	root = open(cfg->queue_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (root < 0)
		return status_set(st, errno == ENOENT ? EX_NOINPUT :
		    errno == EACCES ? EX_CANTCREAT : EX_TEMPFAIL,
		    "cannot open the queue directory %s: %s", cfg->queue_dir, strerror(errno));
	for (i = 0; i < AREA_COUNT && rc == EX_OK; i++) {
		shown = xasprintf("%s/%s", cfg->queue_dir, area_names[i]);
		if (create)
			rc = make_dir(root, area_names[i], shown, st);
		if (rc == EX_OK) {
			sp->dir[i] = openat(root, area_names[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (sp->dir[i] < 0 && (create || errno != ENOENT))
				rc = status_set(st, errno == EACCES ? EX_CANTCREAT : EX_TEMPFAIL,
				    "cannot open the queue directory %s: %s", shown, strerror(errno));
		}
		free(shown);
	}
	close(root);
	if (rc != EX_OK)
		spool_close(sp);
	return rc;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The ids in an area, oldest first. */
int
list_area(struct spool *sp, enum area a, struct strlist *ids, struct status *st)
{
	struct dirent *de;
	DIR *d;
	int fd;

	if (sp->dir[a] < 0)
		return EX_OK;
	fd = openat(sp->dir[a], ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || (d = fdopendir(fd)) == NULL) {
		if (fd >= 0)
			close(fd);
		return status_set(st, EX_TEMPFAIL, "cannot read %s/%s: %s", sp->cfg->queue_dir,
		    area_names[a], strerror(errno));
	}
	while ((de = readdir(d)) != NULL)
		if (id_valid(de->d_name))
			strlist_add(ids, de->d_name);
	closedir(d);
	if (ids->n > 1)
		qsort(ids->v, ids->n, sizeof(*ids->v), cmp_str);
	return EX_OK;
}

/* A crashed writer's temporary files go once nobody can still be writing them. */
void
clean_tmp(struct spool *sp, time_t now)
{
	struct dirent *de;
	struct stat sb;
	size_t removed = 0;
	DIR *d;
	int fd;

	fd = openat(sp->dir[AREA_TMP], ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || (d = fdopendir(fd)) == NULL) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
		    fstatat(sp->dir[AREA_TMP], de->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0)
			continue;
		if (S_ISREG(sb.st_mode) && sb.st_mtime < now - STALE_TMP &&
		    unlinkat(sp->dir[AREA_TMP], de->d_name, 0) == 0)
			removed++;
	}
	closedir(d);
	if (removed > 0)
		log_line(LOG_INFO, "queue: removed %zu temporary file%s left by an interrupted acsmail",
		    removed, removed == 1 ? "" : "s");
}

/* ---- entries in memory ---- */

void
entry_free(struct entry *e)
{
	free(e->last_reply);
	e->last_reply = NULL;
	envelope_free(&e->env);
	strlist_free(&e->replies);
}

static char *
strdup_or_null(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

/* A new entry with env's sender, DSN and body type, and no recipients yet. */
static void
entry_init(struct entry *e, const char *id, const struct envelope *env, const char *last_reply)
{
	memset(e, 0, sizeof(*e));
	str_copy(e->id, sizeof(e->id), id);
	e->last_reply = xstrdup(last_reply != NULL ? last_reply : "");
	e->env.sender = xstrdup(env->sender != NULL ? env->sender : "");
	e->env.dsn_notify = strdup_or_null(env->dsn_notify);
	e->env.dsn_ret = strdup_or_null(env->dsn_ret);
	e->env.dsn_envid = strdup_or_null(env->dsn_envid);
	e->env.eightbit = env->eightbit;
	e->env.smtputf8 = env->smtputf8;
}

void
entry_init_like(struct entry *e, const struct entry *from)
{
	entry_init(e, from->id, &from->env, from->last_reply);
	e->created = from->created;
	e->attempts = from->attempts;
	e->next_attempt = from->next_attempt;
}

void
entry_add_rcpt(struct entry *e, const char *rcpt, const char *reply)
{
	strlist_add(&e->env.rcpts, rcpt);
	strlist_add(&e->replies, reply != NULL ? reply : "");
}

void
entry_set_reply(struct entry *e, const char *reply)
{
	free(e->last_reply);
	e->last_reply = xstrdup(reply);
}

static bool
value_ok(const char *s)
{
	return s == NULL || (strlen(s) <= VALUE_MAX && !str_has_ctl(s));
}

/* What goes into a header must come back out the same: one line each. */
static int
entry_check(const struct entry *e, struct status *st)
{
	const char *bad = NULL;
	size_t i;

	if (!value_ok(e->env.sender))
		bad = "the sender";
	for (i = 0; i < e->env.rcpts.n && bad == NULL; i++)
		if (!value_ok(e->env.rcpts.v[i]))
			bad = "a recipient";
	if (!value_ok(e->env.dsn_notify) || !value_ok(e->env.dsn_ret) ||
	    !value_ok(e->env.dsn_envid))
		bad = "a DSN parameter";
	if (bad != NULL)
		return status_set(st, EX_DATAERR,
		    "cannot queue message %s: %s holds a control character or is too long",
		    e->id, bad);
	return EX_OK;
}

/* ---- queue files on disk ---- */

/* A free-text value (a relay's reply): one line, shown to people, so no control characters. */
static void
put_text(FILE *fp, const char *key, const char *value)
{
	size_t n;

	fprintf(fp, "%s ", key);
	for (n = 0; value[n] != '\0' && n < VALUE_MAX; n++)
		fputc((unsigned char)value[n] < 0x20 || value[n] == 0x7f ? ' ' : value[n], fp);
	fputc('\n', fp);
}

static void
entry_put(FILE *fp, const struct entry *e)
{
	size_t i;

	fprintf(fp, "%s %d\n", QUEUE_FORMAT, QUEUE_VERSION);
	fprintf(fp, "id %s\n", e->id);
	fprintf(fp, "created %jd\n", (intmax_t)e->created);
	fprintf(fp, "attempts %ld\n", e->attempts);
	fprintf(fp, "next-attempt %jd\n", (intmax_t)e->next_attempt);
	put_text(fp, "last-reply", e->last_reply != NULL ? e->last_reply : "");
	fprintf(fp, "sender <%s>\n", e->env.sender);
	if (e->env.dsn_notify != NULL)
		fprintf(fp, "notify %s\n", e->env.dsn_notify);
	if (e->env.dsn_ret != NULL)
		fprintf(fp, "ret %s\n", e->env.dsn_ret);
	if (e->env.dsn_envid != NULL)
		fprintf(fp, "envid %s\n", e->env.dsn_envid);
	fprintf(fp, "body %s\n", e->env.eightbit ? "8bitmime" : "7bit");
	fprintf(fp, "smtputf8 %s\n", e->env.smtputf8 ? "yes" : "no");
	for (i = 0; i < e->env.rcpts.n; i++) {
		fprintf(fp, "rcpt <%s>\n", e->env.rcpts.v[i]);
		if (e->replies.v[i][0] != '\0')
			put_text(fp, "reply", e->replies.v[i]);
	}
	fputc('\n', fp);
}

/* Copies size octets of in, from its start, to out. */
static int
copy_message(FILE *in, off_t size, FILE *out, const char *shown, struct status *st)
{
	char *chunk;
	size_t want, got;
	int rc = EX_OK;

	if (size < 0 || fseeko(in, 0, SEEK_SET) != 0)
		return status_set(st, EX_TEMPFAIL, "cannot queue: cannot rewind the message: %s",
		    strerror(errno));
	chunk = xmalloc(COPY_CHUNK);
	while (size > 0 && rc == EX_OK) {
		want = size < COPY_CHUNK ? (size_t)size : COPY_CHUNK;
		got = fread(chunk, 1, want, in);
		if (got == 0)
			rc = status_set(st, EX_TEMPFAIL, "cannot queue: %s",
			    ferror(in) ? strerror(errno) : "the message is shorter than its size");
		else if (fwrite(chunk, 1, got, out) != got)
			rc = status_set(st, EX_TEMPFAIL, "cannot write the queue file %s: %s",
			    shown, strerror(errno));
		size -= (off_t)got;
	}
	free(chunk);
	return rc;
}

/* Writes e and the message (size octets of msg from its start) to a new
 * file in tmp/, flushed and fsync'd; its name goes to p->name. Whatever
 * fails (ENOSPC, EFBIG, EIO), nothing is left behind. */
int
entry_write_tmp(struct spool *sp, const struct entry *e, FILE *msg, off_t size,
    struct pending *p, struct status *st)
{
	char *shown;
	FILE *fp;
	int fd = -1, n, rc = EX_OK;

	for (n = 0; n < 100 && fd < 0; n++) {
		snprintf(p->name, sizeof(p->name), "%s.%ld.%d", e->id, (long)getpid(), n);
		fd = openat(sp->dir[AREA_TMP], p->name,
		    O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0660);
		if (fd < 0 && errno != EEXIST)
			break;
	}
	if (fd < 0)
		return status_set(st, errno == EACCES ? EX_CANTCREAT : EX_TEMPFAIL,
		    "cannot create a file in %s/tmp: %s", sp->cfg->queue_dir, strerror(errno));
	shown = xasprintf("%s/tmp/%s", sp->cfg->queue_dir, p->name);
	if (fchmod(fd, 0660) != 0 || (fp = fdopen(fd, "w")) == NULL) {
		rc = status_set(st, EX_TEMPFAIL, "cannot open %s: %s", shown, strerror(errno));
		close(fd);
		goto out;
	}
	entry_put(fp, e);
	rc = copy_message(msg, size, fp, shown, st);
	if (rc == EX_OK && (fflush(fp) != 0 || ferror(fp) || fsync(fd) != 0))
		rc = status_set(st, EX_TEMPFAIL, "cannot write the queue file %s: %s", shown,
		    strerror(errno));
	if (fclose(fp) != 0 && rc == EX_OK)
		rc = status_set(st, EX_TEMPFAIL, "cannot write the queue file %s: %s", shown,
		    strerror(errno));
out:
	if (rc != EX_OK)
		unlinkat(sp->dir[AREA_TMP], p->name, 0);
	else
		p->ready = true;
	free(shown);
	return rc;
}

static void
pending_release(struct pending *p)
{
	if (p->lockfd >= 0)
		close(p->lockfd);
	p->lockfd = -1;
	p->ready = false;
}

void
pending_discard(struct spool *sp, struct pending *p)
{
	if (p->ready)
		unlinkat(sp->dir[AREA_TMP], p->name, 0);
	pending_release(p);
}

/* Renames tmp/name to area/id, then fsyncs the area: once this returns
 * EX_OK the entry survives a crash. *moved tells whether the rename was done. */
int
pending_commit(struct spool *sp, struct pending *p, enum area a, const char *id,
    bool *moved, struct status *st)
{
	int rc = EX_OK;

	*moved = false;
	if (renameat(sp->dir[AREA_TMP], p->name, sp->dir[a], id) != 0) {
		rc = status_set(st, EX_TEMPFAIL, "cannot move a queue file into %s/%s: %s",
		    sp->cfg->queue_dir, area_names[a], strerror(errno));
		unlinkat(sp->dir[AREA_TMP], p->name, 0);
	} else {
		*moved = true;
		if (fsync(sp->dir[a]) != 0)
			rc = status_set(st, EX_TEMPFAIL, "cannot fsync %s/%s: %s",
			    sp->cfg->queue_dir, area_names[a], strerror(errno));
	}
	pending_release(p);
	return rc;
}

/* Removes area/id (its lock is held) and makes that durable: a removal
 * lost in a crash would send the message again. */
int
entry_remove(struct spool *sp, enum area a, const char *id, struct status *st)
{
	if (unlinkat(sp->dir[a], id, 0) != 0 || fsync(sp->dir[a]) != 0)
		return status_set(st, EX_TEMPFAIL, "cannot remove %s/%s/%s: %s", sp->cfg->queue_dir,
		    area_names[a], id, strerror(errno));
	return EX_OK;
}

/*
 * Opens area/id and takes its lock. The lock lives on the file's inode, and
 * the file is only ever replaced (rename) or removed by the holder of that
 * lock. So once we hold the lock and the name still leads to our inode, the
 * entry is ours until fd is closed. EX_NOINPUT: no such entry (any more);
 * EX_TEMPFAIL: another process holds it (with wait false), or an error.
 */
int
entry_lock(struct spool *sp, enum area a, const char *id, bool wait, int *fdp,
    struct status *st)
{
	struct stat fs, ns;
	int fd, tries, err;

	*fdp = -1;
	if (sp->dir[a] < 0)
		return status_set(st, EX_NOINPUT, "no message %s in %s", id, area_names[a]);
	for (tries = 0; tries < 100; tries++) {
		/* O_NONBLOCK: a FIFO planted under an id must not stop the queue */
		fd = openat(sp->dir[a], id, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
		if (fd < 0)
			return status_set(st, errno == ENOENT ? EX_NOINPUT : EX_TEMPFAIL,
			    "cannot open %s/%s/%s: %s", sp->cfg->queue_dir, area_names[a], id,
			    strerror(errno));
		if (flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB)) != 0) {
			err = errno;
			close(fd);
			if (err == EWOULDBLOCK)
				return status_set(st, EX_TEMPFAIL,
				    "message %s is being delivered or changed by another acsmail", id);
			return status_set(st, EX_TEMPFAIL, "cannot lock %s/%s/%s: %s",
			    sp->cfg->queue_dir, area_names[a], id, strerror(err));
		}
		if (fstat(fd, &fs) != 0 || !S_ISREG(fs.st_mode)) {
			close(fd);
			return status_set(st, EX_TEMPFAIL, "%s/%s/%s is not a regular file",
			    sp->cfg->queue_dir, area_names[a], id);
		}
		if (fstatat(sp->dir[a], id, &ns, AT_SYMLINK_NOFOLLOW) != 0) {
			err = errno;
			close(fd);
			return status_set(st, err == ENOENT ? EX_NOINPUT : EX_TEMPFAIL,
			    "message %s is gone: %s", id, strerror(err));
		}
		if (fs.st_ino == ns.st_ino && fs.st_dev == ns.st_dev) {
			*fdp = fd;
			return EX_OK;
		}
		close(fd);	/* replaced while we waited: the new file's lock is the one */
	}
	return status_set(st, EX_TEMPFAIL, "message %s keeps changing under us", id);
}

/* "<addr>" as written by entry_put */
static char *
unbracket(const char *v)
{
	size_t n = strlen(v);

	if (n < 2 || v[0] != '<' || v[n - 1] != '>')
		return NULL;
	return xstrndup(v + 1, n - 2);
}

static bool
parse_number(const char *v, intmax_t *out)
{
	char *end;

	if (*v < '0' || *v > '9')
		return false;
	errno = 0;
	*out = strtoimax(v, &end, 10);
	return errno == 0 && *end == '\0';
}

/* One header line into e; NULL, or why the file is damaged. */
static const char *
entry_parse_line(struct entry *e, const char *id, char *line)
{
	char *value = strchr(line, ' '), *addr;
	intmax_t n;

	if (value != NULL)
		*value++ = '\0';
	else
		value = line + strlen(line);
	if (strcmp(line, "id") == 0) {
		if (strcmp(value, id) != 0)
			return "its id does not match its name";
		str_copy(e->id, sizeof(e->id), value);
	} else if (strcmp(line, "created") == 0 || strcmp(line, "attempts") == 0 ||
	    strcmp(line, "next-attempt") == 0) {
		if (!parse_number(value, &n))
			return "a number is not a number";
		if (line[0] == 'c')
			e->created = (time_t)n;
		else if (line[0] == 'a')
			e->attempts = n > ATTEMPTS_MAX ? ATTEMPTS_MAX : (long)n;
		else
			e->next_attempt = (time_t)n;
	} else if (strcmp(line, "last-reply") == 0) {
		entry_set_reply(e, value);
	} else if (strcmp(line, "sender") == 0 || strcmp(line, "rcpt") == 0) {
		if ((addr = unbracket(value)) == NULL)
			return "an address is not in <>";
		if (line[0] == 's') {
			free(e->env.sender);
			e->env.sender = addr;
		} else {
			strlist_add_owned(&e->env.rcpts, addr);
			strlist_add(&e->replies, "");
		}
	} else if (strcmp(line, "reply") == 0) {
		if (e->replies.n == 0)
			return "a reply comes before any recipient";
		free(e->replies.v[e->replies.n - 1]);
		e->replies.v[e->replies.n - 1] = xstrdup(value);
	} else if (strcmp(line, "notify") == 0) {
		free(e->env.dsn_notify);
		e->env.dsn_notify = xstrdup(value);
	} else if (strcmp(line, "ret") == 0) {
		free(e->env.dsn_ret);
		e->env.dsn_ret = xstrdup(value);
	} else if (strcmp(line, "envid") == 0) {
		free(e->env.dsn_envid);
		e->env.dsn_envid = xstrdup(value);
	} else if (strcmp(line, "body") == 0) {
		e->env.eightbit = strcmp(value, "8bitmime") == 0;
	} else if (strcmp(line, "smtputf8") == 0) {
		e->env.smtputf8 = strcmp(value, "yes") == 0;
	}
	/* other keys are for later versions, which may add optional ones */
	return NULL;
}

/*
 * Reads the header of the queue file open on fd (named id) into e; the
 * message is not read: *body_off is where it starts, *body_size its length.
 * e is always safe to entry_free afterwards.
 */
int
entry_read(int fd, const char *id, struct entry *e, off_t *body_off, off_t *body_size,
    struct status *st)
{
	const char *why = NULL;
	char *line = NULL, want[64];
	size_t cap = 0;
	ssize_t len;
	struct stat sb;
	bool first = true, ended = false;
	FILE *fp;
	int dfd;

	memset(e, 0, sizeof(*e));
	e->created = -1;
	/* a second descriptor: closing the stream must not release fd's lock */
	dfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (dfd < 0 || (fp = fdopen(dfd, "r")) == NULL) {
		if (dfd >= 0)
			close(dfd);
		return status_set(st, EX_TEMPFAIL, "cannot read queue file %s: %s", id,
		    strerror(errno));
	}
	snprintf(want, sizeof(want), "%s %d", QUEUE_FORMAT, QUEUE_VERSION);
	if (fseeko(fp, 0, SEEK_SET) != 0)
		why = strerror(errno);
	while (why == NULL && (len = getline(&line, &cap, fp)) > 0) {
		if (len > LINE_MAX_LEN || line[len - 1] != '\n') {
			why = "a header line is too long or cut off";
			break;
		}
		line[--len] = '\0';
		if (str_has_ctl(line)) {
			why = "a header line holds a control character";
		} else if (first) {
			if (strcmp(line, want) != 0)
				why = strncmp(line, QUEUE_FORMAT " ", sizeof(QUEUE_FORMAT)) == 0 ?
				    "it is in a format this acsmail does not read" :
				    "it is not an acsmail queue file";
			first = false;
		} else if (len == 0) {
			ended = true;
			break;
		} else {
			why = entry_parse_line(e, id, line);
		}
	}
	if (why == NULL && ferror(fp))
		why = strerror(errno);
	if (why == NULL && !ended)
		why = "its header has no end";
	if (why == NULL && (e->id[0] == '\0' || e->created < 0 || e->env.sender == NULL))
		why = "its header lacks the id, created or sender line";
	if (why == NULL) {
		*body_off = ftello(fp);
		if (*body_off < 0 || fstat(fd, &sb) != 0)
			why = strerror(errno);
		else
			*body_size = sb.st_size - *body_off;
	}
	if (e->last_reply == NULL)
		e->last_reply = xstrdup("");
	if (e->env.sender == NULL)
		e->env.sender = xstrdup("");
	free(line);
	fclose(fp);
	if (why != NULL)
		return status_set(st, EX_DATAERR, "queue file %s is damaged: %s", id, why);
	return EX_OK;
}

/* ---- the message part as a stream of its own ---- */

struct view {
	int fd;
	off_t base, size, pos;
};

static ssize_t
view_read(void *cookie, char *buf, size_t n)
{
	struct view *v = cookie;
	ssize_t got;

	if (v->pos >= v->size)
		return 0;
	if ((off_t)n > v->size - v->pos)
		n = (size_t)(v->size - v->pos);
	got = pread(v->fd, buf, n, v->base + v->pos);
	if (got > 0)
		v->pos += got;
	return got;
}

static int
view_seek(void *cookie, off64_t *off, int whence)
{
	struct view *v = cookie;
	off_t to;

	switch (whence) {
	case SEEK_SET:
		to = *off;
		break;
	case SEEK_CUR:
		to = v->pos + *off;
		break;
	case SEEK_END:
		to = v->size + *off;
		break;
	default:
		errno = EINVAL;
		return -1;
	}
	if (to < 0) {
		errno = EINVAL;
		return -1;
	}
	v->pos = to;
	*off = to;
	return 0;
}

static int
view_close(void *cookie)
{
	free(cookie);
	return 0;
}

/* The message of a queue file as a read-only stream: offset 0 is its first
 * octet, EOF its last, whatever the reader seeks to. fd stays open. */
FILE *
message_view(int fd, off_t base, off_t size)
{
	cookie_io_functions_t io = { .read = view_read, .seek = view_seek, .close = view_close };
	struct view *v = xmalloc(sizeof(*v));
	FILE *fp;

	*v = (struct view){ .fd = fd, .base = base, .size = size, .pos = 0 };
	fp = fopencookie(v, "r", io);
	if (fp == NULL)
		free(v);
	return fp;
}

/* ---- the failed area ---- */

/*
 * Writes e into tmp/ for failed/<e->id>. When that entry exists already (a
 * message whose recipients failed at different times), it is locked and its
 * recipients are merged into e, so the rename replaces it with the union.
 */
int
failed_prepare(struct spool *sp, struct entry *e, FILE *msg, off_t size, struct pending *p,
    struct status *st)
{
	struct entry old;
	off_t off, osize;
	size_t i;
	int rc;

	p->lockfd = -1;
	p->ready = false;
	rc = entry_lock(sp, AREA_FAILED, e->id, true, &p->lockfd, st);
	if (rc == EX_OK) {
		if (entry_read(p->lockfd, e->id, &old, &off, &osize, st) == EX_OK) {
			for (i = 0; i < old.env.rcpts.n; i++)
				if (!strlist_has(&e->env.rcpts, old.env.rcpts.v[i]))
					entry_add_rcpt(e, old.env.rcpts.v[i], old.replies.v[i]);
			if (old.created < e->created)
				e->created = old.created;
			if (old.attempts > e->attempts)
				e->attempts = old.attempts;
		} else {
			/* the damaged file stays for a person to look at */
			log_line(LOG_ERR, "queue: %s; keeping this failure under a new id", st->text);
			pending_release(p);
			queue_new_id(e->id);
		}
		entry_free(&old);
	} else if (rc != EX_NOINPUT) {
		return rc;
	}
	status_clear(st);
	rc = entry_write_tmp(sp, e, msg, size, p, st);
	if (rc != EX_OK)
		pending_release(p);
	return rc;
}

/* ---- storing ---- */

static int
store(const struct config *cfg, enum area a, const char *id, const struct envelope *env,
    FILE *msg, off_t size, const char *reason, long attempts, time_t next_attempt,
    struct status *st)
{
	struct pending p = { .lockfd = -1 };
	struct spool sp;
	struct entry e;
	bool moved;
	size_t i;
	int rc;

	if (!id_valid(id))
		return status_set(st, EX_SOFTWARE, "cannot queue under the invalid id \"%.40s\"", id);
	if (a == AREA_QUEUE && env->rcpts.n == 0)
		return status_set(st, EX_SOFTWARE, "cannot queue message %s: no recipients", id);
	rc = spool_open(cfg, true, &sp, st);
	if (rc != EX_OK)
		return rc;
	entry_init(&e, id, env, reason);
	e.created = time(NULL);
	e.attempts = attempts;
	e.next_attempt = next_attempt > 0 ? next_attempt : 0;
	for (i = 0; i < env->rcpts.n; i++)
		entry_add_rcpt(&e, env->rcpts.v[i], "");
	rc = entry_check(&e, st);
	if (rc == EX_OK)
		rc = a == AREA_FAILED ? failed_prepare(&sp, &e, msg, size, &p, st) :
		    entry_write_tmp(&sp, &e, msg, size, &p, st);
	if (rc == EX_OK) {
		rc = pending_commit(&sp, &p, a, e.id, &moved, st);
		/* renamed but not durable: the caller hears "not queued", so it must not stay */
		if (rc != EX_OK && moved)
			unlinkat(sp.dir[a], e.id, 0);
	}
	entry_free(&e);
	spool_close(&sp);
	return rc;
}

int
queue_store(const struct config *cfg, const char *id, const struct envelope *env,
    FILE *msg, off_t size, const char *reason, time_t next_attempt, struct status *st)
{
	return store(cfg, AREA_QUEUE, id, env, msg, size, reason, 0, next_attempt, st);
}

int
queue_store_deferred(const struct config *cfg, const char *id, const struct envelope *env,
    FILE *msg, off_t size, const char *reason, struct status *st)
{
	return store(cfg, AREA_QUEUE, id, env, msg, size, reason, 1,
	    time(NULL) + queue_backoff(1), st);
}

int
queue_store_failed(const struct config *cfg, const char *id, const struct envelope *env,
    FILE *msg, off_t size, const char *reason, struct status *st)
{
	return store(cfg, AREA_FAILED, id, env, msg, size, reason, 1, 0, st);
}

