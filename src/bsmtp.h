#ifndef ACSMAIL_BSMTP_H
#define ACSMAIL_BSMTP_H
#endif
