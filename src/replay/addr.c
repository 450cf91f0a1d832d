#include "replay/addr.h"

#include <arpa/inet.h>
#include <stdio.h>

void owfp_addr_text(uint8_t ip_version, const uint8_t *addr, char *buf, size_t n)
{
    if (!inet_ntop(ip_version == 4 ? AF_INET : AF_INET6, addr, buf, (socklen_t)n))
        snprintf(buf, n, "?");
}
