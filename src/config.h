/* config.h: /etc/acsmail.conf (SPEC §8) read with libconfuse */
#ifndef ACSMAIL_CONFIG_H
#define ACSMAIL_CONFIG_H

#include <stdbool.h>

#include "status.h"
#include "util.h"

#define ACSMAIL_DEFAULT_CONFIG SYSCONFDIR "/acsmail.conf"

enum tls_mode { TLS_STARTTLS, TLS_IMPLICIT };
enum rewrite_from { REWRITE_AUTO, REWRITE_NEVER };
enum delivery { DELIVERY_FOREGROUND, DELIVERY_BACKGROUND, DELIVERY_QUEUE };

struct config {
	char *path;		/* the file this came from */
	char *server;
	long port;
	enum tls_mode tls;
	char *tls_ca_file;	/* "" for the system trust store */
	char *username;		/* username, or resource.app.tenant joined */
	char *password;		/* "" when password_file is used */
	char *password_file;
	char *from;
	char *from_name;
	struct strlist allowed_from;
	enum rewrite_from rewrite_from;
	char *aliases;
	struct strlist local_domains;	/* always holds localhost and the host's names */
	char *local_recipient;
	char *qualify_domain;		/* the host's FQDN when not set */
	enum delivery delivery;
	char *queue_dir;
	long queue_lifetime;
	long max_recipients;
	long max_size;
	long rate_per_minute;
	long rate_per_hour;
	long timeout;
	char *log;		/* "syslog", "none" or a file path */
};

/* Reads and validates the file. Errors (EX_CONFIG) name the file, the line
 * and the key; a file holding a password that others can read is refused. */
int config_load(const char *path, struct config *cfg, struct status *st);

/* The client secret: password, or the first line of password_file (taken
 * raw; refused when others can read the file). The caller frees it with
 * config_secret_free, which wipes it. */
int config_secret(const struct config *cfg, char **secret, struct status *st);
void config_secret_free(char *secret);

/* true when addr (local@domain) is `from` or listed in allowed_from */
bool config_sender_allowed(const struct config *cfg, const char *addr);
/* true when domain is one of local_domains */
bool config_domain_is_local(const struct config *cfg, const char *domain);

void config_free(struct config *cfg);
#endif
