/* Protocol numbers and big-endian reads the replay's decoders and writers
 * share. */
#ifndef OPENWFP_REPLAY_PROTO_H
#define OPENWFP_REPLAY_PROTO_H

#include <stdint.h>

#define PROTO_TCP 6
#define IP6_HOPOPTS 0
#define IP6_ROUTING 43
#define IP6_FRAGMENT 44
#define IP6_AH 51
#define IP6_DSTOPTS 60

static inline uint16_t be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

#endif
