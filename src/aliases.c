/* aliases.c */
#include "config.h"
