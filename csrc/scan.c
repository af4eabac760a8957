/*
 * scan_pcap: find the whole classic-pcap records in a read buffer, for fpc.reader.
 *
 * Each record's caplen says where the next one starts, so the walk is
 * sequential; one call walks a whole buffer (with the GIL released) and fills
 * the caller's arrays with every record's start and header fields:
 *
 *   | ts_sec (32) | ts_frac (32) | caplen (32) | wirelen (32) | bytes (caplen) |
 *
 * The walk stops at the first record that is not all in the buffer, past
 * `max_bytes` from the start (the first record may exceed it on its own), when
 * the arrays are full, or at a caplen above `max_caplen` (reported, not read).
 */
#include "fastpath.h" /* Python.h first, as CPython requires */

#include <string.h>

#define RECORD_HEADER 16

typedef struct {
    int64_t *offset;
    uint32_t *sec, *frac, *caplen, *wirelen;
    Py_ssize_t cap; /* records the arrays hold */
} ScanOut;

static uint32_t
get32(const uint8_t *p, int swap)
{
    uint32_t v;

    memcpy(&v, p, sizeof(v));
    return swap ? __builtin_bswap32(v) : v;
}

/*
 * Records from `pos` (< end); the count. `*next` gets the offset after the
 * last record taken, `*bad` the caplen that stopped the walk (or -1).
 */
static Py_ssize_t
scan(const uint8_t *buf, Py_ssize_t pos, Py_ssize_t end, Py_ssize_t max_bytes, uint32_t max_caplen,
     int swap, const ScanOut *o, Py_ssize_t *next, int64_t *bad)
{
    Py_ssize_t n = 0, bound = end, after;
    Py_ssize_t batch_end = end - pos > max_bytes ? pos + max_bytes : end;
    uint32_t caplen;

    *bad = -1;
    while (n < o->cap && end - pos >= RECORD_HEADER) {
        caplen = get32(buf + pos + 8, swap);
        if (caplen > max_caplen) {
            *bad = caplen;
            break;
        }
        after = pos + RECORD_HEADER + (Py_ssize_t)caplen;
        if (after > bound) {
            break;
        }
        o->offset[n] = pos;
        o->sec[n] = get32(buf + pos, swap);
        o->frac[n] = get32(buf + pos + 4, swap);
        o->caplen[n] = caplen;
        o->wirelen[n] = get32(buf + pos + 12, swap);
        n++;
        pos = after;
        bound = batch_end;
    }
    *next = pos;
    return n;
}

/* The five output arrays, checked; -1 with ValueError if one is wrong. */
static int
get_outputs(PyObject *const *objs, Py_buffer *views, ScanOut *o)
{
    static const char *names[] = {"offset", "sec", "frac", "caplen", "wirelen"};
    Py_ssize_t i;

    if (fpc_array_get(objs[0], names[0], "lq", 8, -1, &views[0]) < 0) {
        return -1;
    }
    for (i = 1; i < 5; i++) {
        if (fpc_array_get(objs[i], names[i], "I", 4, views[0].shape[0], &views[i]) < 0) {
            return -1;
        }
    }
    for (i = 0; i < 5; i++) {
        if (views[i].readonly) {
            PyErr_Format(PyExc_ValueError, "scan_pcap: %s is read-only; pass a writable array",
                         names[i]);
            return -1;
        }
    }
    o->offset = views[0].buf;
    o->sec = views[1].buf;
    o->frac = views[2].buf;
    o->caplen = views[3].buf;
    o->wirelen = views[4].buf;
    o->cap = views[0].shape[0];
    return 0;
}

PyObject *
fpc_scan_pcap(PyObject *module, PyObject *args)
{
    Py_buffer data = {0}, views[5] = {{0}};
    PyObject *objs[5], *result = NULL;
    Py_ssize_t pos, end, max_bytes, n, next = 0, i;
    unsigned long max_caplen;
    int swap;
    int64_t bad = -1;
    ScanOut o;

    if (!PyArg_ParseTuple(args, "y*nnnkpOOOOO:scan_pcap", &data, &pos, &end, &max_bytes,
                          &max_caplen, &swap, &objs[0], &objs[1], &objs[2], &objs[3], &objs[4])) {
        return NULL;
    }
    if (pos < 0 || end < pos || end > data.len || max_bytes < 1 || max_caplen > UINT32_MAX) {
        PyErr_Format(PyExc_ValueError,
                     "scan_pcap: pos %zd, end %zd, max_bytes %zd, max_caplen %lu do not fit "
                     "a buffer of %zd bytes; pass 0 <= pos <= end <= len(data), max_bytes >= 1",
                     pos, end, max_bytes, max_caplen, data.len);
        goto cleanup;
    }
    if (get_outputs(objs, views, &o) < 0) {
        goto cleanup;
    }
    Py_BEGIN_ALLOW_THREADS;
    n = scan(data.buf, pos, end, max_bytes, (uint32_t)max_caplen, swap, &o, &next, &bad);
    Py_END_ALLOW_THREADS;
    result = Py_BuildValue("nnL", n, next, (long long)bad);

cleanup:
    for (i = 0; i < 5; i++) {
        PyBuffer_Release(&views[i]);
    }
    PyBuffer_Release(&data);
    return result;
}
