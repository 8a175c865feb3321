/* smtp.c */
#include "config.h"
