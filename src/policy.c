/* policy.c */
#include "config.h"
