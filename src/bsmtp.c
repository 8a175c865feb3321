/* bsmtp.c */
#include "config.h"
