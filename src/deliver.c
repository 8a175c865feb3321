/* deliver.c */
#include "config.h"
