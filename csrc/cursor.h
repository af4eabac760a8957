/*
 * Bounds-checked reader over the bytes of one packet.
 *
 * Every read of packet bytes in the decoders goes through an FpcCursor. A read
 * past `end` returns zero and sets the sticky `err` flag instead of touching
 * memory, so a decoder reads a whole header and checks `err` once. `pos` and
 * `end` count from the start of the packet, so offsets stored in the decoded
 * row come straight from `pos`. The packet bytes are borrowed from the
 * caller's buffer and never written. Plain C, used with the GIL released.
 */
#ifndef FPC_CURSOR_H
#define FPC_CURSOR_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const uint8_t *pkt; /* first byte of the packet */
    size_t pos;         /* next byte to read */
    size_t end;         /* one past the last byte this cursor may read */
    int err;            /* set once a read ran past end */
} FpcCursor;

static inline int
fpc_cursor_has(const FpcCursor *c, size_t n)
{
    return !c->err && c->pos <= c->end && c->end - c->pos >= n;
}

static inline size_t
fpc_cursor_left(const FpcCursor *c)
{
    return (c->err || c->pos > c->end) ? 0 : c->end - c->pos;
}

/* Returns a pointer to the next n bytes and advances, or NULL (err set). */
static inline const uint8_t *
fpc_cursor_take(FpcCursor *c, size_t n)
{
    const uint8_t *p;

    if (!fpc_cursor_has(c, n)) {
        c->err = 1;
        return NULL;
    }
    p = c->pkt + c->pos;
    c->pos += n;
    return p;
}

static inline void
fpc_cursor_skip(FpcCursor *c, size_t n)
{
    (void)fpc_cursor_take(c, n);
}

static inline uint8_t
fpc_cursor_u8(FpcCursor *c)
{
    const uint8_t *p = fpc_cursor_take(c, 1);
    return p ? p[0] : 0;
}

static inline uint16_t
fpc_cursor_be16(FpcCursor *c)
{
    const uint8_t *p = fpc_cursor_take(c, 2);
    return p ? (uint16_t)((p[0] << 8) | p[1]) : 0;
}

static inline uint16_t
fpc_cursor_le16(FpcCursor *c)
{
    const uint8_t *p = fpc_cursor_take(c, 2);
    return p ? (uint16_t)((p[1] << 8) | p[0]) : 0;
}

static inline uint32_t
fpc_cursor_be32(FpcCursor *c)
{
    const uint8_t *p = fpc_cursor_take(c, 4);
    return p ? ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3] : 0;
}

static inline uint32_t
fpc_cursor_le32(FpcCursor *c)
{
    const uint8_t *p = fpc_cursor_take(c, 4);
    return p ? ((uint32_t)p[3] << 24) | ((uint32_t)p[2] << 16) | ((uint32_t)p[1] << 8) | p[0] : 0;
}

/* Looks at the byte `ahead` bytes past pos without advancing; 0 and no error if absent. */
static inline int
fpc_cursor_peek(const FpcCursor *c, size_t ahead, uint8_t *out)
{
    if (!fpc_cursor_has(c, ahead + 1)) {
        return 0;
    }
    *out = c->pkt[c->pos + ahead];
    return 1;
}

/* Narrows the cursor so it cannot read past `len` more bytes (never widens it). */
static inline void
fpc_cursor_limit(FpcCursor *c, size_t len)
{
    if (fpc_cursor_left(c) > len) {
        c->end = c->pos + len;
    }
}

#endif /* FPC_CURSOR_H */
