/* The optional outputs (outputs.h). */
#include "replay/outputs.h"

#include "replay/pcap_out.h"
#include "replay/stream_files.h"

int owfp_outputs_start(struct owfp_replay *r)
{
    if (r->opt.write_streams && !(r->files = owfp_stream_files_new(r->opt.write_streams)))
        return -1;
    if (r->opt.write_pcap && !(r->pcap = owfp_pcap_out_new(r->opt.write_pcap)))
        return -1;
    return 0;
}

int owfp_outputs_stop(struct owfp_replay *r)
{
    int st = owfp_stream_files_free(r->files);
    int pst = owfp_pcap_out_free(r->pcap);
    r->files = NULL;
    r->pcap = NULL;
    return st ? st : pst;
}

void owfp_outputs_frame_begin(struct owfp_replay *r, int dlt, const uint8_t *frame,
                              uint32_t caplen, uint32_t wirelen, uint64_t ts_us,
                              const struct owfp_pkt *p)
{
    if (r->pcap)
        owfp_pcap_out_frame_begin(r->pcap, dlt, frame, caplen, wirelen, ts_us, p);
}

void owfp_outputs_frame_end(struct owfp_replay *r, struct owfp_conn *c)
{
    if (r->pcap)
        owfp_pcap_out_frame_end(r->pcap, c);
}

void owfp_outputs_open(struct owfp_replay *r, struct owfp_rconn *rc)
{
    if (r->files)
        owfp_stream_files_open(r->files, rc);
    if (r->pcap)
        owfp_pcap_out_open(r->pcap, owfp_rconn_conn(rc));
}

void owfp_outputs_bytes(struct owfp_replay *r, struct owfp_rconn *rc, int side,
                        const uint8_t *p, size_t n, bool injected)
{
    (void)injected;
    if (r->files)
        owfp_stream_files_write(r->files, rc, side, p, n);
    if (r->pcap)
        owfp_pcap_out_bytes(r->pcap, owfp_rconn_conn(rc), side, p, n);
}

void owfp_outputs_gap(struct owfp_replay *r, struct owfp_rconn *rc, int side, uint64_t n)
{
    (void)r, (void)rc, (void)side, (void)n;
}

void owfp_outputs_fin(struct owfp_replay *r, struct owfp_rconn *rc, int side)
{
    if (r->pcap)
        owfp_pcap_out_fin(r->pcap, owfp_rconn_conn(rc), side);
}

void owfp_outputs_reset(struct owfp_replay *r, struct owfp_rconn *rc)
{
    /* A RST from the capture is written as captured, at its own frame; only
     * a reset the engine decided needs RSTs made up. */
    if (r->pcap && (rc->dropped || rc->blocked))
        owfp_pcap_out_reset(r->pcap, owfp_rconn_conn(rc));
}

void owfp_outputs_end(struct owfp_replay *r, struct owfp_rconn *rc)
{
    if (r->files)
        owfp_stream_files_close(r->files, rc);
}

void owfp_outputs_forget(struct owfp_replay *r, struct owfp_conn *c)
{
    if (r->pcap)
        owfp_pcap_out_forget(r->pcap, c);
}
