/* queue.c: the spool under queue_dir (its format is doc/queue.md) and the queue runner */
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
#include "queue.h"
#include "ratelimit.h"
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

enum area { AREA_TMP, AREA_QUEUE, AREA_FAILED, AREA_COUNT };

static const char *const area_names[AREA_COUNT] = { "tmp", "queue", "failed" };

/* The open directories of one queue_dir. */
struct spool {
	const struct config *cfg;
	int dir[AREA_COUNT];		/* -1 for an area that does not exist (yet) */
};

/* A queue file's header, in memory; the message stays on disk. */
struct entry {
	char id[QUEUE_ID_MAX];
	time_t created;
	long attempts;
	time_t next_attempt;
	char *last_reply;
	struct envelope env;
	struct strlist replies;		/* one per env.rcpts: its own last reply, "" for none */
};

/* A file written and fsync'd in tmp/, waiting to be renamed into its area. */
struct pending {
	char name[QUEUE_ID_MAX + 32];
	bool ready;
	int lockfd;			/* the failed entry it replaces, locked until then; or -1 */
};

/* What one pass of the runner has seen. */
struct pass {
	bool stop;			/* the relay is unreachable or the budget used up */
	bool held;			/* and the message that found it so was not tried */
	char why[600];
};

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
static bool
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
static void
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
static void
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
static void
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

static void
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
static int
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
static int
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
static void
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

static void
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

static void
entry_init_like(struct entry *e, const struct entry *from)
{
	entry_init(e, from->id, &from->env, from->last_reply);
	e->created = from->created;
	e->attempts = from->attempts;
	e->next_attempt = from->next_attempt;
}

static void
entry_add_rcpt(struct entry *e, const char *rcpt, const char *reply)
{
	strlist_add(&e->env.rcpts, rcpt);
	strlist_add(&e->replies, reply != NULL ? reply : "");
}

static void
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
static int
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

static void
pending_discard(struct spool *sp, struct pending *p)
{
	if (p->ready)
		unlinkat(sp->dir[AREA_TMP], p->name, 0);
	pending_release(p);
}

/* Renames tmp/name to area/id, then fsyncs the area: once this returns
 * EX_OK the entry survives a crash. *moved tells whether the rename was done. */
static int
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
static int
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
static int
entry_lock(struct spool *sp, enum area a, const char *id, bool wait, int *fdp,
    struct status *st)
{
	struct stat fs, ns;
	int fd, tries, err;

	*fdp = -1;
	if (sp->dir[a] < 0)
		return status_set(st, EX_NOINPUT, "no message %s in %s", id, area_names[a]);
	for (tries = 0; tries < 100; tries++) {
		fd = openat(sp->dir[a], id, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
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
			e->attempts = n > LONG_MAX ? LONG_MAX : (long)n;
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
static int
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
static FILE *
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
static int
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

/* ---- the runner ---- */

static bool
has_substring(const char *hay, const char *needle)
{
	return needle == NULL || *needle == '\0' || strcasestr(hay, needle) != NULL;
}

static bool
filter_match(const struct queue_filter *f, const struct entry *e)
{
	size_t i;

	if (f == NULL)
		return true;
	if (!has_substring(e->id, f->id) || !has_substring(e->env.sender, f->sender))
		return false;
	if (f->recipient == NULL || *f->recipient == '\0')
		return true;
	for (i = 0; i < e->env.rcpts.n; i++)
		if (has_substring(e->env.rcpts.v[i], f->recipient))
			return true;
	return false;
}

/* The deferred recipients in keep that have outlived queue_lifetime go to fail. */
static void
expire(const struct config *cfg, struct entry *keep, struct entry *fail)
{
	char span[64], *why;
	size_t i;

	format_span(span, sizeof(span), cfg->queue_lifetime > 0 ? cfg->queue_lifetime : 0);
	for (i = 0; i < keep->env.rcpts.n; i++) {
		why = xasprintf("expired after %s: last reply %s", span,
		    keep->replies.v[i][0] != '\0' ? keep->replies.v[i] : "(none)");
		entry_add_rcpt(fail, keep->env.rcpts.v[i], why);
		free(why);
	}
	strlist_free(&keep->env.rcpts);
	strlist_free(&keep->replies);
}

/* Moves every recipient of from into to. */
static void
take_rcpts(struct entry *to, struct entry *from)
{
	size_t i;

	for (i = 0; i < from->env.rcpts.n; i++)
		entry_add_rcpt(to, from->env.rcpts.v[i], from->replies.v[i]);
	strlist_free(&from->env.rcpts);
	strlist_free(&from->replies);
}

/*
 * After a delivery attempt of e (locked): the sent recipients go, the refused
 * ones go to the failed area, the deferred ones stay with backoff (or until
 * the rate budget reopens, not counted as an attempt) unless the message has
 * outlived queue_lifetime. Both new files are written and fsync'd first and
 * renamed after, failed area first: a crash in between at worst retries.
 */
static void
settle(struct spool *sp, struct deliver_ctx *ctx, const struct entry *e, FILE *msg,
    off_t size, const struct rcpt_outcome *out, const char *reply, const struct status *st,
    bool unreachable)
{
	const struct config *cfg = sp->cfg;
	struct pending pk = { .lockfd = -1 }, pf = { .lockfd = -1 };
	struct entry keep, fail;
	struct status wst;
	bool moved;
	size_t i, nsent = 0;
	time_t now = time(NULL), reopens;
	double delay = difftime(now, e->created);
	const char *r;

	entry_init_like(&keep, e);
	entry_init_like(&fail, e);
	for (i = 0; i < e->env.rcpts.n; i++) {
		r = out[i].reply[0] != '\0' ? out[i].reply : st->text[0] != '\0' ? st->text :
		    "not tried";
		if (out[i].state == RCPT_SENT)
			nsent++;
		else if (out[i].state == RCPT_FAILED &&
		    !(unreachable && strncmp(r, ctx->open_status.text, strlen(r)) == 0))
			entry_add_rcpt(&fail, e->env.rcpts.v[i], r);
		else	/* deferred, not reached, or no session: no verdict on the message */
			entry_add_rcpt(&keep, e->env.rcpts.v[i], r);
	}
	if (nsent > 0)
		log_outcome(e->id, e->env.sender, nsent, size, "sent", reply, delay);
	if (keep.env.rcpts.n > 0 &&
	    now - e->created >= (cfg->queue_lifetime > 0 ? cfg->queue_lifetime : 0))
		expire(cfg, &keep, &fail);

	status_clear(&wst);
	if (fail.env.rcpts.n > 0) {
		fail.attempts = e->attempts + 1;
		fail.next_attempt = 0;
		entry_set_reply(&fail, fail.replies.v[0]);
		if (failed_prepare(sp, &fail, msg, size, &pf, &wst) != EX_OK) {
			log_line(LOG_ERR, "id=%s cannot be moved to the failed area (%s): "
			    "its refused recipients stay queued", e->id, wst.text);
			take_rcpts(&keep, &fail);
		}
	}
	if (keep.env.rcpts.n > 0) {
		reopens = ratelimit_next(cfg);
		entry_set_reply(&keep, keep.replies.v[0]);
		if (reopens > 0) {
			keep.next_attempt = reopens;	/* held back, not a failed attempt */
		} else {
			keep.attempts = e->attempts + 1;
			keep.next_attempt = now + queue_backoff(keep.attempts);
		}
		if (entry_write_tmp(sp, &keep, msg, size, &pk, &wst) != EX_OK) {
			log_line(LOG_ERR, "id=%s cannot be updated (%s): the recipients it was "
			    "sent to may get it again", e->id, wst.text);
			pending_discard(sp, &pf);
			goto out;
		}
	}

	if (pf.ready) {
		if (pending_commit(sp, &pf, AREA_FAILED, fail.id, &moved, &wst) == EX_OK) {
			log_outcome(e->id, e->env.sender, fail.env.rcpts.n, size, "failed",
			    fail.last_reply, delay);
		} else if (!moved) {
			/* the refused recipients must not be lost with the queue file */
			log_line(LOG_ERR, "id=%s: %s: left as it was; the recipients it was "
			    "sent to may get it again", e->id, wst.text);
			pending_discard(sp, &pk);
			goto out;
		}
	}
	if (pk.ready) {
		if (pending_commit(sp, &pk, AREA_QUEUE, e->id, &moved, &wst) == EX_OK)
			log_outcome(e->id, e->env.sender, keep.env.rcpts.n, size, "deferred",
			    keep.last_reply, delay);
		else
			log_line(LOG_ERR, "id=%s: %s", e->id, wst.text);
	} else if (entry_remove(sp, AREA_QUEUE, e->id, &wst) != EX_OK) {
		log_line(LOG_ERR, "id=%s: %s: it may be sent again", e->id, wst.text);
	}
out:
	entry_free(&keep);
	entry_free(&fail);
}

/* One queued message: lock, check, deliver, settle; the lock goes last. */
static void
run_one(struct spool *sp, struct deliver_ctx *ctx, const char *id,
    const struct queue_filter *f, struct pass *p)
{
	const struct config *cfg = sp->cfg;
	struct rcpt_outcome *out;
	struct entry e;
	struct status st;
	char reply[512] = "";
	off_t off, size;
	time_t reopens;
	FILE *msg;
	int fd, opens, rc;

	if (f != NULL && !has_substring(id, f->id))
		return;
	status_clear(&st);
	/* locked: another runner or a background delivery has it; gone: delivered */
	if (entry_lock(sp, AREA_QUEUE, id, false, &fd, &st) != EX_OK)
		return;
	if (entry_read(fd, id, &e, &off, &size, &st) != EX_OK || e.env.rcpts.n == 0) {
		log_line(LOG_ERR, "queue: %s", st.code != EX_OK ? st.text :
		    "a queue file without recipients");
		goto out;
	}
	if (((f == NULL || !f->flush) && e.next_attempt > time(NULL)) || !filter_match(f, &e))
		goto out;
	reopens = ratelimit_next(cfg);
	if (reopens > 0) {
		char at[32];

		format_clock(at, sizeof(at), reopens);
		p->stop = p->held = true;
		snprintf(p->why, sizeof(p->why),
		    "the rate budget (or a throttle pause) holds sending until %s", at);
		goto out;
	}
	msg = message_view(fd, off, size);
	if (msg == NULL) {
		log_line(LOG_ERR, "queue: %s: cannot read the message: %s", id, strerror(errno));
		goto out;
	}
	out = xcalloc(e.env.rcpts.n, sizeof(*out));
	opens = ctx->open_failures;
	rc = deliver_message(ctx, &e.env, msg, size, out, reply, sizeof(reply), &st);
	settle(sp, ctx, &e, msg, size, out, reply, &st, ctx->open_failures > opens);
	if (ctx->open_failures > opens) {
		p->stop = true;
		snprintf(p->why, sizeof(p->why), "the relay cannot be used: %s",
		    ctx->open_status.text);
	} else if (rc == EX_CONFIG) {
		p->stop = true;
		snprintf(p->why, sizeof(p->why), "%s", st.text);
	}
	free(out);
	fclose(msg);
out:
	entry_free(&e);
	close(fd);
}

int
queue_run(const struct config *cfg, struct deliver_ctx *ctx, const struct queue_filter *f,
    struct status *st)
{
	struct strlist ids = {0};
	struct pass p = {0};
	struct spool sp;
	size_t i, left;
	int rc;

	rc = spool_open(cfg, true, &sp, st);
	if (rc != EX_OK)
		return rc;
	clean_tmp(&sp, time(NULL));
	rc = list_area(&sp, AREA_QUEUE, &ids, st);
	for (i = 0; rc == EX_OK && i < ids.n; i++) {
		run_one(&sp, ctx, ids.v[i], f, &p);
		if (p.stop)
			break;
	}
	/* the rest keep their schedule: the next pass tries again, one attempt
	 * a pass instead of one a message while the relay is down */
	left = p.stop ? ids.n - i - (p.held ? 0 : 1) : 0;
	if (left > 0)
		log_line(LOG_INFO, "queue: pass ended early, %zu message%s left for the next "
		    "pass: %s", left, left == 1 ? "" : "s", p.why);
	strlist_free(&ids);
	spool_close(&sp);
	return rc;
}

/* ---- mailq ---- */

struct tally {
	size_t n, damaged;
	intmax_t bytes;
};

static void
show_entry(struct spool *sp, enum area a, const char *id, FILE *out, time_t now,
    struct tally *t)
{
	struct entry e;
	struct status st;
	char age[32], next[48];
	off_t off, size;
	size_t i;
	int fd;

	/* files are only ever replaced whole: reading needs no lock */
	fd = openat(sp->dir[a], id, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return;		/* delivered or moved while we looked */
	status_clear(&st);
	if (entry_read(fd, id, &e, &off, &size, &st) != EX_OK) {
		fprintf(out, "%s  (unreadable: %s)\n\n", id, st.text);
		t->damaged++;
		entry_free(&e);
		close(fd);
		return;
	}
	close(fd);
	t->n++;
	t->bytes += size;
	format_age(age, sizeof(age), (long)(now - e.created));
	next[0] = '\0';
	if (a == AREA_QUEUE && e.next_attempt > now) {
		char wait[32];

		format_age(wait, sizeof(wait), (long)(e.next_attempt - now));
		snprintf(next, sizeof(next), "  next try in %s", wait);
	} else if (a == AREA_QUEUE) {
		snprintf(next, sizeof(next), "  due now");
	}
	fprintf(out, "%s  %jd bytes  %s old  %ld attempt%s%s\n", e.id, (intmax_t)size, age,
	    e.attempts, e.attempts == 1 ? "" : "s", next);
	fprintf(out, "  from: <%s>\n", e.env.sender);
	for (i = 0; i < e.env.rcpts.n; i++) {
		if (e.replies.v[i][0] != '\0' && strcmp(e.replies.v[i], e.last_reply) != 0)
			fprintf(out, "  to:   <%s>  (%s)\n", e.env.rcpts.v[i], e.replies.v[i]);
		else
			fprintf(out, "  to:   <%s>\n", e.env.rcpts.v[i]);
	}
	if (e.last_reply[0] != '\0')
		fprintf(out, "  %-5s %s\n", a == AREA_FAILED ? "why:" : "last:", e.last_reply);
	fputc('\n', out);
	entry_free(&e);
}

int
queue_list(const struct config *cfg, FILE *out, struct status *st)
{
	struct strlist q = {0}, failed = {0};
	struct tally tq = {0}, tf = {0};
	struct spool sp;
	time_t now = time(NULL), held;
	size_t i;
	int rc;

	rc = spool_open(cfg, false, &sp, st);
	if (rc == EX_NOINPUT) {
		status_clear(st);
		fputs("Mail queue is empty\n", out);
		return EX_OK;
	}
	if (rc != EX_OK)
		return rc;
	rc = list_area(&sp, AREA_QUEUE, &q, st);
	if (rc == EX_OK)
		rc = list_area(&sp, AREA_FAILED, &failed, st);
	if (rc == EX_OK) {
		for (i = 0; i < q.n; i++)
			show_entry(&sp, AREA_QUEUE, q.v[i], out, now, &tq);
		if (tq.n + tq.damaged == 0)
			fputs("Mail queue is empty\n", out);
		else
			fprintf(out, "-- %zu message%s, %jd bytes in the queue\n", tq.n,
			    tq.n == 1 ? "" : "s", tq.bytes);
		if (tq.damaged > 0)
			fprintf(out, "-- %zu unreadable (see the reasons above)\n", tq.damaged);
		if (tq.n > 0 && (held = ratelimit_next(cfg)) > now) {
			char at[32];

			format_clock(at, sizeof(at), held);
			fprintf(out, "-- sending is held until %s by the rate budget or a throttle "
			    "pause\n", at);
		}
		if (failed.n > 0) {
			fputs("\nFailed:\n", out);
			for (i = 0; i < failed.n; i++)
				show_entry(&sp, AREA_FAILED, failed.v[i], out, now, &tf);
			fprintf(out, "-- %zu failed message%s, %jd bytes (acsmail --requeue ID, "
			    "--delete ID)\n", tf.n, tf.n == 1 ? "" : "s", tf.bytes);
		}
		if (fflush(out) != 0)
			rc = status_set(st, EX_IOERR, "cannot write the listing: %s", strerror(errno));
	}
	strlist_free(&q);
	strlist_free(&failed);
	spool_close(&sp);
	return rc;
}

/* ---- requeue and delete ---- */

/* failed/id (locked on fd) back into the queue as a new message, due at once. */
static int
requeue_failed(struct spool *sp, const char *id, int fd, struct status *st)
{
	struct pending p = { .lockfd = -1 };
	struct entry e;
	off_t off, size;
	size_t i;
	FILE *msg = NULL;
	int rc, tries;

	rc = entry_read(fd, id, &e, &off, &size, st);
	if (rc == EX_OK && e.env.rcpts.n == 0)
		rc = status_set(st, EX_DATAERR, "message %s has no recipients to deliver to", id);
	if (rc == EX_OK && (msg = message_view(fd, off, size)) == NULL)
		rc = status_set(st, EX_TEMPFAIL, "cannot read message %s: %s", id, strerror(errno));
	if (rc != EX_OK)
		goto out;
	/* a fresh start: a full lifetime, no backoff */
	e.created = time(NULL);
	e.attempts = 0;
	e.next_attempt = 0;
	for (i = 0; i < e.replies.n; i++)
		e.replies.v[i][0] = '\0';
	rc = entry_write_tmp(sp, &e, msg, size, &p, st);
	if (rc != EX_OK)
		goto out;
	/* never over a queued entry of the same id (its other recipients): link, not rename */
	for (tries = 0; linkat(sp->dir[AREA_TMP], p.name, sp->dir[AREA_QUEUE], e.id, 0) != 0;
	    tries++) {
		if (errno != EEXIST || tries >= 5) {
			rc = status_set(st, EX_TEMPFAIL, "cannot requeue %s: %s", id, strerror(errno));
			break;
		}
		queue_new_id(e.id);
	}
	unlinkat(sp->dir[AREA_TMP], p.name, 0);
	if (rc == EX_OK && fsync(sp->dir[AREA_QUEUE]) != 0)
		rc = status_set(st, EX_TEMPFAIL, "cannot fsync %s/queue: %s", sp->cfg->queue_dir,
		    strerror(errno));
	if (rc == EX_OK) {
		if (entry_remove(sp, AREA_FAILED, id, st) != EX_OK)
			log_line(LOG_ERR, "id=%s requeued, but %s", id, st->text);
		status_clear(st);
		if (strcmp(e.id, id) == 0)
			log_line(LOG_INFO, "id=%s requeued from the failed area", id);
		else
			log_line(LOG_INFO, "id=%s requeued from the failed area as id=%s", id, e.id);
	}
out:
	if (msg != NULL)
		fclose(msg);
	entry_free(&e);
	return rc;
}

/* A queued message becomes due at once. */
static int
requeue_queued(struct spool *sp, const char *id, struct status *st)
{
	struct pending p = { .lockfd = -1 };
	struct entry e;
	off_t off, size;
	FILE *msg = NULL;
	bool moved;
	int fd, rc;

	rc = entry_lock(sp, AREA_QUEUE, id, false, &fd, st);
	if (rc == EX_NOINPUT)
		return status_set(st, EX_NOUSER, "no message %s in the queue or the failed area", id);
	if (rc != EX_OK)
		return rc;
	rc = entry_read(fd, id, &e, &off, &size, st);
	if (rc == EX_OK && (msg = message_view(fd, off, size)) == NULL)
		rc = status_set(st, EX_TEMPFAIL, "cannot read message %s: %s", id, strerror(errno));
	if (rc == EX_OK) {
		e.next_attempt = 0;
		rc = entry_write_tmp(sp, &e, msg, size, &p, st);
	}
	if (rc == EX_OK)
		rc = pending_commit(sp, &p, AREA_QUEUE, id, &moved, st);
	if (rc == EX_OK)
		log_line(LOG_INFO, "id=%s made due at once", id);
	if (msg != NULL)
		fclose(msg);
	entry_free(&e);
	close(fd);
	return rc;
}

/* The spool, for --requeue and --delete of the message id. */
static int
spool_open_for(const struct config *cfg, const char *id, struct spool *sp, struct status *st)
{
	int rc;

	if (!id_valid(id))
		return status_set(st, EX_USAGE, "\"%.40s\" is not a queue id (letters and digits)", id);
	rc = spool_open(cfg, false, sp, st);
	if (rc == EX_NOINPUT)
		return status_set(st, EX_NOUSER, "no message %s: the queue is empty", id);
	return rc;
}

int
queue_requeue(const struct config *cfg, const char *id, struct status *st)
{
	struct spool sp;
	int fd, rc;

	if ((rc = spool_open_for(cfg, id, &sp, st)) != EX_OK)
		return rc;
	if (sp.dir[AREA_TMP] < 0 || sp.dir[AREA_QUEUE] < 0) {
		spool_close(&sp);
		rc = spool_open(cfg, true, &sp, st);
		if (rc != EX_OK)
			return rc;
	}
	rc = entry_lock(&sp, AREA_FAILED, id, false, &fd, st);
	if (rc == EX_OK) {
		rc = requeue_failed(&sp, id, fd, st);
		close(fd);
	} else if (rc == EX_NOINPUT) {
		rc = requeue_queued(&sp, id, st);
	}
	spool_close(&sp);
	return rc;
}

int
queue_delete(const struct config *cfg, const char *id, struct status *st)
{
	static const enum area areas[] = { AREA_FAILED, AREA_QUEUE };
	struct spool sp;
	size_t i, found = 0;
	int fd, rc = EX_OK;

	if ((rc = spool_open_for(cfg, id, &sp, st)) != EX_OK)
		return rc;
	for (i = 0; i < sizeof(areas) / sizeof(areas[0]) && rc == EX_OK; i++) {
		rc = entry_lock(&sp, areas[i], id, false, &fd, st);
		if (rc == EX_NOINPUT) {
			rc = EX_OK;
			continue;
		}
		if (rc == EX_OK) {
			rc = entry_remove(&sp, areas[i], id, st);
			close(fd);
			if (rc == EX_OK)
				found++;
		}
	}
	spool_close(&sp);
	if (rc != EX_OK)
		return rc;
	if (found == 0)
		return status_set(st, EX_NOUSER, "no message %s in the queue or the failed area", id);
	status_clear(st);
	log_line(LOG_INFO, "id=%s deleted by uid %ld", id, (long)getuid());
	return EX_OK;
}
