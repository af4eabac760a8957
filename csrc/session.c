/*
 * The session table: per-packet session accounting for fpc.session.
 *
 * Plain C, run with the GIL released (session_type.c holds the GIL around the
 * calls and lets one thread in at a time); no Python object is touched. The
 * table owns all its memory:
 *
 *   slots      fixed FpcSlot structs in chunks of SLOT_CHUNK, never moved, so an
 *              index stays valid; freed slots go on a free list
 *   buckets    open addressing with linear probing over (tag, slot + 1); the tag
 *              is the low 32 bits of a SipHash-1-3 of the key under a per-table
 *              secret, so a hostile stream cannot aim at one probe chain
 *   lists      one LRU list per idle timeout (TCP, UDP, other) plus one for
 *              closing TCP sessions, oldest first, linked through the slots
 *   positions  one growable FpcPositions per session, capped by segment_packets;
 *              all sessions together hold at most max_positions (the oldest
 *              sessions are cut into segments past it)
 *   ended      ended sessions and segments with their positions, until
 *              fpc_session_take copies them out
 *
 * Session serials pack the slot index (low SERIAL_INDEX_BITS) with a counter,
 * so fpc_session_app_done finds the slot without a search; they repeat only
 * after 2^37 sessions.
 */
#include <stdlib.h>
#include <string.h>

#include "session.h"

#define NIL UINT32_MAX
#define SLOT_CHUNK_BITS 10
#define SLOT_CHUNK (1u << SLOT_CHUNK_BITS)
#define SERIAL_INDEX_BITS 27
#define MIN_BUCKETS 1024u

#define LRU_TCP 0
#define LRU_UDP 1
#define LRU_OTHER 2
#define LRU_CLOSING 3
#define LRU_LISTS 4

#define PROTO_ICMP 1
#define PROTO_TCP 6
#define PROTO_UDP 17
#define PROTO_ICMPV6 58
#define PROTO_SCTP 132
#define PROTO_ESP 50

#define ICMP_HEADER 8 /* type, code, checksum, and the 4 bytes that depend on the type */

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_PSH 0x08
#define TCP_ACK 0x10
#define TCP_URG 0x20

/* Ended sessions one packet can cause: idle or port reuse, eviction, segment. */
#define ENDS_PER_PACKET 3

/* How many packets ahead of the one being added its home bucket, then its
 * slot, then the end of its positions are prefetched: with thousands of
 * sessions interleaved each of the three is otherwise a cache miss. */
#define AHEAD_BUCKET 12
#define AHEAD_SLOT 6
#define AHEAD_POSITIONS 2

#if defined(__GNUC__)
#define PREFETCH(p) __builtin_prefetch(p)
#else
#define PREFETCH(p) ((void)(p))
#endif

typedef struct {
    FpcCounts c;
    uint8_t key[FPC_KEY_LEN];
    uint32_t hash; /* the decoder's hash, for the session id */
    uint32_t tag;  /* low bits of the table's own hash of the key */
    uint32_t segment;
    uint64_t serial;
    int64_t session_ts;
    FpcPositions pos;
    uint32_t app_bytes[2]; /* payload offered to the parsers, per client direction */
    union {
        struct { /* TCP sessions */
            uint32_t syn_seq[2];     /* per client direction, of SYNs seen before app_started */
            uint32_t tcp_next[2];    /* per key side: next stream byte expected (see stream_take) */
            uint32_t tcp_start[2];   /* per key side: where its stream started (see stream_start) */
            uint32_t tcp_held[2][2]; /* per key side: [start, end) of bytes seen past a gap */
        };
        struct { /* sessions keyed by transaction: their first packet's endpoints */
            uint8_t addr[2][16]; /* the client's, the server's */
            uint16_t port[2];
        } first;
    };
    uint32_t prev, next;     /* LRU links; `next` links the free list too */
    uint8_t lru;             /* LRU_* list the slot is on */
    uint8_t client;          /* key side of the client */
    uint8_t vlan_count;
    uint8_t app_done;    /* bit d: the parsers want no more packets of client direction d */
    uint8_t app_started; /* a packet was listed for the parsers */
    uint8_t syn_seen;    /* bit d: syn_seq[d] is set */
    uint8_t fin;         /* bit s: FIN seen from key side s */
    uint8_t rst;
    uint8_t tcp_known; /* bit s: tcp_next[s] is set */
    uint8_t tcp_holds; /* bit s: tcp_held[s] is set */
} FpcSlot;

typedef struct {
    uint32_t tag;
    uint32_t slot; /* slot index + 1; 0 marks an empty bucket */
} FpcBucket;

typedef struct {
    FpcEnded rec;
    FpcPositions pos;
} FpcExport;

struct FpcSessionTable {
    FpcSessionLimits lim;
    uint64_t k0, k1; /* SipHash key */
    FpcSlot **chunks;
    uint32_t nchunks, chunks_cap;
    uint32_t nslots; /* slots handed out at least once */
    uint32_t free_head;
    uint32_t active;
    FpcBucket *buckets;
    uint32_t mask; /* bucket count - 1 */
    uint32_t head[LRU_LISTS], tail[LRU_LISTS];
    uint64_t positions;  /* held by active sessions */
    uint64_t heap_bytes; /* position blocks, of active and ended sessions */
    uint64_t next_serial;
    int64_t now;
    FpcExport *ended;
    size_t nended, ended_cap;
    uint32_t *tags; /* tag of each packet of the batch being added */
    size_t tags_cap;
    FpcSessionCounters counters;
};

/* What the table reads of one decoded packet. */
typedef struct {
    const uint8_t *key, *src_mac, *dst_mac, *src, *dst;
    uint32_t hash, payload_len, seq, ack;
    uint16_t tunnel, vlan[2], sport, dport;
    uint8_t proto, flags, ttl, reverse, vlan_count, icmp_type, icmp_code;
} FpcPacket;

const FpcEndedField fpc_session_ended_fields[] = {
    {"serial", "u8", offsetof(FpcEnded, serial)},
    {"session_ts", "i8", offsetof(FpcEnded, session_ts)},
    {"key", "V44", offsetof(FpcEnded, key)},
    {"hash", "u4", offsetof(FpcEnded, hash)},
    {"first_ts", "i8", offsetof(FpcEnded, c.first_ts)},
    {"last_ts", "i8", offsetof(FpcEnded, c.last_ts)},
    {"bytes", "(2,)u8", offsetof(FpcEnded, c.bytes)},
    {"payload", "(2,)u8", offsetof(FpcEnded, c.payload)},
    {"packets", "(2,)u4", offsetof(FpcEnded, c.packets)},
    {"tcp", "(7,)u4", offsetof(FpcEnded, c.tcp)},
    {"tunnel", "u2", offsetof(FpcEnded, c.tunnel)},
    {"nmac", "(2,)u1", offsetof(FpcEnded, c.nmac)},
    {"nttl", "(2,)u1", offsetof(FpcEnded, c.nttl)},
    {"nicmp", "u1", offsetof(FpcEnded, c.nicmp)},
    {"nvlan", "(2,)u1", offsetof(FpcEnded, c.nvlan)},
    {"macs", "(2,4,6)u1", offsetof(FpcEnded, c.macs)},
    {"vlans", "(2,4)u2", offsetof(FpcEnded, c.vlans)},
    {"ttls", "(2,8)u1", offsetof(FpcEnded, c.ttls)},
    {"icmp", "(8,2)u1", offsetof(FpcEnded, c.icmp)},
    {"segment", "u4", offsetof(FpcEnded, segment)},
    {"npos", "u4", offsetof(FpcEnded, npos)},
    {"client", "u1", offsetof(FpcEnded, client)},
    {"vlan_count", "u1", offsetof(FpcEnded, vlan_count)},
    {"end_reason", "u1", offsetof(FpcEnded, end_reason)},
    {NULL, NULL, 0},
};

_Static_assert(FPC_SESSION_MACS == 4 && FPC_SESSION_TTLS == 8 && FPC_SESSION_ICMP == 8 &&
                   FPC_SESSION_VLANS == 4,
               "update the formats of fpc_session_ended_fields");

/* --- hashing ------------------------------------------------------------- */

#define ROTL64(x, b) (((x) << (b)) | ((x) >> (64 - (b))))

static uint64_t
load_le64(const uint8_t *p)
{
    uint64_t v = 0;
    int i;

    for (i = 7; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

/* SipHash-1-3 (one compression, three finalization rounds) of the 44-byte key. */
static uint64_t
siphash_key(const FpcSessionTable *t, const uint8_t *key)
{
    uint64_t v0 = t->k0 ^ 0x736f6d6570736575ull, v1 = t->k1 ^ 0x646f72616e646f6dull;
    uint64_t v2 = t->k0 ^ 0x6c7967656e657261ull, v3 = t->k1 ^ 0x7465646279746573ull;
    uint64_t m;
    int i, r;

#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1, v1 = ROTL64(v1, 13), v1 ^= v0, v0 = ROTL64(v0, 32);                              \
        v2 += v3, v3 = ROTL64(v3, 16), v3 ^= v2;                                                   \
        v0 += v3, v3 = ROTL64(v3, 21), v3 ^= v0;                                                   \
        v2 += v1, v1 = ROTL64(v1, 17), v1 ^= v2, v2 = ROTL64(v2, 32);                              \
    } while (0)

    for (i = 0; i <= FPC_KEY_LEN / 8; i++) {
        if (i < FPC_KEY_LEN / 8) {
            m = load_le64(key + 8 * i);
        } else { /* the last 4 bytes, and the length in the top byte */
            m = ((uint64_t)FPC_KEY_LEN << 56) | (uint64_t)key[40] | ((uint64_t)key[41] << 8) |
                ((uint64_t)key[42] << 16) | ((uint64_t)key[43] << 24);
        }
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    v2 ^= 0xff;
    for (r = 0; r < 3; r++) {
        SIPROUND;
    }
#undef SIPROUND
    return v0 ^ v1 ^ v2 ^ v3;
}

/* a - b, saturated: packet times come from files and may be anything. */
static int64_t
ts_diff(int64_t a, int64_t b)
{
    if (b < 0 && a > INT64_MAX + b) {
        return INT64_MAX;
    }
    if (b > 0 && a < INT64_MIN + b) {
        return INT64_MIN;
    }
    return a - b;
}

/* --- slots --------------------------------------------------------------- */

static FpcSlot *
slot_at(const FpcSessionTable *t, uint32_t i)
{
    return &t->chunks[i >> SLOT_CHUNK_BITS][i & (SLOT_CHUNK - 1)];
}

/* Index of a free slot, or NIL when out of memory. */
static uint32_t
slot_alloc(FpcSessionTable *t)
{
    uint32_t i = t->free_head;
    FpcSlot **chunks;

    if (i != NIL) {
        t->free_head = slot_at(t, i)->next;
        return i;
    }
    if ((t->nslots >> SLOT_CHUNK_BITS) == t->nchunks) {
        if (t->nchunks == t->chunks_cap) {
            chunks = realloc(t->chunks, sizeof(*chunks) * (t->chunks_cap * 2 + 4));
            if (chunks == NULL) {
                return NIL;
            }
            t->chunks = chunks;
            t->chunks_cap = t->chunks_cap * 2 + 4;
        }
        t->chunks[t->nchunks] = malloc(sizeof(FpcSlot) * SLOT_CHUNK);
        if (t->chunks[t->nchunks] == NULL) {
            return NIL;
        }
        t->nchunks++;
    }
    return t->nslots++;
}

static void
slot_release(FpcSessionTable *t, uint32_t i)
{
    slot_at(t, i)->next = t->free_head;
    t->free_head = i;
}

/* --- positions ----------------------------------------------------------- */

static FpcPosition *
pos_data(FpcPositions *p)
{
    return p->cap <= 1 ? &p->u.one : p->u.many;
}

static void
pos_clear(FpcSessionTable *t, FpcPositions *p)
{
    if (p->cap > 1) {
        free(p->u.many);
        t->heap_bytes -= (uint64_t)p->cap * sizeof(FpcPosition);
    }
    p->n = 0;
    p->cap = 1;
}

/* Appends `v`; -1 when out of memory. */
static int
pos_push(FpcSessionTable *t, FpcPositions *p, FpcPosition v)
{
    uint32_t cap = p->cap <= 1 ? 4 : p->cap * 2;
    FpcPosition *m;

    if (p->n == p->cap) {
        m = realloc(p->cap <= 1 ? NULL : p->u.many, sizeof(FpcPosition) * cap);
        if (m == NULL) {
            return -1;
        }
        if (p->cap <= 1) {
            m[0] = p->u.one;
        } else {
            t->heap_bytes -= (uint64_t)p->cap * sizeof(FpcPosition);
        }
        t->heap_bytes += (uint64_t)cap * sizeof(FpcPosition);
        p->u.many = m;
        p->cap = cap;
    }
    pos_data(p)[p->n++] = v;
    return 0;
}

/* --- buckets ------------------------------------------------------------- */

/* Slot index of `key`, or NIL. */
static uint32_t
bucket_find(const FpcSessionTable *t, uint32_t tag, const uint8_t *key)
{
    uint32_t b = tag & t->mask;
    const FpcBucket *e;

    for (;; b = (b + 1) & t->mask) {
        e = &t->buckets[b];
        if (e->slot == 0) {
            return NIL;
        }
        if (e->tag == tag && memcmp(slot_at(t, e->slot - 1)->key, key, FPC_KEY_LEN) == 0) {
            return e->slot - 1;
        }
    }
}

static void
bucket_put(FpcBucket *buckets, uint32_t mask, uint32_t tag, uint32_t slot_plus_1)
{
    uint32_t b = tag & mask;

    while (buckets[b].slot != 0) {
        b = (b + 1) & mask;
    }
    buckets[b].tag = tag;
    buckets[b].slot = slot_plus_1;
}

/* Doubles the buckets when one more session would fill them past half; -1 when out of memory. */
static int
bucket_reserve(FpcSessionTable *t)
{
    uint32_t cap = t->mask + 1, b;
    FpcBucket *grown;

    if ((uint64_t)(t->active + 1) * 2 <= cap) {
        return 0;
    }
    grown = calloc((size_t)cap * 2, sizeof(FpcBucket));
    if (grown == NULL) {
        return -1;
    }
    for (b = 0; b < cap; b++) {
        if (t->buckets[b].slot != 0) {
            bucket_put(grown, cap * 2 - 1, t->buckets[b].tag, t->buckets[b].slot);
        }
    }
    free(t->buckets);
    t->buckets = grown;
    t->mask = cap * 2 - 1;
    return 0;
}

/* Empties bucket `b` and shifts back the entries of its probe chain. */
static void
bucket_remove(FpcSessionTable *t, uint32_t b)
{
    uint32_t hole = b, j = b, home;

    for (;;) {
        j = (j + 1) & t->mask;
        if (t->buckets[j].slot == 0) {
            break;
        }
        home = t->buckets[j].tag & t->mask;
        /* The entry at j may move to the hole only if its home is not in (hole, j]. */
        if (hole <= j ? (hole < home && home <= j) : (hole < home || home <= j)) {
            continue;
        }
        t->buckets[hole] = t->buckets[j];
        hole = j;
    }
    t->buckets[hole].slot = 0;
}

static void
bucket_remove_slot(FpcSessionTable *t, uint32_t i)
{
    uint32_t b = slot_at(t, i)->tag & t->mask;

    while (t->buckets[b].slot != i + 1) {
        b = (b + 1) & t->mask;
    }
    bucket_remove(t, b);
}

/* --- LRU lists ------------------------------------------------------------ */

static void
lru_unlink(FpcSessionTable *t, uint32_t i)
{
    FpcSlot *s = slot_at(t, i);

    if (s->prev != NIL) {
        slot_at(t, s->prev)->next = s->next;
    } else {
        t->head[s->lru] = s->next;
    }
    if (s->next != NIL) {
        slot_at(t, s->next)->prev = s->prev;
    } else {
        t->tail[s->lru] = s->prev;
    }
}

static void
lru_append(FpcSessionTable *t, uint32_t i, uint8_t list)
{
    FpcSlot *s = slot_at(t, i);

    s->lru = list;
    s->prev = t->tail[list];
    s->next = NIL;
    if (t->tail[list] != NIL) {
        slot_at(t, t->tail[list])->next = i;
    } else {
        t->head[list] = i;
    }
    t->tail[list] = i;
}

/* Moves slot i to the newest end of `list`. */
static void
lru_touch(FpcSessionTable *t, uint32_t i, uint8_t list)
{
    if (t->tail[list] == i) {
        return;
    }
    lru_unlink(t, i);
    lru_append(t, i, list);
}

static uint8_t
lru_class(uint8_t proto)
{
    return proto == PROTO_TCP ? LRU_TCP : proto == PROTO_UDP ? LRU_UDP : LRU_OTHER;
}

/* The list whose oldest session was idle longest, or LRU_LISTS when all are empty. */
static int
lru_oldest(const FpcSessionTable *t, const uint32_t *cursor)
{
    int l, best = LRU_LISTS;

    for (l = 0; l < LRU_LISTS; l++) {
        if (cursor[l] != NIL && (best == LRU_LISTS || slot_at(t, cursor[l])->c.last_ts <
                                                          slot_at(t, cursor[best])->c.last_ts)) {
            best = l;
        }
    }
    return best;
}

/* --- ending sessions ------------------------------------------------------ */

/* Room for `extra` more ended sessions; -1 when out of memory. */
static int
ended_reserve(FpcSessionTable *t, size_t extra)
{
    size_t cap = t->ended_cap ? t->ended_cap * 2 : 64;
    FpcExport *grown;

    if (t->nended + extra <= t->ended_cap) {
        return 0;
    }
    while (cap < t->nended + extra) {
        cap *= 2;
    }
    grown = realloc(t->ended, sizeof(FpcExport) * cap);
    if (grown == NULL) {
        return -1;
    }
    t->ended = grown;
    t->ended_cap = cap;
    return 0;
}

static void
put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static int
is_transaction_key(const uint8_t *key)
{
    /* a non-IP frame's key (IP version 0) ends in its ethertype instead */
    return key[37] != 0 && key[FPC_KEY_LEN - 1] == FPC_KEY_TRANSACTION;
}

/* Swaps the two sides of a per-side array `a` (FpcCounts' largest side: 24 bytes). */
#define SWAP_SIDES(a) swap_halves((a), sizeof(a) / 2)
_Static_assert(sizeof(((FpcCounts *)0)->macs) / 2 <= 32, "swap_halves holds 32 bytes");

static void
swap_halves(void *a, size_t half)
{
    uint8_t tmp[32];

    memcpy(tmp, a, half);
    memcpy(a, (uint8_t *)a + half, half);
    memcpy((uint8_t *)a + half, tmp, half);
}

/*
 * A session keyed by transaction (transaction.c) is reported under the
 * endpoints of its first packet, ordered as a 5-tuple key orders them, so
 * that its record reads like any other; its per-side counts follow.
 */
static void
report_endpoints(FpcEnded *rec, const FpcSlot *s)
{
    const uint8_t(*addr)[16] = s->first.addr;
    const uint16_t *port = s->first.port;
    int cmp = memcmp(addr[0], addr[1], 16);
    int swap = cmp > 0 || (cmp == 0 && port[0] > port[1]);
    FpcCounts *c = &rec->c;

    memcpy(rec->key, addr[swap], 16);
    memcpy(rec->key + 16, addr[!swap], 16);
    put_be16(rec->key + 32, port[swap]);
    put_be16(rec->key + 34, port[!swap]);
    rec->key[FPC_KEY_LEN - 1] = 0;
    if (swap) {
        rec->client ^= 1;
        SWAP_SIDES(c->bytes);
        SWAP_SIDES(c->payload);
        SWAP_SIDES(c->packets);
        SWAP_SIDES(c->nmac);
        SWAP_SIDES(c->macs);
        SWAP_SIDES(c->nttl);
        SWAP_SIDES(c->ttls);
    }
}

/* Moves the current segment of slot `s` to the ended list (room reserved). */
static void
ended_push(FpcSessionTable *t, FpcSlot *s, uint8_t reason)
{
    FpcExport *e = &t->ended[t->nended++];

    memset(&e->rec, 0, sizeof(e->rec));
    e->rec.serial = s->serial;
    e->rec.session_ts = s->session_ts;
    memcpy(e->rec.key, s->key, FPC_KEY_LEN);
    e->rec.hash = s->hash;
    e->rec.c = s->c;
    e->rec.segment = s->segment;
    e->rec.npos = s->pos.n;
    e->rec.client = s->client;
    e->rec.vlan_count = s->vlan_count;
    e->rec.end_reason = reason;
    if (is_transaction_key(s->key)) {
        report_endpoints(&e->rec, s);
    }
    e->pos = s->pos;
    t->positions -= s->pos.n;
    s->pos.n = 0;
    s->pos.cap = 1;
}

/* Ends the session in slot i (room for one ended session reserved). A segment
 * cut just before leaves nothing to report. */
static void
session_end(FpcSessionTable *t, uint32_t i, uint8_t reason)
{
    FpcSlot *s = slot_at(t, i);

    if (s->pos.n > 0) {
        ended_push(t, s, reason);
    } else {
        pos_clear(t, &s->pos);
    }
    bucket_remove_slot(t, i);
    lru_unlink(t, i);
    slot_release(t, i);
    t->active--;
}

/* Reports the current segment of slot `s` and starts the next one. */
static void
segment_cut(FpcSessionTable *t, FpcSlot *s)
{
    int64_t last = s->c.last_ts;

    ended_push(t, s, FPC_END_SEGMENT);
    s->segment++;
    memset(&s->c, 0, sizeof(s->c));
    s->c.first_ts = s->c.last_ts = last;
}

static void
evict_oldest(FpcSessionTable *t)
{
    int l = lru_oldest(t, t->head);

    if (l != LRU_LISTS) {
        session_end(t, t->head[l], FPC_END_EVICTED);
        t->counters.evicted++;
    }
}

/* Cuts segments off the longest-idle sessions until the positions held fall
 * to three quarters of max_positions; -1 when out of memory. */
static int
positions_relieve(FpcSessionTable *t)
{
    uint64_t target = t->lim.max_positions - t->lim.max_positions / 4;
    uint32_t cursor[LRU_LISTS];
    FpcSlot *s;
    int l;

    memcpy(cursor, t->head, sizeof(cursor));
    while (t->positions > target) {
        l = lru_oldest(t, cursor);
        if (l == LRU_LISTS) {
            break;
        }
        s = slot_at(t, cursor[l]);
        cursor[l] = s->next;
        if (s->pos.n == 0) {
            continue;
        }
        if (ended_reserve(t, 1) < 0) {
            return -1;
        }
        segment_cut(t, s);
        t->counters.position_cuts++;
    }
    return 0;
}

/* Ends the sessions of list `l` idle longer than `limit` as of `now`; -1 when out of memory. */
static int
expire_list(FpcSessionTable *t, int l, int64_t now, int64_t limit)
{
    uint32_t i;
    int64_t idle;

    while ((i = t->head[l]) != NIL) {
        idle = ts_diff(now, slot_at(t, i)->c.last_ts);
        if (idle <= limit) {
            break;
        }
        if (ended_reserve(t, 1) < 0) {
            return -1;
        }
        session_end(t, i,
                    idle > t->lim.close_ns && l == LRU_CLOSING ? FPC_END_TCP_CLOSE : FPC_END_IDLE);
    }
    return 0;
}

int
fpc_session_expire(FpcSessionTable *t, int64_t now_ns)
{
    int64_t close = t->lim.close_ns;
    int l;

    for (l = LRU_TCP; l <= LRU_OTHER; l++) {
        if (expire_list(t, l, now_ns, t->lim.timeout_ns[l]) < 0) {
            return -1;
        }
    }
    if (close > t->lim.timeout_ns[LRU_TCP]) {
        close = t->lim.timeout_ns[LRU_TCP];
    }
    return expire_list(t, LRU_CLOSING, now_ns, close);
}

int
fpc_session_flush(FpcSessionTable *t)
{
    int l;

    for (l = 0; l < LRU_LISTS; l++) {
        while (t->head[l] != NIL) {
            if (ended_reserve(t, 1) < 0) {
                return -1;
            }
            session_end(t, t->head[l], FPC_END_FLUSH);
        }
    }
    return 0;
}

/* --- accounting ----------------------------------------------------------- */

static void
packet_read(const char *row, const FpcRowLayout *L, FpcPacket *p)
{
    p->key = (const uint8_t *)row + L->key;
    p->src_mac = (const uint8_t *)row + L->src_mac;
    p->dst_mac = (const uint8_t *)row + L->dst_mac;
    p->src = (const uint8_t *)row + L->src;
    p->dst = (const uint8_t *)row + L->dst;
    memcpy(&p->sport, row + L->sport, 2);
    memcpy(&p->dport, row + L->dport, 2);
    memcpy(p->vlan, row + L->vlan, 4);
    memcpy(&p->hash, row + L->hash, 4);
    memcpy(&p->payload_len, row + L->payload_len, 4);
    memcpy(&p->seq, row + L->seq, 4);
    memcpy(&p->ack, row + L->ack, 4);
    memcpy(&p->tunnel, row + L->tunnel, 2);
    p->proto = (uint8_t)row[L->proto];
    p->flags = (uint8_t)row[L->tcp_flags];
    p->ttl = (uint8_t)row[L->ttl];
    p->reverse = row[L->reverse] ? 1 : 0;
    p->vlan_count = (uint8_t)row[L->vlan_count];
    p->icmp_type = (uint8_t)row[L->icmp_type];
    p->icmp_code = (uint8_t)row[L->icmp_code];
}

static int
is_bare_syn(const FpcPacket *p)
{
    return p->proto == PROTO_TCP && (p->flags & (TCP_SYN | TCP_ACK)) == TCP_SYN;
}

/* Starts a session for packet p in a free slot; NIL when out of memory. */

/* Port of key endpoint `side` (0: lower, 1: higher), stored big-endian. */
static uint16_t
key_port(const FpcPacket *p, int side)
{
    const uint8_t *port = p->key + 32 + 2 * side;

    return (uint16_t)(port[0] << 8 | port[1]);
}

/*
 * Key side of the client: the sender of a bare SYN, the receiver of a SYN-ACK.
 * A TCP session first seen mid-stream takes the side with the well-known port
 * (below 1024, the other not) as the server; otherwise the first sender is
 * the client.
 */
static uint8_t
client_side(const FpcPacket *p, int syn_ack)
{
    int sender = p->reverse;

    if (syn_ack) {
        return (uint8_t)(sender ^ 1);
    }
    if (p->proto == PROTO_TCP && !(p->flags & TCP_SYN) && key_port(p, sender) < 1024 &&
        key_port(p, sender ^ 1) >= 1024) {
        return (uint8_t)(sender ^ 1);
    }
    return (uint8_t)sender;
}

static uint32_t
session_start(FpcSessionTable *t, const FpcPacket *p, uint32_t tag, int64_t ts)
{
    uint32_t i;
    FpcSlot *s;
    int syn_ack = p->proto == PROTO_TCP && (p->flags & TCP_SYN) && (p->flags & TCP_ACK);

    if (t->active >= t->lim.max_sessions) {
        evict_oldest(t);
    }
    if (bucket_reserve(t) < 0 || (i = slot_alloc(t)) == NIL) {
        return NIL;
    }
    s = slot_at(t, i);
    memset(s, 0, sizeof(*s));
    memcpy(s->key, p->key, FPC_KEY_LEN);
    s->hash = p->hash;
    s->tag = tag;
    s->serial = (t->next_serial++ << SERIAL_INDEX_BITS) | i;
    s->session_ts = ts;
    s->c.first_ts = s->c.last_ts = ts;
    s->pos.cap = 1;
    s->client = client_side(p, syn_ack);
    if (is_transaction_key(p->key)) {
        int up = !p->reverse; /* side 0 is the client's */

        s->client = 0;
        memcpy(s->first.addr[0], up ? p->src : p->dst, 16);
        memcpy(s->first.addr[1], up ? p->dst : p->src, 16);
        s->first.port[0] = up ? p->sport : p->dport;
        s->first.port[1] = up ? p->dport : p->sport;
    }
    s->vlan_count = p->vlan_count;
    int app_transport = p->proto == PROTO_TCP || p->proto == PROTO_UDP || p->proto == PROTO_SCTP;
    s->app_done = t->lim.app_layer && app_transport ? 0 : FPC_APP_DONE_ALL;
    bucket_put(t->buckets, t->mask, tag, i + 1);
    lru_append(t, i, lru_class(p->proto));
    t->active++;
    t->counters.sessions++;
    return i;
}

/*
 * A bare SYN whose sequence number starts the stream its side already has:
 * the connection's own SYN arriving late (a reordered capture), not a new
 * connection on the same ports, which takes a new initial sequence number.
 */
static int
is_own_syn(const FpcSlot *s, const FpcPacket *p)
{
    int side = p->reverse;

    return (s->tcp_known & (1u << side)) && s->tcp_start[side] == p->seq + 1;
}

/* The slot of p's session, ending the old one at an idle gap or port reuse. */
static uint32_t
session_find(FpcSessionTable *t, const FpcPacket *p, uint32_t tag, int64_t ts)
{
    uint32_t i;
    const FpcSlot *s;
    int64_t gap, timeout;

    i = bucket_find(t, tag, p->key);
    if (i != NIL) {
        s = slot_at(t, i);
        gap = ts_diff(ts, s->c.last_ts);
        timeout = t->lim.timeout_ns[lru_class(p->proto)];
        /* A packet from long before the session began (files read one after
         * another, times going back) is no more part of it than one long after. */
        if (gap > timeout || ts_diff(s->session_ts, ts) > timeout) {
            session_end(t, i, FPC_END_IDLE);
            i = NIL;
        } else if (s->lru == LRU_CLOSING && gap > t->lim.close_ns) {
            session_end(t, i, FPC_END_TCP_CLOSE);
            i = NIL;
        } else if (is_bare_syn(p) && (s->fin || s->rst) && !is_own_syn(s, p)) {
            session_end(t, i, FPC_END_TCP_CLOSE);
            i = NIL;
        }
    }
    return i != NIL ? i : session_start(t, p, tag, ts);
}

/* Adds `mac` to the MACs of key side `side` unless it is there or all zero. */
static void
add_mac(FpcCounts *c, int side, const uint8_t *mac)
{
    static const uint8_t zero[6] = {0};
    int k;

    for (k = 0; k < c->nmac[side] && memcmp(c->macs[side][k], mac, 6) != 0; k++) {
    }
    if (k == c->nmac[side] && k < FPC_SESSION_MACS && memcmp(mac, zero, 6) != 0) {
        memcpy(c->macs[side][c->nmac[side]++], mac, 6);
    }
}

/* Adds `id` to the outer (layer 0) or inner (1) VLAN ids unless it is there. */
static void
add_vlan(FpcCounts *c, int layer, uint16_t id)
{
    int k;

    for (k = 0; k < c->nvlan[layer] && c->vlans[layer][k] != id; k++) {
    }
    if (k == c->nvlan[layer] && k < FPC_SESSION_VLANS) {
        c->vlans[layer][c->nvlan[layer]++] = id;
    }
}

/*
 * A side's MACs are those its packets came from and those the other side's
 * packets were sent to: the analyst looking for a host finds it by either,
 * and a gateway's or a multicast group's address shows on the side it serves.
 */
static void
add_link(FpcCounts *c, const FpcPacket *p)
{
    int side = p->reverse, k;

    for (k = 0; k < c->nttl[side] && c->ttls[side][k] != p->ttl; k++) {
    }
    if (k == c->nttl[side] && k < FPC_SESSION_TTLS) {
        c->ttls[side][c->nttl[side]++] = p->ttl;
    }
    add_mac(c, side, p->src_mac);
    add_mac(c, side ^ 1, p->dst_mac);
    if (p->vlan_count > 0) {
        add_vlan(c, 0, p->vlan[0]);
    }
    if (p->vlan_count > 1) {
        add_vlan(c, 1, p->vlan[1]);
    }
}

static void
add_icmp(FpcCounts *c, const FpcPacket *p)
{
    int k;

    for (k = 0; k < c->nicmp; k++) {
        if (c->icmp[k][0] == p->icmp_type && c->icmp[k][1] == p->icmp_code) {
            return;
        }
    }
    if (k < FPC_SESSION_ICMP) {
        c->icmp[k][0] = p->icmp_type;
        c->icmp[k][1] = p->icmp_code;
        c->nicmp++;
    }
}

static void
add_tcp(FpcSlot *s, const FpcPacket *p)
{
    uint8_t f = p->flags;
    uint32_t *tcp = s->c.tcp;

    tcp[0] += (f & (TCP_SYN | TCP_ACK)) == TCP_SYN;
    tcp[1] += (f & (TCP_SYN | TCP_ACK)) == (TCP_SYN | TCP_ACK);
    tcp[2] += (f & (TCP_SYN | TCP_ACK | TCP_FIN | TCP_RST | TCP_PSH)) == TCP_ACK;
    tcp[3] += (f & TCP_PSH) != 0;
    tcp[4] += (f & TCP_FIN) != 0;
    tcp[5] += (f & TCP_RST) != 0;
    tcp[6] += (f & TCP_URG) != 0;
    if (f & TCP_FIN) {
        s->fin |= (uint8_t)(1u << p->reverse);
    }
    if (f & TCP_RST) {
        s->rst = 1;
    }
}

/* Sequence number a is after b, modulo 2^32 (RFC 793). */
static int
seq_after(uint32_t a, uint32_t b)
{
    return (int32_t)(a - b) > 0;
}

/* Keeps [start, end) of `side` for when the gap before it fills: merged with
 * the range held already when they touch, else the lower one is kept. */
static void
stream_hold(FpcSlot *s, int side, uint32_t start, uint32_t end)
{
    uint32_t *held = s->tcp_held[side];

    if (!(s->tcp_holds & (1u << side)) || seq_after(held[0], end)) {
        held[0] = start;
        held[1] = end;
    } else if (!seq_after(start, held[1])) {
        held[0] = seq_after(held[0], start) ? start : held[0];
        held[1] = seq_after(end, held[1]) ? end : held[1];
    }
    s->tcp_holds |= (uint8_t)(1u << side);
}

/*
 * Bytes [seq, seq + len) of `side` that extend its stream, as a receiver
 * would take them: a byte counts once, when every byte before it has been
 * seen. Bytes past a gap are held (one range per side) until the gap fills;
 * bytes whose place is unknown yet are held until the stream starts.
 */
static uint32_t
stream_take(FpcSlot *s, int side, uint32_t seq, uint32_t len)
{
    uint32_t *next = &s->tcp_next[side], *held = s->tcp_held[side];
    uint32_t end = seq + len, got = 0;

    if (!(s->tcp_known & (1u << side)) || seq_after(seq, *next)) {
        if (len > 0) {
            stream_hold(s, side, seq, end);
        }
        return 0;
    }
    if (seq_after(end, *next)) {
        got = end - *next;
        *next = end;
    }
    if ((s->tcp_holds & (1u << side)) && !seq_after(held[0], *next)) {
        if (seq_after(held[1], *next)) {
            got += held[1] - *next;
            *next = held[1];
        }
        s->tcp_holds &= (uint8_t)~(1u << side);
    }
    return got;
}

/* Starts the stream of `side` at sequence number `next`, if not started,
 * and counts the bytes held for it. */
static void
stream_start(FpcSlot *s, int side, uint32_t next)
{
    if (s->tcp_known & (1u << side)) {
        return;
    }
    s->tcp_known |= (uint8_t)(1u << side);
    s->tcp_next[side] = next;
    s->tcp_start[side] = next;
    s->c.payload[side] += stream_take(s, side, next, 0);
}

/*
 * Counts the TCP payload bytes of p that advance its side's stream
 * (stream_take). A side's stream starts at its SYN; without one, at the ACK
 * of the other side's SYN-ACK or, once the session has had a SYN, at the
 * side's first packet. A session without any SYN counts nothing: where its
 * bytes sit in the stream is unknown. Data on a RST is not stream data.
 */
static void
tcp_count(FpcSlot *s, const FpcPacket *p)
{
    int side = p->reverse;
    uint32_t seq = p->seq;

    if (p->flags & TCP_SYN) {
        stream_start(s, side, seq + 1);
        if (p->flags & TCP_ACK) {
            stream_start(s, side ^ 1, p->ack);
        }
        seq += 1; /* the SYN takes one sequence number */
    } else if (s->tcp_known) {
        stream_start(s, side, seq);
    }
    if (!(p->flags & TCP_RST)) {
        s->c.payload[side] += stream_take(s, side, seq, p->payload_len);
    }
}

/*
 * Payload bytes of p as fpc.source/destination.payload_bytes count them, but
 * for TCP (tcp_count): the L4 payload for UDP, SCTP and ESP; the ICMP
 * message after its type, code and checksum words (the 8-byte header counts,
 * as in Arkime); nothing for other protocols, whose payload fpc does not parse.
 */
static uint32_t
payload_of(const FpcPacket *p)
{
    switch (p->proto) {
    case PROTO_UDP:
    case PROTO_SCTP:
    case PROTO_ESP:
        return p->payload_len;
    case PROTO_ICMP:
    case PROTO_ICMPV6:
        return p->payload_len + ICMP_HEADER;
    default:
        return 0;
    }
}

/* Counts packet p into slot i; -1 (and nothing counted) when out of memory. */
static int
session_count(FpcSessionTable *t, uint32_t i, const FpcPacket *p, int64_t ts, FpcPosition where,
              uint32_t wirelen)
{
    FpcSlot *s = slot_at(t, i);
    FpcCounts *c = &s->c;

    if (pos_push(t, &s->pos, where) < 0) {
        return -1;
    }
    t->positions++;
    if (s->pos.n == 1) {
        c->first_ts = ts; /* first packet of a segment */
    } else if (ts < c->first_ts) {
        c->first_ts = ts;
    }
    if (ts > c->last_ts) {
        c->last_ts = ts;
    }
    c->packets[p->reverse]++;
    c->bytes[p->reverse] += wirelen;
    if (p->proto == PROTO_TCP) {
        tcp_count(s, p);
    } else {
        c->payload[p->reverse] += payload_of(p);
    }
    c->tunnel |= p->tunnel;
    add_link(c, p);
    if (p->proto == PROTO_TCP) {
        add_tcp(s, p);
    } else if (p->proto == PROTO_ICMP || p->proto == PROTO_ICMPV6) {
        add_icmp(c, p);
    }
    lru_touch(t, i, s->rst || s->fin == 3 ? LRU_CLOSING : lru_class(p->proto));
    return 0;
}

/*
 * Lists packet `index` for the parsers if its session wants it and has budget
 * left. Payload-less SYNs and FINs matter to the TCP streams only once the
 * parsers have started; until then the SYNs' sequence numbers are kept here.
 */
static void
app_offer(FpcSessionTable *t, FpcSlot *s, const FpcPacket *p, ptrdiff_t index, FpcAppOut *app)
{
    uint8_t dir = p->reverse ^ s->client;
    uint64_t budget;

    if (((s->app_done >> dir) & 1) || (p->payload_len == 0 && !(p->flags & (TCP_SYN | TCP_FIN)))) {
        return;
    }
    if (p->payload_len == 0 && !s->app_started) {
        if (p->proto == PROTO_TCP && (p->flags & TCP_SYN)) {
            s->syn_seq[dir] = p->seq;
            s->syn_seen |= (uint8_t)(1u << dir);
        }
        return;
    }
    /* TODO: retransmitted segments count against app_bytes, so a lossy
     * session's parsers see less of it; counting only new sequence space needs
     * the highest sequence number per direction (8 more bytes a session). */
    if (s->app_bytes[dir] >= t->lim.app_bytes) {
        return;
    }
    budget = (uint64_t)s->app_bytes[dir] + p->payload_len;
    s->app_bytes[dir] = budget > UINT32_MAX ? UINT32_MAX : (uint32_t)budget;
    s->app_started = 1;
    app->index[app->n] = index;
    app->serial[app->n] = s->serial;
    app->dir[app->n] = dir;
    app->n++;
}

/* Accounts packet `index` of the batch; -1 when out of memory. */
static int
packet_add(FpcSessionTable *t, const FpcBatch *b, ptrdiff_t index, uint32_t tag, FpcAppOut *app)
{
    FpcPacket p;
    FpcPosition where;
    FpcSlot *s;
    int64_t ts = b->ts_ns[index];
    uint32_t i;

    packet_read(b->rows + index * b->layout->itemsize, b->layout, &p);
    i = session_find(t, &p, tag, ts);
    if (i == NIL) {
        return -1;
    }
    where.pos = b->pos[index];
    where.file = (int32_t)b->file[index];
    where.caplen = b->caplen[index];
    if (session_count(t, i, &p, ts, where, b->wirelen[index]) < 0) {
        return -1;
    }
    s = slot_at(t, i);
    app_offer(t, s, &p, index, app);
    if (s->pos.n >= t->lim.segment_packets ||
        ts_diff(s->c.last_ts, s->c.first_ts) > t->lim.segment_age_ns) {
        segment_cut(t, s);
        t->counters.segments++;
    }
    if (t->positions > t->lim.max_positions) {
        return positions_relieve(t);
    }
    return 0;
}

/* The packet has a session key: an IP packet or a non-IP Ethernet frame. */
static int
is_keyed(const FpcBatch *b, ptrdiff_t i)
{
    char status = b->rows[i * b->layout->itemsize + b->layout->status];

    return status == FPC_STATUS_IP || status == FPC_STATUS_LINK;
}

/* The slot in the home bucket of `tag`, or NULL; a hint only (it may be another key's). */
static const FpcSlot *
slot_hint(const FpcSessionTable *t, uint32_t tag)
{
    const FpcBucket *e = &t->buckets[tag & t->mask];

    return e->slot != 0 ? slot_at(t, e->slot - 1) : NULL;
}

static void
prefetch_ahead(const FpcSessionTable *t, const FpcBatch *b, ptrdiff_t i)
{
    const FpcSlot *s;
    size_t off;

    if (i + AHEAD_BUCKET < b->n) {
        PREFETCH(&t->buckets[t->tags[i + AHEAD_BUCKET] & t->mask]);
    }
    if (i + AHEAD_SLOT < b->n && (s = slot_hint(t, t->tags[i + AHEAD_SLOT])) != NULL) {
        for (off = 0; off < sizeof(*s); off += 64) {
            PREFETCH((const char *)s + off);
        }
    }
    if (i + AHEAD_POSITIONS < b->n && (s = slot_hint(t, t->tags[i + AHEAD_POSITIONS])) != NULL &&
        s->pos.cap > 1) {
        PREFETCH(s->pos.u.many + s->pos.n);
    }
}

/* Tags every keyed packet of the batch; -1 when out of memory. */
static int
tag_batch(FpcSessionTable *t, const FpcBatch *b)
{
    uint32_t *tags;
    ptrdiff_t i;

    if ((size_t)b->n > t->tags_cap) {
        tags = realloc(t->tags, sizeof(*tags) * (size_t)b->n);
        if (tags == NULL) {
            return -1;
        }
        t->tags = tags;
        t->tags_cap = (size_t)b->n;
    }
    for (i = 0; i < b->n; i++) {
        t->tags[i] = is_keyed(b, i)
                         ? (uint32_t)siphash_key(t, (const uint8_t *)b->rows +
                                                        i * b->layout->itemsize + b->layout->key)
                         : 0;
    }
    return 0;
}

ptrdiff_t
fpc_session_add(FpcSessionTable *t, const FpcBatch *b, FpcAppOut *app)
{
    int64_t newest = t->now;
    ptrdiff_t i;

    app->n = 0;
    if (tag_batch(t, b) < 0) {
        return 0;
    }
    for (i = 0; i < b->n; i++) {
        prefetch_ahead(t, b, i);
        if (b->ts_ns[i] > newest) {
            newest = b->ts_ns[i];
        }
        if (!is_keyed(b, i)) {
            continue;
        }
        if (ended_reserve(t, ENDS_PER_PACKET) < 0 || packet_add(t, b, i, t->tags[i], app) < 0) {
            return i;
        }
    }
    t->now = newest;
    return fpc_session_expire(t, newest) < 0 ? b->n : -1;
}

/* --- the rest of the API -------------------------------------------------- */

FpcSessionTable *
fpc_session_new(const FpcSessionLimits *limits, uint64_t seed)
{
    FpcSessionTable *t = calloc(1, sizeof(*t));
    int l;

    if (t == NULL) {
        return NULL;
    }
    t->buckets = calloc(MIN_BUCKETS, sizeof(FpcBucket));
    if (t->buckets == NULL) {
        free(t);
        return NULL;
    }
    t->lim = *limits;
    t->mask = MIN_BUCKETS - 1;
    t->k0 = seed ^ 0x9e3779b97f4a7c15ull;
    t->k1 = ROTL64(seed, 29) ^ 0xc2b2ae3d27d4eb4full;
    t->free_head = NIL;
    t->next_serial = 1;
    t->now = INT64_MIN;
    for (l = 0; l < LRU_LISTS; l++) {
        t->head[l] = t->tail[l] = NIL;
    }
    return t;
}

void
fpc_session_free(FpcSessionTable *t)
{
    uint32_t c, k;
    size_t e;

    if (t == NULL) {
        return;
    }
    for (c = 0; c < t->nchunks; c++) {
        for (k = 0; k < SLOT_CHUNK && (c << SLOT_CHUNK_BITS) + k < t->nslots; k++) {
            if (t->chunks[c][k].pos.cap > 1) {
                free(t->chunks[c][k].pos.u.many); /* free slots have cap 1 */
            }
        }
        free(t->chunks[c]);
    }
    for (e = 0; e < t->nended; e++) {
        pos_clear(t, &t->ended[e].pos);
    }
    free(t->chunks);
    free(t->buckets);
    free(t->ended);
    free(t->tags);
    free(t);
}

/* The slot of session `serial`, or NULL. An ended session's slot keeps its
 * data until a new session takes it, so the caller can still ask about a
 * session that ended in the batch it is feeding to the parsers. */
static FpcSlot *
slot_of_serial(const FpcSessionTable *t, uint64_t serial)
{
    uint32_t i = (uint32_t)(serial & ((1u << SERIAL_INDEX_BITS) - 1));
    FpcSlot *s;

    if (i >= t->nslots) {
        return NULL;
    }
    s = slot_at(t, i);
    return s->serial == serial ? s : NULL;
}

int
fpc_session_app_done(FpcSessionTable *t, uint64_t serial, int directions)
{
    FpcSlot *s = slot_of_serial(t, serial);

    if (s == NULL) {
        return FPC_APP_DONE_ALL;
    }
    s->app_done |= (uint8_t)(directions & FPC_APP_DONE_ALL);
    return s->app_done;
}

int
fpc_session_syn_seqs(const FpcSessionTable *t, uint64_t serial, uint32_t seq[2])
{
    const FpcSlot *s = slot_of_serial(t, serial);

    if (s == NULL) {
        return -1;
    }
    seq[0] = s->syn_seq[0];
    seq[1] = s->syn_seq[1];
    return s->syn_seen;
}

size_t
fpc_session_ended_count(const FpcSessionTable *t, size_t *npos)
{
    size_t e;

    *npos = 0;
    for (e = 0; e < t->nended; e++) {
        *npos += t->ended[e].pos.n;
    }
    return t->nended;
}

void
fpc_session_take(FpcSessionTable *t, FpcEnded *rec, FpcPosition *pos)
{
    size_t e;
    FpcExport *x;

    for (e = 0; e < t->nended; e++) {
        x = &t->ended[e];
        rec[e] = x->rec;
        memcpy(pos, pos_data(&x->pos), sizeof(FpcPosition) * x->pos.n);
        pos += x->pos.n;
        pos_clear(t, &x->pos);
    }
    t->nended = 0;
    if (t->ended_cap > 4096) { /* give back the room a burst of endings took */
        free(t->ended);
        t->ended = NULL;
        t->ended_cap = 0;
    }
}

size_t
fpc_session_active(const FpcSessionTable *t)
{
    return t->active;
}

const FpcSessionCounters *
fpc_session_counters(const FpcSessionTable *t)
{
    return &t->counters;
}

size_t
fpc_session_memory(const FpcSessionTable *t)
{
    return sizeof(*t) + (size_t)t->nchunks * SLOT_CHUNK * sizeof(FpcSlot) +
           t->chunks_cap * sizeof(FpcSlot *) + ((size_t)t->mask + 1) * sizeof(FpcBucket) +
           t->ended_cap * sizeof(FpcExport) + t->tags_cap * sizeof(uint32_t) +
           (size_t)t->heap_bytes;
}
