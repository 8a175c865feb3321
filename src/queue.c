/* queue.c */
#include "config.h"
