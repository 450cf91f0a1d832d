#include "proxy/endpoint.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse_port(const char *s, uint16_t *port)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || *s == '-' || *s == '+' || v > 65535)
        return -1;
    *port = (uint16_t)v;
    return 0;
}

int owfp_endpoint_parse(const char *text, struct owfp_endpoint *ep)
{
    char host[64];
    const char *colon;
    memset(ep, 0, sizeof(*ep));
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (!close || close[1] != ':' || (size_t)(close - text - 1) >= sizeof(host))
            return -1;
        memcpy(host, text + 1, (size_t)(close - text - 1));
        host[close - text - 1] = 0;
        colon = close + 1;
    } else {
        colon = strrchr(text, ':');
        if (!colon || (size_t)(colon - text) >= sizeof(host) || memchr(text, ':', (size_t)(colon - text)))
            return -1;
        memcpy(host, text, (size_t)(colon - text));
        host[colon - text] = 0;
    }
    uint16_t port;
    if (parse_port(colon + 1, &port))
        return -1;
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ep->ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ep->ss;
    if (text[0] != '[' && inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        ep->len = sizeof(*v4);
        return 0;
    }
    if (text[0] == '[' && inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        ep->len = sizeof(*v6);
        return 0;
    }
    return -1;
}

static const uint8_t v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

uint8_t owfp_endpoint_bytes(const struct sockaddr *sa, uint8_t addr[16], uint16_t *port)
{
    memset(addr, 0, 16);
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)sa;
        memcpy(addr, &v4->sin_addr, 4);
        *port = ntohs(v4->sin_port);
        return 4;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)sa;
        *port = ntohs(v6->sin6_port);
        if (memcmp(&v6->sin6_addr, v4_mapped, 12) == 0) {
            memcpy(addr, (const uint8_t *)&v6->sin6_addr + 12, 4);
            return 4;
        }
        memcpy(addr, &v6->sin6_addr, 16);
        return 6;
    }
    *port = 0;
    return 0;
}

void owfp_endpoint_text(const struct sockaddr *sa, char *buf, size_t n)
{
    uint8_t a[16];
    uint16_t port;
    char host[INET6_ADDRSTRLEN];
    uint8_t v = owfp_endpoint_bytes(sa, a, &port);
    if (!v || !inet_ntop(v == 4 ? AF_INET : AF_INET6, a, host, sizeof(host))) {
        snprintf(buf, n, "?");
        return;
    }
    snprintf(buf, n, v == 4 ? "%s:%u" : "[%s]:%u", host, port);
}
