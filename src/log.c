/* log.c */
#include "config.h"
