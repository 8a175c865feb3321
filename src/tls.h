#ifndef ACSMAIL_TLS_H
#define ACSMAIL_TLS_H
#endif
