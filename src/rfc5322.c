/* rfc5322.c */
#include "config.h"
