/* envelope.c */
#include <stdlib.h>

#include "envelope.h"

void
envelope_free(struct envelope *env)
{
	free(env->sender);
	strlist_free(&env->rcpts);
	free(env->dsn_notify);
	free(env->dsn_ret);
	free(env->dsn_envid);
	env->sender = env->dsn_notify = env->dsn_ret = env->dsn_envid = NULL;
}
