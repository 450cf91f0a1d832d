/* Connection and totals lines (report.h): key=value text or JSON Lines. */
#include "replay/report.h"

#include <inttypes.h>

#include "replay/addr.h"
#include "replay/decode.h"

static const char *end_name(uint8_t end)
{
    static const char *const names[] = {"none", "fin", "rst", "timeout", "reused", "capture-end",
                                        "evicted"};
    return end < sizeof(names) / sizeof(names[0]) ? names[end] : "?";
}

/* The engine's verdict on the connection, most decisive first. */
static const char *verdict(const struct owfp_rconn *rc)
{
    if (rc->blocked)
        return "blocked";
    if (rc->dropped)
        return "dropped";
    if (rc->offloaded)
        return "offloaded";
    return "permitted";
}

static uint64_t blocked_bytes(const struct owfp_rdir *d)
{
    return d->seen > d->permitted ? d->seen - d->permitted : 0;
}

static void dir_text(FILE *out, const char *name, const struct owfp_rdir *d)
{
    fprintf(out, " %s_seen=%" PRIu64 " %s_permitted=%" PRIu64 " %s_blocked=%" PRIu64
                 " %s_injected=%" PRIu64,
            name, d->seen, name, d->permitted, name, blocked_bytes(d), name, d->injected);
    if (d->gaps)
        fprintf(out, " %s_gaps=%" PRIu64 " %s_gap_bytes=%" PRIu64, name, d->gaps, name,
                d->gap_bytes);
}

static void dir_json(FILE *out, const char *name, const struct owfp_rdir *d)
{
    fprintf(out,
            ",\"%s\":{\"seen\":%" PRIu64 ",\"permitted\":%" PRIu64 ",\"blocked\":%" PRIu64
            ",\"injected\":%" PRIu64 ",\"gaps\":%" PRIu64 ",\"gap_bytes\":%" PRIu64
            ",\"refused\":%" PRIu64 ",\"fin\":%s}",
            name, d->seen, d->permitted, blocked_bytes(d), d->injected, d->gaps, d->gap_bytes,
            d->refused, d->fin_out ? "true" : "false");
}

void owfp_report_conn(FILE *out, bool json, const struct owfp_rconn *rc)
{
    const struct owfp_conn *c = owfp_rconn_conn(rc);
    int l = rc->send_side;
    char la[OWFP_ADDR_TEXT], ra[OWFP_ADDR_TEXT];
    owfp_addr_text(c->key.ip_version, owfp_conn_addr(c, l), la, sizeof(la));
    owfp_addr_text(c->key.ip_version, owfp_conn_addr(c, 1 - l), ra, sizeof(ra));
    const char *dirn = l == 0 ? "outbound" : "inbound";
    struct owfp_rdir sd, rd;
    owfp_rconn_rdir(rc, l, &sd);
    owfp_rconn_rdir(rc, 1 - l, &rd);
    const struct owfp_rdir *send = &sd, *recv = &rd;
    if (json) {
        fprintf(out,
                "{\"conn\":%" PRIu64 ",\"ip\":%u,\"local\":\"%s\",\"local_port\":%u,"
                "\"remote\":\"%s\",\"remote_port\":%u,\"direction\":\"%s\","
                "\"handshake\":%s,\"first_us\":%" PRIu64 ",\"last_us\":%" PRIu64
                ",\"end\":\"%s\",\"verdict\":\"%s\",\"deferred\":%s",
                c->id, c->key.ip_version, la, owfp_conn_port(c, l), ra, owfp_conn_port(c, 1 - l),
                dirn, c->handshake ? "true" : "false", c->first_us, c->last_us, end_name(c->end),
                verdict(rc), rc->deferred ? "true" : "false");
        dir_json(out, "send", send);
        dir_json(out, "recv", recv);
        if (rc->error)
            fprintf(out, ",\"error\":\"0x%08" PRIx32 "\"", (uint32_t)rc->error);
        fputs("}\n", out);
        return;
    }
    fprintf(out, "conn=%" PRIu64 " local=%s%s%s:%u remote=%s%s%s:%u direction=%s", c->id,
            c->key.ip_version == 6 ? "[" : "", la, c->key.ip_version == 6 ? "]" : "",
            owfp_conn_port(c, l), c->key.ip_version == 6 ? "[" : "", ra,
            c->key.ip_version == 6 ? "]" : "", owfp_conn_port(c, 1 - l), dirn);
    dir_text(out, "send", send);
    dir_text(out, "recv", recv);
    fprintf(out, " end=%s verdict=%s%s%s", end_name(c->end), verdict(rc),
            rc->deferred ? " deferred=yes" : "", c->handshake ? "" : " midstream=yes");
    if (rc->error)
        fprintf(out, " error=0x%08" PRIx32, (uint32_t)rc->error);
    fputc('\n', out);
}

/* What the capture held besides clean streams, non-zero counts only in text. */
static void anomalies(FILE *out, bool json, const struct owfp_replay *r)
{
    const struct owfp_decode_stats *ds = owfp_decoder_stats(r->decoder);
    const struct owfp_reasm_stats *rs = &r->totals.reasm;
    const struct owfp_tracker_stats *ts = &r->tracked;
    const struct {
        const char *name;
        uint64_t v;
    } k[] = {
        {"not_tcp", ds->not_tcp},
        {"truncated", ds->truncated},
        {"payload_cut", ds->payload_cut},
        {"malformed", ds->malformed},
        {"unsupported", ds->unsupported},
        {"fragments", ds->fragments},
        {"fragments_dropped", ds->fragments_dropped},
        {"midstream", ts->midstream},
        {"reused", ts->reused},
        {"timed_out", ts->timed_out},
        {"evicted", ts->evicted},
        {"stray_packets", ts->strays},
        {"rst_ignored", ts->rst_ignored},
        {"retransmitted_bytes", rs->retransmitted},
        {"conflict_bytes", rs->conflicts},
        {"out_of_order_segments", rs->out_of_order},
        {"refused_bytes", rs->refused},
        {"late_bytes", rs->late},
        {"after_fin_bytes", rs->after_fin},
        {"out_of_window_bytes", rs->out_of_window},
        {"bad_fins", rs->bad_fins},
    };
    for (size_t i = 0; i < sizeof(k) / sizeof(k[0]); i++) {
        if (json)
            fprintf(out, "%s\"%s\":%" PRIu64, i ? "," : "", k[i].name, k[i].v);
        else if (k[i].v)
            fprintf(out, " %s=%" PRIu64, k[i].name, k[i].v);
    }
}

void owfp_report_totals(FILE *out, bool json, const struct owfp_replay *r)
{
    const struct owfp_replay_totals *t = &r->totals;
    const struct owfp_rdir *s = &t->d[0], *v = &t->d[1];
    if (json) {
        fprintf(out,
                "{\"totals\":{\"packets\":%" PRIu64 ",\"connections\":%" PRIu64
                ",\"established\":%" PRIu64 ",\"blocked\":%" PRIu64 ",\"dropped\":%" PRIu64
                ",\"offloaded\":%" PRIu64 ",\"deferred\":%" PRIu64 ",\"errors\":%" PRIu64,
                r->packets, t->conns, t->opened, t->blocked, t->dropped, t->offloaded,
                t->deferred, t->errors);
        dir_json(out, "send", s);
        dir_json(out, "recv", v);
        fputs(",", out);
        anomalies(out, true, r);
        fputs("}}\n", out);
        return;
    }
    fprintf(out,
            "totals packets=%" PRIu64 " connections=%" PRIu64 " established=%" PRIu64
            " blocked=%" PRIu64 " dropped=%" PRIu64 " offloaded=%" PRIu64 " deferred=%" PRIu64
            " errors=%" PRIu64,
            r->packets, t->conns, t->opened, t->blocked, t->dropped, t->offloaded, t->deferred,
            t->errors);
    dir_text(out, "send", s);
    dir_text(out, "recv", v);
    anomalies(out, false, r);
    fputc('\n', out);
}
