/*
 * Fuzz tapes (src/replay/tape.h): each operation makes the frames it
 * promises, decoded back here with the replay's own decoder; any byte
 * string plays; the same tape makes the same frames.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "replay/decode.h"
#include "replay/tape.h"

#define MAX_FRAMES 64

struct got {
    struct owfp_decoder *dec;
    struct owfp_pkt pkt[MAX_FRAMES];
    uint8_t data[MAX_FRAMES][1500];
    uint64_t ts[MAX_FRAMES];
    int n, frames;
    int work[8];
    int nwork;
    uint64_t hash; /* of every frame and work step, in order */
};

static void on_frame(void *arg, const uint8_t *frame, uint32_t len, uint64_t ts_us)
{
    struct got *g = arg;
    for (uint32_t i = 0; i < len; i++)
        g->hash = (g->hash ^ frame[i]) * 0x100000001b3ull;
    g->hash ^= ts_us;
    g->frames++;
    struct owfp_pkt p;
    assert_int_equal(owfp_decode(g->dec, OWFP_TAPE_DLT, frame, len, len, ts_us, &p),
                     OWFP_DECODE_TCP);
    if (g->n == MAX_FRAMES)
        return;
    size_t keep = p.payload_len < sizeof(g->data[0]) ? p.payload_len : sizeof(g->data[0]);
    memcpy(g->data[g->n], p.payload, keep);
    p.payload = g->data[g->n];
    g->ts[g->n] = ts_us;
    g->pkt[g->n++] = p;
}

static void on_work(void *arg, int pick)
{
    struct got *g = arg;
    g->hash = (g->hash ^ (uint64_t)(pick + 1)) * 0x100000001b3ull;
    if (g->nwork < 8)
        g->work[g->nwork++] = pick;
}

static struct got *play(const uint8_t *tape, size_t len, unsigned index)
{
    struct got *g = calloc(1, sizeof(*g));
    assert_non_null(g);
    g->dec = owfp_decoder_new(NULL);
    assert_non_null(g->dec);
    struct owfp_tape_sink sink = {on_frame, on_work, g, index, 0};
    assert_int_equal(owfp_tape_play(tape, len, &sink), 0);
    return g;
}

static void done(struct got *g)
{
    owfp_decoder_free(g->dec);
    free(g);
}

#define OP OWFP_TAPE_OP
#define OPEN OP(OWFP_TAPE_CTRL, OWFP_TAPE_OPEN, 0, 0)

static void test_tape_open_data_and_fin_make_a_whole_connection(void **state)
{
    (void)state;
    /* Slot 2, IPv4, handshake, port 443 (index 1). */
    const uint8_t tape[] = {OPEN, 2, 1,
                            OP(OWFP_TAPE_DATA, 2, 0, 0), 3, 'a', 'b', 'c',
                            OP(OWFP_TAPE_DATA, 2, 1, 0), 2, 'x', 'y',
                            OP(OWFP_TAPE_FIN, 2, 0, 0), OP(OWFP_TAPE_FIN, 2, 1, 0)};
    struct got *g = play(tape, sizeof(tape), 0);
    assert_int_equal(g->n, 7);
    const struct owfp_pkt *p = g->pkt;
    assert_int_equal(p[0].tcp_flags, OWFP_TCP_SYN);
    assert_int_equal(p[1].tcp_flags, OWFP_TCP_SYN | OWFP_TCP_ACK);
    assert_int_equal(p[2].tcp_flags, OWFP_TCP_ACK);
    assert_int_equal(p[0].ip_version, 4);
    assert_int_equal(p[0].dport, 443);
    assert_int_equal(p[0].sport, 40000 + 2 * 256);
    static const uint8_t client[4] = {10, 0, 0, 1}, server[4] = {10, 0, 0, 2};
    assert_memory_equal(p[0].src, client, 4);
    assert_memory_equal(p[0].dst, server, 4);
    assert_int_equal(p[1].ack, p[0].seq + 1);
    /* Data from each side, in sequence after the SYNs, acknowledging the other. */
    assert_int_equal(p[3].seq, p[0].seq + 1);
    assert_int_equal(p[3].ack, p[1].seq + 1);
    assert_int_equal(p[3].payload_len, 3);
    assert_memory_equal(p[3].payload, "abc", 3);
    assert_true(p[3].tcp_flags & OWFP_TCP_PSH);
    assert_int_equal(p[4].sport, 443);
    assert_memory_equal(p[4].payload, "xy", 2);
    assert_int_equal(p[4].ack, p[3].seq + 3);
    assert_int_equal(p[5].tcp_flags, OWFP_TCP_FIN | OWFP_TCP_ACK);
    assert_int_equal(p[5].seq, p[3].seq + 3);
    assert_int_equal(p[6].ack, p[5].seq + 1); /* the FIN takes a sequence number */
    for (int i = 1; i < g->n; i++)
        assert_true(g->ts[i] > g->ts[i - 1]);
    done(g);
}

static void test_tape_slot_used_first_opens_ipv4_port_80(void **state)
{
    (void)state;
    const uint8_t tape[] = {OP(OWFP_TAPE_DATA, 5, 1, 0), 1, 'z'};
    struct got *g = play(tape, sizeof(tape), 0);
    assert_int_equal(g->n, 4); /* handshake, then the server's byte */
    assert_int_equal(g->pkt[3].sport, 80);
    assert_int_equal(g->pkt[3].dport, 40000 + 5 * 256);
    assert_int_equal(g->pkt[3].payload_len, 1);
    done(g);
}

static void test_tape_ipv6_mid_stream_and_explicit_port(void **state)
{
    (void)state;
    /* Slot 1, IPv6 (bit3), no handshake (bit4), port 15 = 0x1f90 (8080). */
    const uint8_t tape[] = {OPEN, 1 | 8 | 16, 15, 0x90, 0x1f,
                            OP(OWFP_TAPE_DATA, 1, 0, 0), 1, 'q'};
    struct got *g = play(tape, sizeof(tape), 3);
    assert_int_equal(g->n, 1);
    assert_int_equal(g->pkt[0].ip_version, 6);
    assert_int_equal(g->pkt[0].dport, 8080);
    assert_int_equal(g->pkt[0].tcp_flags & OWFP_TCP_SYN, 0);
    static const uint8_t client[16] = {0x20, 0x01, 0x0d, 0xb8, [14] = 3, [15] = 1};
    assert_memory_equal(g->pkt[0].src, client, 16); /* tape index 3 */
    done(g);
}

static void test_tape_index_separates_the_clients_of_successive_tapes(void **state)
{
    (void)state;
    const uint8_t tape[] = {OP(OWFP_TAPE_FIN, 0, 0, 0)};
    struct got *g = play(tape, sizeof(tape), 0x0102);
    static const uint8_t client[4] = {10, 1, 2, 1};
    assert_memory_equal(g->pkt[0].src, client, 4);
    done(g);
}

static void test_tape_long_data_is_cut_into_segments(void **state)
{
    (void)state;
    uint8_t tape[4 + 3000] = {OP(OWFP_TAPE_URGENT, 0, 0, 1), 3000 & 0xff, 3000 >> 8};
    for (int i = 0; i < 3000; i++)
        tape[3 + i] = (uint8_t)i;
    struct got *g = play(tape, 3 + 3000, 0);
    assert_int_equal(g->n, 3 + 3);
    assert_int_equal(g->pkt[3].payload_len, 1460);
    assert_int_equal(g->pkt[4].payload_len, 1460);
    assert_int_equal(g->pkt[5].payload_len, 80);
    assert_int_equal(g->pkt[4].seq, g->pkt[3].seq + 1460);
    for (int i = 3; i < 6; i++) {
        assert_true(g->pkt[i].tcp_flags & OWFP_TCP_URG);
        assert_int_equal(!!(g->pkt[i].tcp_flags & OWFP_TCP_PSH), i == 5);
    }
    assert_int_equal(g->pkt[5].payload[0], (uint8_t)2920);
    done(g);
}

static void test_tape_data_longer_than_the_tape_takes_what_is_left(void **state)
{
    (void)state;
    const uint8_t tape[] = {OP(OWFP_TAPE_DATA, 0, 0, 0), 200, 'a', 'b'};
    struct got *g = play(tape, sizeof(tape), 0);
    assert_int_equal(g->n, 4);
    assert_int_equal(g->pkt[3].payload_len, 2);
    done(g);
}

static void test_tape_hold_delivers_out_of_order_and_twice(void **state)
{
    (void)state;
    const uint8_t tape[] = {OP(OWFP_TAPE_HOLD, 0, 0, 1),
                            OP(OWFP_TAPE_DATA, 0, 0, 0), 1, 'a',
                            OP(OWFP_TAPE_DATA, 0, 0, 0), 1, 'b',
                            OP(OWFP_TAPE_DATA, 0, 0, 0), 1, 'c'};
    struct got *g = play(tape, sizeof(tape), 0);
    assert_int_equal(g->n, 3 + 4);
    const struct owfp_pkt *p = g->pkt + 3;
    assert_int_equal(p[0].payload[0], 'b');
    assert_int_equal(p[1].payload[0], 'a');
    assert_int_equal(p[2].payload[0], 'a'); /* the retransmission */
    assert_int_equal(p[3].payload[0], 'c');
    assert_int_equal(p[1].seq + 1, p[0].seq);
    assert_int_equal(p[3].seq, p[0].seq + 1);
    done(g);
}

static void test_tape_held_segment_arrives_at_the_end_at_the_latest(void **state)
{
    (void)state;
    const uint8_t tape[] = {OP(OWFP_TAPE_HOLD, 0, 1, 0), OP(OWFP_TAPE_DATA, 0, 1, 0), 1, 'h'};
    struct got *g = play(tape, sizeof(tape), 0);
    assert_int_equal(g->n, 4);
    assert_int_equal(g->pkt[3].payload[0], 'h');
    done(g);
}

static void test_tape_gap_skips_sequence_space_the_peer_acknowledges(void **state)
{
    (void)state;
    const uint8_t tape[] = {OP(OWFP_TAPE_DATA, 0, 0, 0), 1, 'a',
                            OP(OWFP_TAPE_GAP, 0, 0, 0), 9,
                            OP(OWFP_TAPE_DATA, 0, 0, 0), 1, 'b',
                            OP(OWFP_TAPE_CTRL, OWFP_TAPE_ACK, 1, 0), 0};
    struct got *g = play(tape, sizeof(tape), 0);
    assert_int_equal(g->n, 6);
    assert_int_equal(g->pkt[4].seq, g->pkt[3].seq + 1 + 10);
    assert_int_equal(g->pkt[5].tcp_flags, OWFP_TCP_ACK);
    assert_int_equal(g->pkt[5].payload_len, 0);
    assert_int_equal(g->pkt[5].ack, g->pkt[4].seq + 1);
    done(g);
}

static void test_tape_rst_then_the_slot_opens_a_new_connection(void **state)
{
    (void)state;
    const uint8_t tape[] = {OP(OWFP_TAPE_RST, 0, 1, 0),
                            OP(OWFP_TAPE_DATA, 0, 0, 0), 1, 'n',
                            OPEN, 0 | 32, 0, /* same client port again */
                            OP(OWFP_TAPE_FIN, 0, 0, 0)};
    struct got *g = play(tape, sizeof(tape), 0);
    assert_int_equal(g->n, 3 + 1 + 3 + 1 + 3 + 1);
    assert_int_equal(g->pkt[3].tcp_flags, OWFP_TCP_RST | OWFP_TCP_ACK);
    assert_int_equal(g->pkt[4].tcp_flags, OWFP_TCP_SYN);
    assert_int_equal(g->pkt[4].sport, g->pkt[0].sport + 1); /* a new client port */
    assert_true(g->pkt[4].seq != g->pkt[0].seq);
    assert_int_equal(g->pkt[8].tcp_flags, OWFP_TCP_SYN);
    assert_int_equal(g->pkt[8].sport, g->pkt[4].sport); /* the 4-tuple reused */
    assert_true(g->pkt[8].seq != g->pkt[4].seq);
    done(g);
}

static void test_tape_work_and_time(void **state)
{
    (void)state;
    const uint8_t tape[] = {OP(OWFP_TAPE_FIN, 0, 0, 0),
                            OP(OWFP_TAPE_WORK, 0, 0, 0), 7,
                            OP(OWFP_TAPE_WORK, 0, 0, 1),
                            OP(OWFP_TAPE_CTRL, OWFP_TAPE_TIME, 0, 0), 5,
                            OP(OWFP_TAPE_FIN, 0, 1, 0),
                            OP(OWFP_TAPE_CTRL, OWFP_TAPE_TIME, 0, 1), 2,
                            OP(OWFP_TAPE_FIN, 0, 1, 0)};
    struct got *g = play(tape, sizeof(tape), 0);
    assert_int_equal(g->nwork, 2);
    assert_int_equal(g->work[0], 7);
    assert_int_equal(g->work[1], -1);
    assert_true(g->ts[4] - g->ts[3] >= 500000);
    assert_true(g->ts[5] - g->ts[4] >= 20000000);
    done(g);
}

static uint64_t rng(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Any byte string is a tape: random ones and every prefix of one play, make
 * only frames that decode as TCP (on_frame checks), and repeat exactly. */
static void test_tape_any_bytes_play_and_repeat(void **state)
{
    (void)state;
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    uint8_t tape[512];
    for (int round = 0; round < 200; round++) {
        size_t len = rng(&seed) % sizeof(tape);
        for (size_t i = 0; i < len; i++)
            tape[i] = (uint8_t)rng(&seed);
        struct got *a = play(tape, len, (unsigned)round), *b = play(tape, len, (unsigned)round);
        assert_int_equal(a->frames, b->frames);
        assert_true(a->hash == b->hash);
        done(a);
        done(b);
        if (round < 3)
            for (size_t cut = 0; cut < len; cut++)
                done(play(tape, cut, 0));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tape_open_data_and_fin_make_a_whole_connection),
        cmocka_unit_test(test_tape_slot_used_first_opens_ipv4_port_80),
        cmocka_unit_test(test_tape_ipv6_mid_stream_and_explicit_port),
        cmocka_unit_test(test_tape_index_separates_the_clients_of_successive_tapes),
        cmocka_unit_test(test_tape_long_data_is_cut_into_segments),
        cmocka_unit_test(test_tape_data_longer_than_the_tape_takes_what_is_left),
        cmocka_unit_test(test_tape_hold_delivers_out_of_order_and_twice),
        cmocka_unit_test(test_tape_held_segment_arrives_at_the_end_at_the_latest),
        cmocka_unit_test(test_tape_gap_skips_sequence_space_the_peer_acknowledges),
        cmocka_unit_test(test_tape_rst_then_the_slot_opens_a_new_connection),
        cmocka_unit_test(test_tape_work_and_time),
        cmocka_unit_test(test_tape_any_bytes_play_and_repeat),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
