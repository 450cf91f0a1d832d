/* Text forms of addresses for reports and file names. */
#ifndef OPENWFP_REPLAY_ADDR_H
#define OPENWFP_REPLAY_ADDR_H

#include <stddef.h>
#include <stdint.h>

#define OWFP_ADDR_TEXT 46 /* INET6_ADDRSTRLEN */

void owfp_addr_text(uint8_t ip_version, const uint8_t *addr, char *buf, size_t n);

#endif
