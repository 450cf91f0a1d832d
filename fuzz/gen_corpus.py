#!/usr/bin/env python3
"""Writes the hand-made seed inputs of fuzz/corpus/<name>/ (see the format
comments at the top of fuzz/fuzz_stream.c and fuzz/fuzz_mgmt.c).

Usage: fuzz/gen_corpus.py [OUTDIR]   (default: fuzz/corpus next to this file)
Inputs found by fuzzing (crash-*, regress-*) are kept as they are.
"""
import pathlib
import struct
import sys

# ---- stream ------------------------------------------------------------------
# filter kinds
TERM, INSP, UNKNOWN, PERMIT, BLOCK, CONTINUE, TERM_UNREG, UNKNOWN_UNREG = range(8)
# callout flags byte (f2)
COND, OFFLOAD, MID = 1, 2, 4
# opcodes
IND, BIG, FIN, RST, POLL, CLOSE_OPEN, OOB, CONT, ASSOC, REMOVE, FABORT, FILT, CALLOUT, INVALID = (
    0, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
SEND, RECV = 0, 1
# answer byte a0
A_NONE, A_NEED, A_DEFER, A_ALLOW, A_DROP, A_BAD = 0, 2, 3, 4, 5, 6
T_PERMIT, T_BLOCK, T_CONTINUE, T_RAW = 0, 0x08, 0x10, 0x18
HAS_ENF, HAS_X, HAS_REQ = 0x20, 0x40, 0x80


def op(code, d=SEND, var=0, flow=0, *args):
    return bytes([code | d << 4 | var << 5 | flow << 7, *args])


def stream_input(filters, ops, answers, v6=False, inbound=False, nsub=1, port80=False,
                 af=False, subweights=None):
    s0 = (v6 | inbound << 1 | (nsub - 1) << 2 | (len(filters) - 1) << 4 | port80 << 6
          | af << 7)
    a = bytes([s0]) + bytes(subweights or [0x10 * (i + 1) for i in range(nsub)])
    for f in filters:
        f = list(f) if isinstance(f, tuple) else [f]
        kind, sub, weight, cflags, version, share = f + [None, 0, 0, 0, 3, 0][len(f):]
        f0 = kind | sub << 3
        a += bytes([f0, weight, cflags | version << 3 | share << 5])
    a += b"".join(ops)
    return struct.pack("<H", len(a)) + a + bytes(answers)


def stream_seeds():
    s = {}
    s["permit_both_fin"] = stream_input(
        [TERM], [op(IND, SEND, 0, 0, 99), op(IND, RECV, 1, 0, 49), op(FIN, SEND), op(FIN, RECV)],
        [])
    s["block_partial"] = stream_input(
        [TERM], [op(IND, SEND, 0, 0, 200), op(FIN, SEND)],
        [T_BLOCK | HAS_ENF, 100, T_PERMIT, T_BLOCK])
    s["enforce_more_than_len"] = stream_input(
        [UNKNOWN], [op(IND, RECV, 0, 0, 30), op(IND, RECV, 0, 0, 30)],
        [T_CONTINUE | HAS_ENF, 0xff, 5, T_RAW, 0x77])
    s["need_more_data"] = stream_input(
        [TERM], [op(IND, RECV, 0, 0, 9), op(IND, RECV, 0, 0, 9), op(IND, RECV, 0, 0, 9),
                 op(FIN, RECV)],
        [A_NEED | HAS_REQ, 20, A_NEED | HAS_REQ, 0, T_PERMIT])
    s["need_more_fin"] = stream_input(
        [TERM], [op(IND, SEND, 0, 0, 9), op(FIN, SEND)],
        [A_NEED | HAS_REQ, 100, A_NEED])
    s["buffer_limit"] = stream_input(
        [INSP], [op(BIG, RECV, 0, 0, 200), op(BIG, RECV, 0, 0, 60), op(POLL)],
        [A_NEED | HAS_REQ, 0xff, A_NEED | HAS_REQ, 0xff, T_PERMIT])
    s["defer_continue"] = stream_input(
        [TERM], [op(IND, RECV, 0, 0, 10), op(IND, RECV, 0, 0, 10), op(CONT, RECV, 0, 0, 0),
                 op(POLL), op(FIN, RECV)],
        [A_DEFER, T_PERMIT])
    s["defer_send_continue_bad"] = stream_input(
        [UNKNOWN, INSP], [op(IND, SEND, 0, 0, 10), op(CONT, SEND, 0, 0, 0x08),
                          op(CONT, SEND, 0, 0, 0x10), op(CONT, SEND, 0, 0, 1),
                          op(CONT, SEND, 0, 0, 0), op(POLL)],
        [A_DEFER, T_PERMIT, T_PERMIT])
    s["allow_offload"] = stream_input(
        [(TERM, 0, 0, OFFLOAD)], [op(IND, SEND, 0, 0, 5), op(IND, RECV, 0, 0, 5), op(POLL)],
        [A_ALLOW])
    s["drop_connection"] = stream_input(
        [TERM, INSP], [op(IND, SEND, 0, 0, 5), op(IND, RECV, 0, 0, 5), op(FIN, SEND)],
        [A_DROP])
    s["drop_ignored_inspection"] = stream_input(
        [INSP, TERM], [op(IND, SEND, 0, 0, 5), op(IND, RECV, 0, 0, 5)],
        [A_DROP, A_BAD, 9, T_PERMIT])
    s["invalid_stream_action"] = stream_input(
        [UNKNOWN], [op(IND, SEND, 0, 0, 5)], [A_BAD, 200])
    # extras: inline injection same dir (1) fresh; other dir (2); clone payload (1<<2)
    s["inline_inject_block"] = stream_input(
        [(TERM, 0, 9), (INSP, 1, 0)], [op(IND, SEND, 0, 0, 40), op(IND, RECV, 0, 0, 40),
                                       op(FIN, SEND), op(FIN, RECV), op(POLL)],
        [T_BLOCK | HAS_X, 0x01 | 0x30, T_PERMIT | HAS_X, 0x02, T_BLOCK | HAS_X, 0x05,
         T_PERMIT | HAS_X, 0x0d], nsub=2)
    s["inline_inject_invalid"] = stream_input(
        [TERM], [op(IND, SEND, 0, 0, 10)] * 5,
        [T_PERMIT | HAS_X, 0x41, T_PERMIT | HAS_X, 0x51, T_PERMIT | HAS_X, 0x61,
         T_PERMIT | HAS_X, 0x71, T_PERMIT | HAS_X, 0x09])
    s["oob_clone_block"] = stream_input(
        [(TERM, 0, 1), (INSP, 1, 1)],
        [op(IND, RECV, 0, 0, 20), op(IND, RECV, 0, 0, 20), op(FIN, RECV),
         op(OOB, RECV, 0, 0, 1, 0), op(OOB, RECV, 0, 0, 1, 0), op(POLL), op(OOB, RECV, 0, 0, 1, 0),
         op(POLL), op(IND, SEND, 0, 0, 3)],
        [T_BLOCK | HAS_X, 3, T_BLOCK | HAS_X, 3, T_BLOCK | HAS_X, 3], nsub=2)
    s["oob_fresh_variants"] = stream_input(
        [TERM, PERMIT],
        [op(IND, SEND, 0, 0, 5)] + [op(OOB, SEND, 0, 0, 0x20 * k, b) for k in range(2)
                                    for b in (0, 1, 2, 3, 4, 5, 6, 7, 8, 16, 0x46, 0x87)]
        + [op(POLL)], [])
    s["contexts_conditional"] = stream_input(
        [(TERM, 0, 0, COND), (INSP, 0, 1)],
        [op(IND, SEND, 0, 0, 5), op(ASSOC, 0, 0, 0, 0), op(ASSOC, 0, 0, 0, 1),
         op(ASSOC, 0, 0, 0, 2), op(IND, SEND, 0, 0, 5), op(CALLOUT, 0, 0, 0, 0),
         op(REMOVE, 0, 0, 0, 0), op(CALLOUT, 0, 0, 0, 0), op(IND, SEND, 0, 0, 5),
         op(CALLOUT, 0, 0, 0, 0), op(ASSOC, 0, 0, 0, 8), op(IND, RECV, 0, 0, 5)],
        [T_PERMIT | HAS_X, 0x80, 1, T_PERMIT | HAS_X, 0x80, 0, T_PERMIT])
    s["misc_in_classify"] = stream_input(
        [TERM, (UNKNOWN, 0, 5), PERMIT],
        [op(CLOSE_OPEN, 0, 0, 1), op(IND, SEND, 0, 1, 5), op(IND, SEND, 0, 0, 5),
         op(IND, RECV, 0, 0, 5), op(IND, RECV, 0, 0, 5), op(IND, SEND, 0, 0, 5)],
        [T_PERMIT | HAS_X, 0x80, 1, T_PERMIT | HAS_X, 0x80, 3, T_PERMIT | HAS_X, 0x80, 4,
         T_PERMIT | HAS_X, 0x80, 5, T_PERMIT | HAS_X, 0x80, 6, T_PERMIT | HAS_X, 0x80, 7,
         T_PERMIT | HAS_X, 0x80, 0x0d, T_PERMIT | HAS_X, 0x80, 2])
    s["filter_delete_readd_mid"] = stream_input(
        [(TERM, 0, 0, MID), (INSP, 0, 1, 0)],
        [op(IND, RECV, 0, 0, 5), op(FILT, 0, 0, 0, 0), op(FILT, 0, 0, 0, 1),
         op(IND, RECV, 0, 0, 5), op(FILT, 0, 0, 0, 0), op(FILT, 0, 0, 0, 1),
         op(IND, RECV, 0, 0, 5), op(IND, SEND, 0, 0, 5)],
        [A_NEED | HAS_REQ, 50])
    s["delete_deferred_filter"] = stream_input(
        [TERM, INSP], [op(IND, RECV, 0, 0, 5), op(FILT, 0, 0, 0, 0), op(CONT, RECV, 0, 0, 0),
                       op(POLL), op(CONT, RECV, 0, 0, 0)],
        [A_DEFER])
    s["unregister_busy"] = stream_input(
        [TERM, UNKNOWN_UNREG],
        [op(ASSOC, 0, 0, 0, 0), op(CALLOUT, 0, 0, 0, 0), op(IND, SEND, 0, 0, 5),
         op(ASSOC, 0, 0, 0, 0), op(REMOVE, 0, 0, 0, 0), op(CALLOUT, 0, 0, 0, 0x80),
         op(IND, SEND, 0, 0, 5), op(CALLOUT, 0, 0, 0, 1), op(IND, SEND, 0, 0, 5),
         op(CALLOUT, 0, 0, 0, 0), op(IND, SEND, 0, 0, 5)],
        [T_PERMIT, T_CONTINUE, T_PERMIT])
    s["permit_if_unregistered"] = stream_input(
        [(TERM_UNREG | 0x20,), INSP],
        [op(IND, SEND, 0, 0, 5), op(IND, RECV, 0, 0, 5)], [])
    s["rst_abort"] = stream_input(
        [TERM, INSP], [op(IND, RECV, 0, 0, 5), op(IND, SEND, 0, 0, 5), op(RST, RECV),
                       op(IND, SEND, 0, 0, 5), op(FIN, SEND), op(POLL)],
        [A_NEED | HAS_REQ, 90, T_PERMIT | HAS_X, 0x01])
    s["flow_abort"] = stream_input(
        [TERM], [op(IND, RECV, 0, 0, 5), op(FABORT), op(IND, RECV, 0, 0, 5), op(POLL),
                 op(CLOSE_OPEN), op(FABORT), op(CLOSE_OPEN), op(IND, SEND, 0, 0, 5)],
        [A_DEFER])
    s["two_flows_port80"] = stream_input(
        [(TERM | 0x40, 0, 1), (INSP, 1, 2)],
        [op(CLOSE_OPEN, 0, 0, 1), op(IND, SEND, 0, 1, 10), op(IND, SEND, 0, 0, 10),
         op(IND, RECV, 0, 1, 10), op(FIN, SEND, 0, 1), op(CLOSE_OPEN, 0, 0, 1),
         op(OOB, SEND, 0, 1, 0, 0), op(CONT, SEND, 0, 1, 0), op(ASSOC, 0, 0, 1, 0),
         op(REMOVE, 0, 0, 1, 0)],
        [T_BLOCK, T_BLOCK], nsub=2, port80=True)
    s["v6_inbound_versions"] = stream_input(
        [(TERM, 0, 3, OFFLOAD | MID, 0), (INSP, 1, 2, COND, 1), (UNKNOWN, 2, 1, 0, 2),
         (CONTINUE, 0, 0)],
        [op(IND, SEND, 3, 0, 20), op(IND, RECV, 1, 0, 20), op(IND, RECV, 2, 0, 20),
         op(FIN, RECV), op(FIN, SEND)],
        [T_PERMIT, T_CONTINUE], v6=True, inbound=True, nsub=3, af=True)
    s["static_only"] = stream_input(
        [PERMIT, (BLOCK, 1), (CONTINUE, 2)],
        [op(IND, SEND, 0, 0, 10), op(FIN, SEND), op(INVALID, 0, 0, 0, 0),
         op(INVALID, 0, 0, 0, 1), op(INVALID, 0, 0, 0, 2), op(INVALID, 0, 0, 0, 3),
         op(IND, SEND, 0, 0, 10)], [], nsub=3)
    s["flow_close_pending"] = stream_input(
        [TERM, INSP],
        [op(IND, SEND, 0, 0, 20), op(OOB, SEND, 0, 0, 0, 0), op(ASSOC, 0, 0, 0, 0),
         op(ASSOC, 0, 0, 0, 1), op(CLOSE_OPEN), op(IND, SEND, 0, 0, 20)],
        [A_NEED | HAS_REQ | HAS_X, 0x01, 30, A_DEFER])
    # Two filters naming one callout (share=1: the callout of filter 0).
    s["shared_callout_allow"] = stream_input(
        [(TERM, 0, 0), (TERM, 1, 0, 0, 3, 1)],
        [op(IND, SEND, 0, 0, 5), op(IND, SEND, 0, 0, 5), op(IND, RECV, 0, 0, 5)],
        [A_ALLOW, T_PERMIT, T_PERMIT], nsub=2)
    s["shared_callout_defer"] = stream_input(
        [(TERM, 0, 0), (TERM, 1, 0, 0, 3, 1)],
        [op(IND, RECV, 0, 0, 5), op(CONT, RECV, 0, 0, 0), op(POLL), op(CONT, RECV, 0, 0, 0),
         op(POLL), op(FIN, RECV)],
        [T_PERMIT, A_DEFER, T_PERMIT], nsub=2)
    # Allocation failures injected into single ops (INVALID with bit 7 arms
    # owfp_alloc_fail_after(n) for the next op).
    def fault(n):
        return op(INVALID, 0, 0, 0, 0x80 | n)

    s["faults_indicate_fin"] = stream_input(
        [TERM, (INSP, 1)],
        [fault(0), op(IND, SEND, 0, 0, 9), fault(2), op(IND, SEND, 0, 0, 9), fault(1),
         op(IND, RECV, 0, 0, 9), fault(0), op(FIN, SEND), op(FIN, SEND), fault(3), op(FIN, RECV),
         op(POLL)],
        [A_NEED | HAS_REQ, 30], nsub=2)
    s["faults_inject_continue"] = stream_input(
        [TERM, (INSP, 1)],
        [op(IND, RECV, 0, 0, 9), fault(0), op(OOB, RECV, 0, 0, 0, 8), fault(1),
         op(OOB, RECV, 0, 0, 0, 8), fault(0), op(CONT, RECV, 0, 0, 0), op(CONT, RECV, 0, 0, 0),
         fault(1), op(POLL), fault(0), op(ASSOC, 0, 0, 0, 0), fault(0), op(FILT, 0, 0, 0, 1),
         op(FILT, 0, 0, 0, 1), fault(0), op(FILT, 0, 0, 0, 1), fault(0), op(CLOSE_OPEN, 0, 0, 1),
         fault(4), op(IND, RECV, 0, 0, 9)],
        [A_DEFER | HAS_X, 0x01, T_PERMIT | HAS_X, 0x03], nsub=2)
    return s


# ---- mgmt ---------------------------------------------------------------------


def mgmt_seeds():
    # Opcodes and argument bytes of fuzz_mgmt.c (see its op_* functions).
    OPEN, CLOSE, BEGIN, COMMIT, ABORT, PROV_ADD, PROV_DEL, SL_ADD, SL_DEL, CO_ADD, CO_DEL, \
        F_ADD, F_DEL, REG, UNREG, FLOW = range(16)
    V3 = 3            # FWPS_CALLOUT3
    COMMIT_NOTIFY = 0x04
    BOGUS = 0x1c      # session byte naming no session

    def m(code, *args):
        return bytes([code, *args])

    def filt(sess=0, layer=0, sub=0, action=1, callout=0, flags=0, nconds=0, weight=0,
             conds=b""):
        return m(F_ADD, sess, layer, sub, action | callout << 3, flags | nconds << 3,
                 weight) + conds

    def cond(field, match, vtype, value):
        return bytes([field, match, vtype, value])

    s = {}
    s["basic"] = b"".join([
        m(REG, 0, V3, COMMIT_NOTIFY), m(CO_ADD, 0, 0, 0), m(SL_ADD, 0, 0x40, 0),
        filt(), m(FLOW, 0, 0x04), m(FLOW, 1, 0x0c), m(FLOW, 0), m(F_DEL, 0, 0),
        m(UNREG, 0, 0), m(UNREG, 0, 0), m(FLOW, 1)])
    s["transactions"] = b"".join([
        m(OPEN, 0x10), m(BEGIN, 1, 0), m(REG, 1, V3, COMMIT_NOTIFY), m(CO_ADD, 1, 1, 0),
        filt(1, callout=1), m(ABORT, 1), m(BEGIN, 1, 0), filt(1, callout=1), m(COMMIT, 1),
        m(BEGIN, 1, 1), filt(1, callout=1), m(COMMIT, 1), m(BEGIN, 1, 0), m(BEGIN, 1, 0),
        m(COMMIT, 1), m(COMMIT, 1), m(ABORT, 1), m(CLOSE, 1)])
    s["dynamic_session"] = b"".join([
        m(OPEN, 0x11), m(PROV_ADD, 1, 0), m(SL_ADD, 1, 0x10, 0x40), m(REG, 2, V3, 0),
        m(CO_ADD, 1, 2, 0x40), filt(1, sub=0x48, callout=2), m(PROV_DEL, 0, 0),
        m(SL_DEL, 0, 0), m(CO_DEL, 0, 2), m(F_DEL, 0, 0x80), m(CLOSE, 1), m(FLOW, 0, 0)])
    s["veto_and_contexts"] = b"".join([
        m(REG, 3, V3 | 0x80, 0x01), m(REG, 4, V3, 0x03), m(CO_ADD, 0, 3, 0), m(CO_ADD, 0, 4, 0),
        filt(callout=3), filt(callout=4, action=2), m(FLOW, 0, 0x04), m(FLOW, 1, 0x8c),
        m(FLOW, 2, 0x48), m(UNREG, 4, 0), m(FLOW, 0x0a, 0x04), m(FLOW, 0x0b), m(UNREG, 4, 0),
        m(FLOW, 0), m(FLOW, 1), m(UNREG, 4, 0), m(F_DEL, 0, 0x01)])
    s["conditions"] = b"".join([
        m(REG, 0, V3, 0), m(CO_ADD, 0, 0, 0),
        filt(nconds=3, weight=0x40, conds=cond(0, 0, 1, 5) + cond(3, 5, 8, 0) + b"\x01\x01\x02\x09"
             + cond(4, 0, 5, 4)),
        filt(nconds=2, weight=0x25, conds=cond(3, 0, 6, 1) + cond(5, 0, 2, 1)),
        filt(nconds=1, weight=0x81, conds=cond(8, 0, 9, 3)),
        filt(nconds=1, conds=cond(9, 0, 0, 0)), filt(nconds=1, conds=cond(0, 0xf3, 1, 0)),
        filt(nconds=1, conds=cond(1, 9, 10, 0x41)), filt(nconds=1, conds=cond(3, 0, 7, 0x90)),
        filt(layer=3, nconds=1, conds=cond(3, 0, 7, 0x20)), m(FLOW, 0, 0x01), m(FLOW, 0x10, 0x02)])
    s["bad_args"] = b"".join([
        m(OPEN, 0x02), m(OPEN, 0x04), m(OPEN, 0x06), m(OPEN, 0x08), m(CLOSE, BOGUS),
        m(CLOSE, 3), m(BEGIN, 0, 2), m(COMMIT, 0), m(ABORT, BOGUS), m(PROV_ADD, 0, 0x0c),
        m(PROV_ADD, 0, 0x40), m(SL_ADD, 0, 0, 0x41), m(SL_ADD, 0, 0, 0x42), m(CO_ADD, 0, 0, 0x0e),
        m(CO_ADD, 0, 0, 0x0d), m(CO_ADD, 0, 0, 0x07), m(F_ADD, 0, 0xff, 0xff, 0xff, 0xff, 0xff),
        m(F_ADD, 0, 0x78, 0, 0, 0, 0), m(F_ADD, 0, 0x05, 0, 0, 0, 0), m(F_ADD, 0, 0, 0, 7, 0, 0),
        m(F_ADD, 0, 0, 0x09, 0, 0, 0), m(F_ADD, 0, 0, 0x40, 0, 0, 0), m(F_ADD, 0, 0, 0, 0, 3, 0),
        m(F_ADD, 0, 0, 0, 0, 0, 0x3f), m(F_ADD, 0, 0, 0, 0, 0, 0x60), m(F_ADD, 0, 0, 0, 0, 0, 0x80),
        m(F_ADD, 0, 0, 0, 0, 0x68, 0), m(REG, 5, 0x1c, 0), m(REG, 5, 0, 0x04), m(REG, 0xc0, 0, 0),
        m(UNREG, 5, 0), m(UNREG, 5, 3), m(SL_DEL, 0, 0x0f), m(SL_DEL, 0, 0x40), m(CO_DEL, 0, 0xc0),
        m(F_DEL, 0, 0xc0), m(PROV_DEL, 0, 0x40), m(FLOW, 0x0f)])
    s["contention"] = b"".join([
        m(OPEN, 0x10), m(OPEN, 0x20), m(BEGIN, 1, 0), m(PROV_ADD, 2, 1), m(BEGIN, 2, 1),
        m(BEGIN, 2, 0), m(COMMIT, 1), m(BEGIN, 2, 1), m(BEGIN, 1, 0), m(PROV_ADD, 2, 1),
        m(ABORT, 2), m(BEGIN, 1, 0), m(OPEN, 0x31), m(CLOSE, 3), m(COMMIT, 1), m(CLOSE, 3)])
    # A dynamic session newer than a session holding a transaction: the
    # engine must still be able to shut down.
    s["destroy_with_txn_open"] = b"".join([
        m(OPEN, 0x10), m(BEGIN, 1, 0), m(REG, 0, V3, 0), m(CO_ADD, 1, 0, 0), filt(1),
        m(OPEN, 0x21), m(SL_ADD, 2, 0, 0)])
    s["destroy_with_read_txn_open"] = b"".join([
        m(OPEN, 0x10), m(BEGIN, 1, 1), m(OPEN, 0x21)])
    # Ops run with allocations failing after n (opcode bit 7, then n).
    def fm(code, n, *args):
        return bytes([code | 0x80, n, *args])

    s["faults"] = b"".join([
        fm(OPEN, 0, 0x11), fm(OPEN, 1, 0x11), m(REG, 0, V3, COMMIT_NOTIFY), fm(REG, 0, 1, V3, 0),
        fm(CO_ADD, 0, 0, 0, 0), m(CO_ADD, 0, 0, 0), fm(SL_ADD, 1, 1, 0, 0), fm(SL_ADD, 2, 1, 0, 0),
        m(BEGIN, 1, 0), fm(F_ADD, 0, 1, 0, 0, 1, 0, 0), fm(F_ADD, 3, 1, 0, 0, 1, 0, 0),
        filt(1), fm(COMMIT, 0, 1), fm(FLOW, 0, 0x00, 0x04), fm(FLOW, 1, 0x00, 0x04),
        m(FLOW, 0, 0x0c), fm(CLOSE, 0, 1), fm(CLOSE, 2, 1), m(CLOSE, 1), fm(F_DEL, 0, 0, 0),
        fm(PROV_ADD, 0, 0, 0), fm(OPEN, 0, 0x20)])
    s["post_commit_registered_late"] = b"".join([
        m(CO_ADD, 0, 5, 0), m(BEGIN, 0, 0), filt(callout=5), m(REG, 5, V3, COMMIT_NOTIFY),
        m(COMMIT, 0), m(F_DEL, 0, 0)])
    return s


def main():
    out = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else pathlib.Path(__file__).parent / "corpus"
    for name, seeds in (("stream", stream_seeds()), ("mgmt", mgmt_seeds())):
        d = out / name
        d.mkdir(parents=True, exist_ok=True)
        for k, v in seeds.items():
            (d / f"seed-{k}").write_bytes(v)
        print(f"{name}: {len(seeds)} seeds in {d}")


if __name__ == "__main__":
    main()
