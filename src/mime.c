/* mime.c */
#include "config.h"
