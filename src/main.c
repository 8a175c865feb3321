/* main.c: mode dispatch */
#include "config.h"
int main(void) { return 0; }
