/*
 * The packet ring (ring.c): one producer, one consumer, possibly in two
 * processes, over a caller-supplied shared memory block.
 *
 * Layout of the block (all numbers native-endian, this host only):
 *
 *   | FpcRingHeader (256 bytes) | FpcRingSlot x slot_count | data (data_bytes) |
 *
 * The data area holds classic pcap records, 16-byte little-endian header then
 * the packet bytes, as pack_records writes them. A record never wraps around
 * the end of the data area: when it does not fit before the end, the producer
 * skips to the start, so consecutive records form spans ready for one write.
 * Slot i (modulo slot_count) describes packet i: where its record starts (a
 * byte position that only grows; the offset is position % data_bytes) and the
 * fields a pcap record header cannot hold (link type, precision, full ns time).
 *
 * head/head_bytes belong to the producer, tail/tail_bytes to the consumer; each
 * side publishes with a release store and reads the other's with an acquire
 * load, so these functions need no lock and never touch Python objects: they
 * run with the GIL released.
 */
#ifndef FPC_RING_H
#define FPC_RING_H

#include <stdatomic.h>
#include <stdint.h>

#define FPC_RING_MAGIC 0x31474e4952435046ULL /* "FPCRING1" */
#define FPC_RING_HEADER_BYTES 256
#define FPC_RING_RECORD_HEADER 16

typedef struct {
    uint64_t magic;
    uint64_t data_bytes;
    uint64_t slot_count; /* a power of two */
    char pad0[64 - 3 * sizeof(uint64_t)];
    /* written by the producer */
    _Atomic uint64_t head;       /* packets pushed */
    _Atomic uint64_t head_bytes; /* byte position after the last record pushed */
    _Atomic uint64_t dropped;    /* packets refused for lack of room */
    _Atomic uint64_t closed;     /* 1 once the producer has pushed its last packet */
    char pad1[64 - 4 * sizeof(uint64_t)];
    /* written by the consumer */
    _Atomic uint64_t tail;       /* packets popped */
    _Atomic uint64_t tail_bytes; /* byte position after the last record popped */
    char pad2[128 - 2 * sizeof(uint64_t)];
} FpcRingHeader;

typedef struct {
    uint64_t pos; /* byte position of the record header */
    int64_t ts_ns;
    uint32_t caplen;
    uint32_t wirelen;
    uint16_t linktype;
    uint8_t precision; /* 6 or 9: unit of the record header's fraction */
    uint8_t pad[5];
} FpcRingSlot;

/* One popped packet as the consumer's Python side sees it (32 bytes). */
typedef struct {
    int64_t ts_ns;
    int64_t offset; /* of the record header, from the start of the popped span */
    uint32_t caplen;
    uint32_t wirelen;
    uint16_t linktype;
    uint8_t precision;
    uint8_t pad[5];
} FpcRingMeta;

/* A view of a formatted block; plain pointers into it. */
typedef struct {
    FpcRingHeader *hdr;
    FpcRingSlot *slots;
    uint8_t *data;
} FpcRing;

/* The packets to push: packet i is src[offset[i] : offset[i] + caplen[i]]. */
typedef struct {
    const uint8_t *src;
    const int64_t *offset;
    const uint32_t *caplen;
    const uint32_t *wirelen;
    const int64_t *ts_ns;
    const uint16_t *linktype;
    const uint8_t *precision;
} FpcRingBatch;

/* Bytes a block needs for `data_bytes` of records and `slot_count` packets. */
uint64_t fpc_ring_layout_size(uint64_t data_bytes, uint64_t slot_count);
/* Formats `block` (of fpc_ring_layout_size bytes) as an empty ring. */
void fpc_ring_format(void *block, uint64_t data_bytes, uint64_t slot_count, FpcRing *ring);
/* Attaches to a formatted block of `len` bytes; -1 when it is not one. */
int fpc_ring_attach(void *block, uint64_t len, FpcRing *ring);
/*
 * Producer: pushes packets first..n-1, waiting up to `timeout_s` for room
 * (< 0: for ever). Returns the index of the first packet not pushed (n when
 * all went in); with `drop`, the packets not pushed are counted as dropped.
 * A packet whose record can never fit makes it stop at that packet.
 */
int64_t fpc_ring_push(FpcRing *ring, const FpcRingBatch *b, int64_t n, double timeout_s, int drop);
/* Producer: no more packets; the consumer drains what is left, then sees the end. */
void fpc_ring_close(FpcRing *ring);
/*
 * Consumer: waits up to `timeout_s` (< 0: for ever) for a packet, then up to
 * `linger_s` more while fewer than max_packets and fewer than max_bytes of
 * records are there (larger batches cost the caller less per packet). Returns
 * the number of packets (at most max_packets, and records of at most
 * max_bytes unless the first alone is larger; max_bytes 0: no byte limit)
 * whose records form one contiguous span, with *span and *span_len set; 0 on
 * timeout; -1 at the end (closed and empty). The span stays valid until
 * fpc_ring_release.
 */
int64_t fpc_ring_peek(FpcRing *ring, int64_t max_packets, uint64_t max_bytes, double timeout_s,
                      double linger_s, const uint8_t **span, uint64_t *span_len);
/* Consumer: fills `meta` for the n packets of the last peek. */
void fpc_ring_describe(const FpcRing *ring, int64_t n, FpcRingMeta *meta);
/* Consumer: gives the n packets of the last peek back to the producer. */
void fpc_ring_release(FpcRing *ring, int64_t n);

#endif /* FPC_RING_H */
