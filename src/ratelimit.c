/* ratelimit.c */
#include "config.h"
