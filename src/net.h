#ifndef ACSMAIL_NET_H
#define ACSMAIL_NET_H
#endif
