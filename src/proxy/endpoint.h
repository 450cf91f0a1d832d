/* Socket addresses as the proxy's options and logs spell them, and as the
 * engine wants them. */
#ifndef OPENWFP_PROXY_ENDPOINT_H
#define OPENWFP_PROXY_ENDPOINT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct owfp_endpoint {
    struct sockaddr_storage ss;
    socklen_t len;
};

/* "1.2.3.4:80", "[::1]:80", "[::]:80", "0.0.0.0:80". Returns 0 or -1. */
int owfp_endpoint_parse(const char *text, struct owfp_endpoint *ep);

/* Text form "1.2.3.4:80" or "[::1]:80" (v4-mapped IPv6 shown as IPv4). */
#define OWFP_ENDPOINT_TEXT 56
void owfp_endpoint_text(const struct sockaddr *sa, char *buf, size_t n);

/* The address as the engine takes it (network order, IPv4 in the first four
 * bytes; v4-mapped IPv6 becomes IPv4) and the port in host order. Returns
 * the IP version, 4 or 6, or 0 for another family. */
uint8_t owfp_endpoint_bytes(const struct sockaddr *sa, uint8_t addr[16], uint16_t *port);

#endif
