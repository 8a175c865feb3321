/* tls.c */
#include "config.h"
