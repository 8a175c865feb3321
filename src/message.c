/* message.c */
#include "config.h"
