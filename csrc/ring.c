/*
 * The packet ring between the capture side and the processing side, and its
 * Python type fpc._fastpath.Ring. Layout and memory ordering: see ring.h.
 *
 * The ring lives in a block the caller owns (an anonymous shared mmap or a
 * multiprocessing.shared_memory buffer): Ring keeps a buffer view on it, so
 * the block outlives the object, and several processes can each hold a Ring on
 * the same block, one pushing and one popping. push and pop check their
 * arguments with the GIL held, then release it while packets are copied and
 * while they wait for room or for packets; they borrow the caller's buffers
 * through views held for the whole call. pop copies the popped span into a
 * new bytes object before giving the space back, so Python never sees memory
 * the producer may overwrite. One thread per side: a second thread entering
 * push (or pop) while the first waits without the GIL gets RuntimeError.
 */
#include "fastpath.h" /* Python.h first, as CPython requires */

#include "ring.h"

#include <string.h>
#include <time.h>

#define NS_PER_S 1000000000LL
#define PUBLISH_EVERY 256 /* packets pushed between two publications of head */
/* A waiting side sleeps, 50 us at first and twice as long each time up to
 * 10 ms. It never spins or yields: on a machine with few cores a spinning
 * consumer burns the CPU its producer needs (measured: a quarter of the live
 * processing thread went to sched_yield and the context switches it caused),
 * and one that waits long (an idle interface) wakes only 100 times a second.
 * The ring holds far more than 10 ms of packets, so the longer sleep costs
 * latency, never packets. */
#define SLEEP_MIN_NS 50000L
#define SLEEP_MAX_NS 10000000L

/* ------------------------------------------------------------------------ */
/* The ring itself: no Python objects, GIL not needed.                      */

uint64_t
fpc_ring_layout_size(uint64_t data_bytes, uint64_t slot_count)
{
    return FPC_RING_HEADER_BYTES + slot_count * sizeof(FpcRingSlot) + data_bytes;
}

static void
ring_point(void *block, FpcRing *ring)
{
    ring->hdr = block;
    ring->slots = (FpcRingSlot *)((uint8_t *)block + FPC_RING_HEADER_BYTES);
    ring->data = (uint8_t *)(ring->slots + ring->hdr->slot_count);
}

void
fpc_ring_format(void *block, uint64_t data_bytes, uint64_t slot_count, FpcRing *ring)
{
    FpcRingHeader *h = block;

    memset(block, 0, FPC_RING_HEADER_BYTES);
    h->data_bytes = data_bytes;
    h->slot_count = slot_count;
    atomic_store(&h->head, 0);
    atomic_store(&h->head_bytes, 0);
    atomic_store(&h->dropped, 0);
    atomic_store(&h->closed, 0);
    atomic_store(&h->tail, 0);
    atomic_store(&h->tail_bytes, 0);
    ring_point(block, ring);
    atomic_thread_fence(memory_order_release);
    h->magic = FPC_RING_MAGIC;
}

int
fpc_ring_attach(void *block, uint64_t len, FpcRing *ring)
{
    FpcRingHeader *h = block;

    if (len < FPC_RING_HEADER_BYTES || h->magic != FPC_RING_MAGIC || h->slot_count == 0 ||
        (h->slot_count & (h->slot_count - 1)) != 0 ||
        fpc_ring_layout_size(h->data_bytes, h->slot_count) > len) {
        return -1;
    }
    ring_point(block, ring);
    return 0;
}

static double
now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct {
    double timeout_s; /* < 0: wait for ever */
    double deadline;  /* set at the first wait: a call that never waits reads no clock */
    int waits;
    long sleep_ns;
} FpcRingWaiter;

static void
waiter_start(FpcRingWaiter *w, double timeout_s)
{
    w->timeout_s = timeout_s;
    w->waits = 0;
    w->sleep_ns = SLEEP_MIN_NS;
}

/* Waits a little; 0 once the deadline has passed. */
static int
waiter_step(FpcRingWaiter *w)
{
    struct timespec pause = {0, w->sleep_ns};

    if (w->waits == 0) {
        w->deadline = w->timeout_s < 0 ? -1.0 : now_s() + w->timeout_s;
    }
    if (w->deadline >= 0 && (w->timeout_s == 0 || now_s() >= w->deadline)) {
        return 0;
    }
    w->waits++;
    nanosleep(&pause, NULL);
    w->sleep_ns = w->sleep_ns * 2 > SLEEP_MAX_NS ? SLEEP_MAX_NS : w->sleep_ns * 2;
    return 1;
}

static void
put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

/* Writes packet i as a pcap record at `dst` (seconds floored, modulo 2^32). */
static void
write_record(uint8_t *dst, const FpcRingBatch *b, int64_t i)
{
    int64_t sec = b->ts_ns[i] / NS_PER_S, frac = b->ts_ns[i] % NS_PER_S;

    if (frac < 0) {
        frac += NS_PER_S;
        sec -= 1;
    }
    put_le32(dst, (uint32_t)sec);
    put_le32(dst + 4, (uint32_t)(b->precision[i] == 6 ? frac / 1000 : frac));
    put_le32(dst + 8, b->caplen[i]);
    put_le32(dst + 12, b->wirelen[i]);
    memcpy(dst + FPC_RING_RECORD_HEADER, b->src + b->offset[i], b->caplen[i]);
}

/* Where a record of `rec` bytes pushed at byte position `pos` can start; 0 if no room. */
static int
find_room(const FpcRing *ring, uint64_t head, uint64_t pos, uint64_t rec, uint64_t *at)
{
    const FpcRingHeader *h = ring->hdr;
    uint64_t size = h->data_bytes, off = pos % size;
    uint64_t start = off + rec > size ? pos + (size - off) : pos;
    uint64_t tail = atomic_load_explicit(&ring->hdr->tail, memory_order_acquire);
    uint64_t tail_bytes = atomic_load_explicit(&ring->hdr->tail_bytes, memory_order_acquire);

    if (head - tail >= h->slot_count || start + rec - tail_bytes > size) {
        return 0;
    }
    *at = start;
    return 1;
}

static void
publish(FpcRingHeader *h, uint64_t head, uint64_t pos)
{
    atomic_store_explicit(&h->head_bytes, pos, memory_order_release);
    atomic_store_explicit(&h->head, head, memory_order_release);
}

int64_t
fpc_ring_push(FpcRing *ring, const FpcRingBatch *b, int64_t n, double timeout_s, int drop)
{
    FpcRingHeader *h = ring->hdr;
    uint64_t head = atomic_load_explicit(&h->head, memory_order_relaxed);
    uint64_t pos = atomic_load_explicit(&h->head_bytes, memory_order_relaxed);
    uint64_t rec, at, mask = h->slot_count - 1;
    FpcRingSlot *slot;
    FpcRingWaiter w;
    int64_t i;

    waiter_start(&w, timeout_s);
    for (i = 0; i < n; i++) {
        /* Half the data area: a record that large always fits in an empty ring. */
        rec = FPC_RING_RECORD_HEADER + (uint64_t)b->caplen[i];
        if (rec > h->data_bytes / 2) {
            break;
        }
        while (!find_room(ring, head, pos, rec, &at)) {
            publish(h, head, pos); /* the consumer can only free what it sees */
            if (!waiter_step(&w)) {
                goto done;
            }
        }
        write_record(ring->data + at % h->data_bytes, b, i);
        slot = &ring->slots[head & mask];
        slot->pos = at;
        slot->ts_ns = b->ts_ns[i];
        slot->caplen = b->caplen[i];
        slot->wirelen = b->wirelen[i];
        slot->linktype = b->linktype[i];
        slot->precision = b->precision[i];
        pos = at + rec;
        head++;
        if (head % PUBLISH_EVERY == 0) {
            publish(h, head, pos);
        }
    }
done:
    publish(h, head, pos);
    if (drop && i < n) {
        atomic_fetch_add_explicit(&h->dropped, (uint64_t)(n - i), memory_order_relaxed);
    }
    return i;
}

void
fpc_ring_close(FpcRing *ring)
{
    atomic_store_explicit(&ring->hdr->closed, 1, memory_order_release);
}

/* Whether enough is queued for a batch: max_packets, or max_bytes of records. */
static int
batch_ready(const FpcRingHeader *h, uint64_t head, uint64_t tail, int64_t max_packets,
            uint64_t max_bytes)
{
    uint64_t queued_bytes;

    if (head - tail >= (uint64_t)max_packets) {
        return 1;
    }
    if (max_bytes == 0) {
        return 0;
    }
    queued_bytes = atomic_load_explicit(&h->head_bytes, memory_order_acquire) -
                   atomic_load_explicit(&h->tail_bytes, memory_order_relaxed);
    return queued_bytes >= max_bytes;
}

int64_t
fpc_ring_peek(FpcRing *ring, int64_t max_packets, uint64_t max_bytes, double timeout_s,
              double linger_s, const uint8_t **span, uint64_t *span_len)
{
    FpcRingHeader *h = ring->hdr;
    uint64_t tail = atomic_load_explicit(&h->tail, memory_order_relaxed);
    uint64_t head, avail, start, end, rec, mask = h->slot_count - 1;
    const FpcRingSlot *s;
    FpcRingWaiter w;
    uint64_t k;
    int closed;

    waiter_start(&w, timeout_s);
    for (;;) {
        /* closed before head: once closed is seen, head is final */
        closed = atomic_load_explicit(&h->closed, memory_order_acquire) != 0;
        head = atomic_load_explicit(&h->head, memory_order_acquire);
        if (head != tail) {
            break;
        }
        if (closed) {
            return -1;
        }
        if (!waiter_step(&w)) {
            return 0;
        }
    }
    if (linger_s > 0 && !closed && !batch_ready(h, head, tail, max_packets, max_bytes)) {
        waiter_start(&w, linger_s);
        while (waiter_step(&w)) {
            closed = atomic_load_explicit(&h->closed, memory_order_acquire) != 0;
            head = atomic_load_explicit(&h->head, memory_order_acquire);
            if (closed || batch_ready(h, head, tail, max_packets, max_bytes)) {
                break;
            }
        }
    }
    avail = head - tail < (uint64_t)max_packets ? head - tail : (uint64_t)max_packets;
    s = &ring->slots[tail & mask];
    start = s->pos;
    end = start + FPC_RING_RECORD_HEADER + s->caplen;
    for (k = 1; k < avail; k++) {
        s = &ring->slots[(tail + k) & mask];
        if (s->pos != end || s->pos % h->data_bytes == 0) {
            break; /* the next record starts over at the beginning of the data area */
        }
        rec = FPC_RING_RECORD_HEADER + s->caplen;
        if (max_bytes != 0 && end + rec - start > max_bytes) {
            break;
        }
        end += rec;
    }
    *span = ring->data + start % h->data_bytes;
    *span_len = end - start;
    return (int64_t)k;
}

void
fpc_ring_describe(const FpcRing *ring, int64_t n, FpcRingMeta *meta)
{
    const FpcRingHeader *h = ring->hdr;
    uint64_t tail = atomic_load_explicit(&ring->hdr->tail, memory_order_relaxed);
    uint64_t mask = h->slot_count - 1, start = ring->slots[tail & mask].pos;
    const FpcRingSlot *s;
    int64_t i;

    for (i = 0; i < n; i++) {
        s = &ring->slots[(tail + (uint64_t)i) & mask];
        memset(&meta[i], 0, sizeof(meta[i]));
        meta[i].ts_ns = s->ts_ns;
        meta[i].offset = (int64_t)(s->pos - start);
        meta[i].caplen = s->caplen;
        meta[i].wirelen = s->wirelen;
        meta[i].linktype = s->linktype;
        meta[i].precision = s->precision;
    }
}

void
fpc_ring_release(FpcRing *ring, int64_t n)
{
    FpcRingHeader *h = ring->hdr;
    uint64_t tail = atomic_load_explicit(&h->tail, memory_order_relaxed);
    const FpcRingSlot *last = &ring->slots[(tail + (uint64_t)n - 1) & (h->slot_count - 1)];

    atomic_store_explicit(&h->tail_bytes, last->pos + FPC_RING_RECORD_HEADER + last->caplen,
                          memory_order_release);
    atomic_store_explicit(&h->tail, tail + (uint64_t)n, memory_order_release);
}

/* ------------------------------------------------------------------------ */
/* The Python type: GIL held except inside Py_BEGIN/END_ALLOW_THREADS.      */

typedef struct {
    PyObject_HEAD Py_buffer view; /* keeps the block alive; view.obj NULL until set */
    FpcRing ring;
    int pushing; /* a push is running without the GIL */
    int popping; /* a pop is running without the GIL */
} FpcRingObject;

static int
check_geometry(long long data_bytes, long long slots)
{
    if (data_bytes < 1024 || data_bytes > (1LL << 40)) {
        PyErr_Format(PyExc_ValueError,
                     "data_bytes = %lld is out of range; set 1024 to 2**40 (a record may "
                     "take at most half of it)",
                     data_bytes);
        return -1;
    }
    if (slots < 2 || slots > (1LL << 30) || (slots & (slots - 1)) != 0) {
        PyErr_Format(PyExc_ValueError,
                     "slots = %lld must be a power of two from 2 to 2**30, e.g. 65536", slots);
        return -1;
    }
    return 0;
}

static PyObject *
ring_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"buffer", "data_bytes", "slots", NULL};
    long long data_bytes = 0, slots = 0;
    FpcRingObject *self;
    PyObject *buffer;
    uint64_t need;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|LL:Ring", kwlist, &buffer, &data_bytes,
                                     &slots)) {
        return NULL;
    }
    if (data_bytes != 0 && check_geometry(data_bytes, slots) < 0) {
        return NULL;
    }
    self = (FpcRingObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    if (PyObject_GetBuffer(buffer, &self->view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0) {
        goto error;
    }
    if (data_bytes == 0) {
        if (fpc_ring_attach(self->view.buf, (uint64_t)self->view.len, &self->ring) < 0) {
            PyErr_SetString(PyExc_ValueError, "buffer does not hold a formatted ring; create "
                                              "one with Ring(buffer, data_bytes, slots)");
            goto error;
        }
        return (PyObject *)self;
    }
    need = fpc_ring_layout_size((uint64_t)data_bytes, (uint64_t)slots);
    if (need > (uint64_t)self->view.len) {
        PyErr_Format(PyExc_ValueError,
                     "buffer holds %zd bytes, a ring of data_bytes = %lld and slots = %lld "
                     "needs %llu; size it with Ring.layout_size()",
                     self->view.len, data_bytes, slots, (unsigned long long)need);
        goto error;
    }
    fpc_ring_format(self->view.buf, (uint64_t)data_bytes, (uint64_t)slots, &self->ring);
    return (PyObject *)self;

error:
    Py_DECREF(self);
    return NULL;
}

static void
ring_dealloc(FpcRingObject *self)
{
    PyTypeObject *type = Py_TYPE(self);

    if (self->view.obj != NULL) {
        PyBuffer_Release(&self->view);
    }
    type->tp_free((PyObject *)self);
    Py_DECREF(type);
}

/* -1 - i when packet i lies outside `len` bytes or has a bad precision, else 0. */
static Py_ssize_t
check_batch(const FpcRingBatch *b, Py_ssize_t n, Py_ssize_t len)
{
    Py_ssize_t i;

    for (i = 0; i < n; i++) {
        if (b->offset[i] < 0 || b->offset[i] > len || b->caplen[i] > len - b->offset[i] ||
            (b->precision[i] != 6 && b->precision[i] != 9)) {
            return -1 - i;
        }
    }
    return 0;
}

static Py_ssize_t
get_arrays(PyObject *const *arr, Py_buffer *v)
{
    Py_ssize_t n;

    if (fpc_array_get(arr[0], "offset", "lq", 8, -1, &v[0]) < 0) {
        return -1;
    }
    n = v[0].shape[0];
    if (fpc_array_get(arr[1], "caplen", "I", 4, n, &v[1]) < 0 ||
        fpc_array_get(arr[2], "wirelen", "I", 4, n, &v[2]) < 0 ||
        fpc_array_get(arr[3], "ts_ns", "lq", 8, n, &v[3]) < 0 ||
        fpc_array_get(arr[4], "linktype", "H", 2, n, &v[4]) < 0 ||
        fpc_array_get(arr[5], "precision", "B", 1, n, &v[5]) < 0) {
        return -1;
    }
    return n;
}

static PyObject *
ring_push(FpcRingObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"data",     "offset",    "caplen",  "wirelen", "ts_ns",
                             "linktype", "precision", "timeout", "drop",    NULL};
    Py_buffer data = {0}, v[6] = {{0}};
    PyObject *arr[6], *result = NULL;
    double timeout = 0.0;
    FpcRingBatch b;
    Py_ssize_t n, bad;
    int64_t done;
    int drop = 1, i;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "y*OOOOOO|dp:push", kwlist, &data, &arr[0],
                                     &arr[1], &arr[2], &arr[3], &arr[4], &arr[5], &timeout,
                                     &drop)) {
        return NULL;
    }
    n = get_arrays(arr, v);
    if (n < 0) {
        goto cleanup;
    }
    b = (FpcRingBatch){data.buf, v[0].buf, v[1].buf, v[2].buf, v[3].buf, v[4].buf, v[5].buf};
    bad = check_batch(&b, n, data.len);
    if (bad < 0) {
        PyErr_Format(PyExc_ValueError,
                     "packet %zd: offset + caplen runs past the end of data (%zd bytes) or "
                     "precision is not 6 or 9; the batch's arrays do not match its buffer",
                     -1 - bad, data.len);
        goto cleanup;
    }
    if (self->pushing) {
        PyErr_SetString(PyExc_RuntimeError, "Ring.push is already running in another thread; "
                                            "a ring has one producer");
        goto cleanup;
    }
    self->pushing = 1;
    Py_BEGIN_ALLOW_THREADS done = fpc_ring_push(&self->ring, &b, n, timeout, drop);
    Py_END_ALLOW_THREADS self->pushing = 0;
    result = PyLong_FromLongLong(done);

cleanup:
    for (i = 0; i < 6; i++) {
        PyBuffer_Release(&v[i]);
    }
    PyBuffer_Release(&data);
    return result;
}

/* New reference: (records, meta) of the popped packets, (b"", b"") on timeout, None at the end. */
static PyObject *
ring_pop(FpcRingObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"max_packets", "timeout", "linger", "max_bytes", NULL};
    PyObject *records = NULL, *meta = NULL, *result = NULL;
    Py_ssize_t max_packets, max_bytes = 0;
    const uint8_t *span;
    uint64_t span_len = 0;
    double timeout = 0.0, linger = 0.0;
    int64_t n;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "n|ddn:pop", kwlist, &max_packets, &timeout,
                                     &linger, &max_bytes)) {
        return NULL;
    }
    if (max_packets < 1) {
        PyErr_Format(PyExc_ValueError, "max_packets = %zd; pop at least 1", max_packets);
        return NULL;
    }
    if (max_bytes < 0) {
        PyErr_Format(PyExc_ValueError, "max_bytes = %zd; give 0 (no limit) or more", max_bytes);
        return NULL;
    }
    if (self->popping) {
        PyErr_SetString(PyExc_RuntimeError, "Ring.pop is already running in another thread; "
                                            "a ring has one consumer");
        return NULL;
    }
    self->popping = 1;
    Py_BEGIN_ALLOW_THREADS n = fpc_ring_peek(&self->ring, max_packets, (uint64_t)max_bytes,
                                                   timeout, linger, &span, &span_len);
    Py_END_ALLOW_THREADS if (n < 0)
    {
        result = Py_NewRef(Py_None);
        goto cleanup;
    }
    records = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)span_len);
    meta = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(n * (int64_t)sizeof(FpcRingMeta)));
    if (records == NULL || meta == NULL) {
        goto cleanup; /* the packets stay in the ring */
    }
    if (n > 0) {
        Py_BEGIN_ALLOW_THREADS memcpy(PyBytes_AS_STRING(records), span, span_len);
        fpc_ring_describe(&self->ring, n, (FpcRingMeta *)PyBytes_AS_STRING(meta));
        fpc_ring_release(&self->ring, n);
        Py_END_ALLOW_THREADS
    }
    result = PyTuple_Pack(2, records, meta);

cleanup:
    self->popping = 0;
    Py_XDECREF(records);
    Py_XDECREF(meta);
    return result;
}

static PyObject *
ring_close(FpcRingObject *self, PyObject *unused)
{
    fpc_ring_close(&self->ring);
    Py_RETURN_NONE;
}

/* New reference: the ring's counters as a dict. */
static PyObject *
ring_stats(FpcRingObject *self, PyObject *unused)
{
    FpcRingHeader *h = self->ring.hdr;
    unsigned long long in = atomic_load(&h->head), out = atomic_load(&h->tail);

    return Py_BuildValue(
        "{sKsKsKsKsKsO}", "packets_in", in, "packets_out", out, "dropped",
        (unsigned long long)atomic_load(&h->dropped), "queued", in - out, "bytes_queued",
        (unsigned long long)(atomic_load(&h->head_bytes) - atomic_load(&h->tail_bytes)), "closed",
        atomic_load(&h->closed) ? Py_True : Py_False);
}

int
fpc_ring_borrow(PyObject *obj, FpcRing *ring)
{
    if (Py_TYPE(obj)->tp_dealloc != (destructor)ring_dealloc) {
        PyErr_Format(PyExc_TypeError, "expected a fpc._fastpath.Ring, got %s",
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    *ring = ((FpcRingObject *)obj)->ring;
    return 0;
}

static PyObject *
ring_layout_size(PyObject *unused, PyObject *args)
{
    long long data_bytes, slots;

    if (!PyArg_ParseTuple(args, "LL:layout_size", &data_bytes, &slots) ||
        check_geometry(data_bytes, slots) < 0) {
        return NULL;
    }
    return PyLong_FromUnsignedLongLong(fpc_ring_layout_size((uint64_t)data_bytes, (uint64_t)slots));
}

static PyObject *
ring_get_data_bytes(FpcRingObject *self, void *unused)
{
    return PyLong_FromUnsignedLongLong(self->ring.hdr->data_bytes);
}

static PyObject *
ring_get_slots(FpcRingObject *self, void *unused)
{
    return PyLong_FromUnsignedLongLong(self->ring.hdr->slot_count);
}

static PyMethodDef ring_methods[] = {
    {"push", (PyCFunction)(void (*)(void))ring_push, METH_VARARGS | METH_KEYWORDS,
     "push($self, data, offset, caplen, wirelen, ts_ns, linktype, precision, timeout=0.0, "
     "drop=True)\n--\n\n"
     "Push packet i = data[offset[i]:offset[i] + caplen[i]] for every i, waiting up to\n"
     "timeout seconds for room (< 0: for ever). Returns how many went in; with drop,\n"
     "the rest are counted as dropped."},
    {"pop", (PyCFunction)(void (*)(void))ring_pop, METH_VARARGS | METH_KEYWORDS,
     "pop($self, max_packets, timeout=0.0, linger=0.0, max_bytes=0)\n--\n\n"
     "Up to max_packets packets as (records, meta): records are pcap records back to\n"
     "back, meta 32 bytes per packet (fpc.ring.RING_META). (b'', b'') after timeout\n"
     "seconds without a packet (< 0: wait for ever); None once closed and empty.\n"
     "Once a packet is there, waits up to linger seconds more for max_packets, or\n"
     "for max_bytes of records; records beyond max_bytes (0: no limit) stay for the\n"
     "next pop, except a first record that is larger alone."},
    {"close", (PyCFunction)ring_close, METH_NOARGS,
     "close($self, /)\n--\n\nNo more packets: the consumer drains the ring, then sees None."},
    {"stats", (PyCFunction)ring_stats, METH_NOARGS,
     "stats($self, /)\n--\n\nPackets in, out, dropped and queued; bytes queued; closed."},
    {"layout_size", (PyCFunction)ring_layout_size, METH_VARARGS | METH_STATIC,
     "layout_size(data_bytes, slots)\n--\n\nBytes of the block a ring of this size needs."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef ring_getset[] = {
    {"data_bytes", (getter)ring_get_data_bytes, NULL, "Bytes of the record area.", NULL},
    {"slots", (getter)ring_get_slots, NULL, "Packets the ring can hold at most.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot ring_slots[] = {
    {Py_tp_new, ring_new},
    {Py_tp_dealloc, ring_dealloc},
    {Py_tp_methods, ring_methods},
    {Py_tp_getset, ring_getset},
    {Py_tp_doc, "Ring(buffer, data_bytes=0, slots=0)\n--\n\n"
                "A single-producer single-consumer ring of pcap records in `buffer`\n"
                "(shared memory). With data_bytes and slots, formats the buffer;\n"
                "without, attaches to a ring formatted there before."},
    {0, NULL},
};

static PyType_Spec ring_spec = {
    .name = "fpc._fastpath.Ring",
    .basicsize = sizeof(FpcRingObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = ring_slots,
};

int
fpc_ring_type_register(PyObject *module)
{
    PyObject *type = PyType_FromModuleAndSpec(module, &ring_spec, NULL);
    int rc;

    if (type == NULL) {
        return -1;
    }
    rc = PyModule_AddObjectRef(module, "Ring", type);
    Py_DECREF(type);
    return rc;
}
