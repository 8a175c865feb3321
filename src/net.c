/* net.c */
#include "config.h"
