/* Protocol numbers the replay's decoders and writers share. */
#ifndef OPENWFP_REPLAY_PROTO_H
#define OPENWFP_REPLAY_PROTO_H

#define PROTO_TCP 6
#define IP6_HOPOPTS 0
#define IP6_ROUTING 43
#define IP6_FRAGMENT 44
#define IP6_AH 51
#define IP6_DSTOPTS 60

#endif
