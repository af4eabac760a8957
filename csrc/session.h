/*
 * The session table core (session.c) and its Python type (session_type.c).
 *
 * The core is plain C: it never touches a Python object and runs with the GIL
 * released; session_type.c holds the GIL around it and makes sure only one
 * thread is inside a table at a time. The table owns every buffer below: the
 * slots, the hash buckets, each session's packet positions, and the ended
 * sessions waiting for fpc_session_take (which hands their positions over).
 */
#ifndef FPC_SESSION_H
#define FPC_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "decode.h"

#define FPC_SESSION_MACS 4  /* distinct MACs kept per side */
#define FPC_SESSION_VLANS 4 /* distinct outer and inner VLAN ids kept per session */
#define FPC_SESSION_TTLS 8  /* distinct TTLs kept per side */
#define FPC_SESSION_ICMP 8  /* distinct (type, code) pairs kept per session */

/* Why a session (or a segment of it) ended; fpc/session.py names them. */
#define FPC_END_IDLE 1
#define FPC_END_TCP_CLOSE 2
#define FPC_END_SEGMENT 3
#define FPC_END_EVICTED 4
#define FPC_END_FLUSH 5

/* One packet of a session: where the PCAP writer put it. */
typedef struct {
    int64_t pos;     /* byte offset of the record header in its PCAP file */
    int32_t file;    /* file number; -1 when the write failed */
    uint32_t caplen; /* bytes captured */
} FpcPosition;

/* A growable list of positions; up to one lives inline, so a one-packet
 * session needs no allocation of its own. */
typedef struct {
    union {
        FpcPosition one;
        FpcPosition *many;
    } u;
    uint32_t n;
    uint32_t cap; /* 1: `one` is used; more: `many` is a heap block of cap entries */
} FpcPositions;

/* Counters of the current segment; reset when a segment is cut. Sides are in
 * key orientation: 0 = sent by the lower endpoint of the key, 1 = the higher. */
typedef struct {
    int64_t first_ts, last_ts;
    uint64_t bytes[2];
    uint64_t payload[2]; /* see payload_of() in session.c */
    uint32_t packets[2];
    uint32_t tcp[7]; /* syn, syn_ack, ack (no SYN/FIN/RST/PSH), psh, fin, rst, urg */
    uint16_t tunnel; /* FPC_TUNNEL_* bits of any packet */
    uint8_t nmac[2], nttl[2], nicmp, nvlan[2];
    uint8_t macs[2][FPC_SESSION_MACS][6]; /* sent from or to this side */
    uint16_t vlans[2][FPC_SESSION_VLANS]; /* outer ids, inner ids */
    uint8_t ttls[2][FPC_SESSION_TTLS];
    uint8_t icmp[FPC_SESSION_ICMP][2];
} FpcCounts;

/* One ended session or segment as fpc_session_take hands it out; the numpy
 * dtype in fpc/session.py is built from fpc_session_ended_fields. */
typedef struct {
    uint64_t serial; /* same for every segment of a session, never reused */
    int64_t session_ts;
    uint8_t key[FPC_KEY_LEN];
    uint32_t hash; /* the decoder's symmetric hash, for the session id */
    FpcCounts c;
    uint32_t segment;
    uint32_t npos;
    uint8_t client; /* key side of the client: 0 lower, 1 higher */
    uint8_t vlan_count;
    uint8_t end_reason; /* FPC_END_* */
    uint8_t unused;
} FpcEnded;

/* A numpy field of FpcEnded: name, numpy format (native byte order), byte offset. */
typedef struct {
    const char *name;
    const char *format;
    size_t offset;
} FpcEndedField;

extern const FpcEndedField fpc_session_ended_fields[];

typedef struct {
    int64_t timeout_ns[3]; /* idle timeout of TCP, UDP, other protocols */
    int64_t close_ns;      /* linger after FIN both ways or RST */
    int64_t segment_age_ns;
    uint32_t segment_packets;
    uint32_t max_sessions;
    uint32_t app_bytes;     /* payload bytes per direction offered to the parsers */
    uint64_t max_positions; /* packet positions held by all active sessions */
    int app_layer;
} FpcSessionLimits;

/* Where each field the table reads sits in a row of fpc.decode.DECODED. */
typedef struct {
    ptrdiff_t itemsize;
    ptrdiff_t status, proto, tcp_flags, ttl, reverse, vlan_count, icmp_type, icmp_code;
    ptrdiff_t tunnel, payload_len, seq, ack, src_mac, dst_mac, vlan, key, hash;
    ptrdiff_t src, dst, sport, dport;
} FpcRowLayout;

/* The arrays of one batch; packet i is row i of `rows`. */
typedef struct {
    const char *rows;
    const FpcRowLayout *layout;
    const int64_t *ts_ns;
    const uint32_t *wirelen;
    const uint32_t *caplen;
    const int64_t *file;
    const int64_t *pos;
    ptrdiff_t n;
} FpcBatch;

/* Where fpc_session_add lists the packets the app-layer parsers want. */
typedef struct {
    int64_t *index;   /* packet index in the batch */
    uint64_t *serial; /* its session */
    uint8_t *dir;     /* 0: client to server, 1: server to client */
    ptrdiff_t n;
} FpcAppOut;

typedef struct {
    uint64_t sessions;      /* sessions started */
    uint64_t segments;      /* segments cut by age or packet count */
    uint64_t evicted;       /* sessions ended at max_sessions */
    uint64_t position_cuts; /* segments cut because max_positions was reached */
} FpcSessionCounters;

typedef struct FpcSessionTable FpcSessionTable;

/* All below: no GIL needed, but one thread at a time per table. */

/* A new empty table, or NULL when out of memory. */
FpcSessionTable *fpc_session_new(const FpcSessionLimits *limits, uint64_t seed);
void fpc_session_free(FpcSessionTable *t);
/*
 * Accounts every packet of `b` whose status is FPC_STATUS_IP or _LINK, then ends the
 * sessions idle as of the batch's newest packet. Returns -1 when done, else
 * the index of the packet where memory ran out (the packets before it were
 * accounted).
 */
ptrdiff_t fpc_session_add(FpcSessionTable *t, const FpcBatch *b, FpcAppOut *app);
/* Ends the sessions idle or closed as of `now_ns`; -1 when out of memory. */
int fpc_session_expire(FpcSessionTable *t, int64_t now_ns);
/* Ends every session with FPC_END_FLUSH; -1 when out of memory. */
int fpc_session_flush(FpcSessionTable *t);
/* Both client directions for fpc_session_app_done: bit 0 client to server,
 * bit 1 server to client. */
#define FPC_APP_DONE_ALL 3
/* Stops offering the packets of session `serial` that travel in `directions`
 * (bits as above) to the parsers; returns the directions stopped so far
 * (all for a session that ended). */
int fpc_session_app_done(FpcSessionTable *t, uint64_t serial, int directions);
/*
 * Sequence numbers of the SYNs session `serial` saw per client direction
 * before its first packet for the parsers (bit d of the result: seq[d] set);
 * -1 for an unknown serial. A session's parsers start at its first payload,
 * so a half-open session costs the caller nothing.
 */
int fpc_session_syn_seqs(const FpcSessionTable *t, uint64_t serial, uint32_t seq[2]);
/* Ended sessions waiting and their total positions. */
size_t fpc_session_ended_count(const FpcSessionTable *t, size_t *npos);
/* Copies the ended sessions to `rec` and their positions to `pos` (sized
 * from fpc_session_ended_count), then forgets them. */
void fpc_session_take(FpcSessionTable *t, FpcEnded *rec, FpcPosition *pos);
size_t fpc_session_active(const FpcSessionTable *t);
const FpcSessionCounters *fpc_session_counters(const FpcSessionTable *t);
/* Bytes of memory the table holds. */
size_t fpc_session_memory(const FpcSessionTable *t);

#endif /* FPC_SESSION_H */
