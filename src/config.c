/* config.c */
#include "config.h"
