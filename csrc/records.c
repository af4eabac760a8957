/*
 * pack_records: classic-pcap records for a batch, for the PCAP writer.
 *
 * Each record is a 16-byte little-endian header followed by the packet:
 *
 *   | ts_sec (32) | ts_usec or ts_nsec (32) | caplen (32) | wirelen (32) | bytes (caplen) |
 *
 * Arguments are checked and the result allocated with the GIL held; the copy
 * runs with the GIL released (the source buffer is borrowed through a view,
 * the result bytes object is not yet visible to Python).
 */
#include "fastpath.h" /* Python.h first, as CPython requires */

#include <string.h>

#define NS_PER_S 1000000000LL

static void
put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

/* Total size of the records, or -1 - i when packet i lies outside `len` bytes. */
static Py_ssize_t
records_size(const int64_t *offset, const uint32_t *caplen, Py_ssize_t n, Py_ssize_t len)
{
    Py_ssize_t total = 0, i;

    for (i = 0; i < n; i++) {
        if (offset[i] < 0 || offset[i] > len || caplen[i] > len - offset[i] ||
            total > PY_SSIZE_T_MAX - 16 - (Py_ssize_t)caplen[i]) {
            return -1 - i;
        }
        total += 16 + (Py_ssize_t)caplen[i];
    }
    return total;
}

/*
 * Writes the records. Seconds are floored (a time before 1970 keeps a
 * fraction in [0, 1 s)) and stored modulo 2^32, the width of the pcap field.
 */
static void
records_fill(uint8_t *dst, const uint8_t *src, const int64_t *offset, const uint32_t *caplen,
             const uint32_t *wirelen, const int64_t *ts_ns, Py_ssize_t n, int precision)
{
    Py_ssize_t i;
    int64_t sec, frac;

    for (i = 0; i < n; i++) {
        sec = ts_ns[i] / NS_PER_S;
        frac = ts_ns[i] % NS_PER_S;
        if (frac < 0) {
            frac += NS_PER_S;
            sec -= 1;
        }
        put_le32(dst, (uint32_t)sec);
        put_le32(dst + 4, (uint32_t)(precision == 6 ? frac / 1000 : frac));
        put_le32(dst + 8, caplen[i]);
        put_le32(dst + 12, wirelen[i]);
        memcpy(dst + 16, src + offset[i], caplen[i]);
        dst += 16 + caplen[i];
    }
}

PyObject *
fpc_records_pack(PyObject *module, PyObject *args)
{
    Py_buffer data = {0}, offset = {0}, caplen = {0}, wirelen = {0}, ts_ns = {0};
    PyObject *off_obj, *cap_obj, *wire_obj, *ts_obj, *result = NULL;
    Py_ssize_t n, total;
    int precision;

    if (!PyArg_ParseTuple(args, "y*OOOOi:pack_records", &data, &off_obj, &cap_obj, &wire_obj,
                          &ts_obj, &precision)) {
        return NULL;
    }
    if (precision != 6 && precision != 9) {
        PyErr_Format(PyExc_ValueError,
                     "precision %d is not a pcap timestamp unit; pass 6 (microseconds) or 9 "
                     "(nanoseconds)",
                     precision);
        goto cleanup;
    }
    if (fpc_array_get(off_obj, "offset", "lq", 8, -1, &offset) < 0) {
        goto cleanup;
    }
    n = offset.shape[0];
    if (fpc_array_get(cap_obj, "caplen", "I", 4, n, &caplen) < 0 ||
        fpc_array_get(wire_obj, "wirelen", "I", 4, n, &wirelen) < 0 ||
        fpc_array_get(ts_obj, "ts_ns", "lq", 8, n, &ts_ns) < 0) {
        goto cleanup;
    }

    total = records_size(offset.buf, caplen.buf, n, data.len);
    if (total < 0) {
        PyErr_Format(PyExc_ValueError,
                     "packet %zd: offset %lld + caplen %u runs past the end of data (%zd bytes); "
                     "the batch's offset/caplen arrays do not match its buffer",
                     -1 - total, (long long)((int64_t *)offset.buf)[-1 - total],
                     ((uint32_t *)caplen.buf)[-1 - total], data.len);
        goto cleanup;
    }
    result = PyBytes_FromStringAndSize(NULL, total);
    if (result == NULL) {
        goto cleanup;
    }

    Py_BEGIN_ALLOW_THREADS records_fill((uint8_t *)PyBytes_AS_STRING(result), data.buf, offset.buf,
                                        caplen.buf, wirelen.buf, ts_ns.buf, n, precision);
    Py_END_ALLOW_THREADS

        cleanup : PyBuffer_Release(&ts_ns);
    PyBuffer_Release(&wirelen);
    PyBuffer_Release(&caplen);
    PyBuffer_Release(&offset);
    PyBuffer_Release(&data);
    return result;
}
