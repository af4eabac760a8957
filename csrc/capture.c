/*
 * Live capture from an interface with libpcap, and its Python type
 * fpc._fastpath.Capture (driven by fpc/capture.py).
 *
 * libpcap is driven from here rather than through pcapy-ng because the fast
 * path needs what pcapy-ng's next_batch cannot give: the wire length of each
 * packet, and packets moved without the GIL and without a Python object per
 * batch. A native thread runs pcap_dispatch on a non-blocking handle and
 * pushes every packet straight into a Ring (ring.c) as a pcap record; the
 * processing thread pops spans of records from the ring.
 *
 * The thread waits in poll(2) on the pcap descriptor and on the read end of a
 * pipe. stop() sets a flag, breaks pcap_dispatch and writes to the pipe, so
 * the thread ends within one packet however idle or busy the interface. The
 * thread is created with every signal blocked, so SIGINT and SIGTERM reach
 * Python's handlers on the main thread. While it runs, only the thread touches
 * the pcap handle; it refreshes a snapshot of libpcap's counters after every
 * dispatch and every poll, which stats() reads.
 */
#include "fastpath.h" /* Python.h first, as CPython requires */

#include <errno.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <pcap/pcap.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define NS_PER_S 1000000000LL
#define NS_PER_US 1000LL
#define PRECISION_US 6
#define STATS_EVERY_S 0.2 /* libpcap's counters are read this often while capturing */
#define ROOM_WAIT_S 0.05 /* a packet waiting for ring room checks the stop flag this often */

typedef struct {
    PyObject_HEAD pcap_t *pcap;
    PyObject *ring_obj; /* held while the thread may push into it */
    FpcRing ring;
    pthread_t thread;
    int running; /* thread created and not yet joined */
    int wake[2]; /* stop() writes wake[1]; the thread polls wake[0] */
    int timeout_ms;
    uint16_t linktype;
    _Atomic int stopping;
    _Atomic int failed;
    char error[PCAP_ERRBUF_SIZE + 64]; /* why the thread ended; set before `failed` */
    /* counters: written by the thread (or with the GIL when it is not running) */
    _Atomic uint64_t packets, bytes, wire_bytes;
    _Atomic uint64_t received, dropped, if_dropped; /* libpcap's, last snapshot */
    uint64_t local_packets, local_bytes, local_wire; /* thread only, per dispatch */
    double stats_due; /* thread only: when to read libpcap's counters again */
} FpcCaptureObject;

/* ------------------------------------------------------------------------ */
/* The capture thread: no Python objects, GIL never taken.                  */

static void
on_packet(u_char *user, const struct pcap_pkthdr *h, const u_char *bytes)
{
    FpcCaptureObject *self = (FpcCaptureObject *)user;
    int64_t offset = 0;
    int64_t ts_ns = (int64_t)h->ts.tv_sec * NS_PER_S + (int64_t)h->ts.tv_usec * NS_PER_US;
    uint32_t caplen = h->caplen, wirelen = h->len < h->caplen ? h->caplen : h->len;
    uint8_t precision = PRECISION_US;
    FpcRingBatch b = {bytes, &offset, &caplen, &wirelen, &ts_ns, &self->linktype, &precision};

    /* A full ring holds the packet back (the kernel buffer absorbs the burst and
     * libpcap counts what it cannot); only a stop turns waiting into a drop. */
    while (fpc_ring_push(&self->ring, &b, 1, ROOM_WAIT_S, 0) == 0) {
        if (atomic_load_explicit(&self->stopping, memory_order_relaxed)) {
            fpc_ring_push(&self->ring, &b, 1, 0.0, 1);
            return;
        }
    }
    self->local_packets++;
    self->local_bytes += caplen;
    self->local_wire += wirelen;
}

static double
coarse_now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Publishes our counters, and libpcap's at most every STATS_EVERY_S unless
 * `force`: on Linux pcap_stats reads files under /sys, too dear per block. */
static void
publish_counters(FpcCaptureObject *self, int force)
{
    struct pcap_stat ps;
    double now;

    atomic_fetch_add_explicit(&self->packets, self->local_packets, memory_order_relaxed);
    atomic_fetch_add_explicit(&self->bytes, self->local_bytes, memory_order_relaxed);
    atomic_fetch_add_explicit(&self->wire_bytes, self->local_wire, memory_order_relaxed);
    self->local_packets = self->local_bytes = self->local_wire = 0;
    now = coarse_now_s();
    if (!force && now < self->stats_due) {
        return;
    }
    self->stats_due = now + STATS_EVERY_S;
    if (pcap_stats(self->pcap, &ps) == 0) {
        atomic_store_explicit(&self->received, ps.ps_recv, memory_order_relaxed);
        atomic_store_explicit(&self->dropped, ps.ps_drop, memory_order_relaxed);
        atomic_store_explicit(&self->if_dropped, ps.ps_ifdrop, memory_order_relaxed);
    }
}

static void
thread_fail(FpcCaptureObject *self, const char *what)
{
    snprintf(self->error, sizeof(self->error), "%s", what);
    atomic_store_explicit(&self->failed, 1, memory_order_release);
}

static void *
capture_main(void *arg)
{
    FpcCaptureObject *self = arg;
    struct pollfd fds[2] = {
        {.fd = pcap_get_selectable_fd(self->pcap), .events = POLLIN},
        {.fd = self->wake[0], .events = POLLIN},
    };
    int n;

    while (!atomic_load_explicit(&self->stopping, memory_order_acquire)) {
        n = pcap_dispatch(self->pcap, -1, on_packet, (u_char *)self);
        publish_counters(self, 0);
        if (n == PCAP_ERROR_BREAK) {
            break; /* stop() */
        }
        if (n < 0) {
            thread_fail(self, pcap_geterr(self->pcap));
            break;
        }
        if (n == 0 && poll(fds, 2, self->timeout_ms) < 0 && errno != EINTR) {
            thread_fail(self, strerror(errno));
            break;
        }
    }
    fpc_ring_close(&self->ring); /* the consumer drains the ring, then sees the end */
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* The Python type: GIL held except where released around a join.          */

static int
require_handle(FpcCaptureObject *self)
{
    if (self->pcap == NULL) {
        PyErr_SetString(PyExc_ValueError, "the capture is closed; create a new Capture");
        return -1;
    }
    return 0;
}

static int
require_stopped(FpcCaptureObject *self, const char *what)
{
    if (require_handle(self) < 0) {
        return -1;
    }
    if (self->running) {
        PyErr_Format(PyExc_ValueError, "%s while the capture thread runs; call it before start()",
                     what);
        return -1;
    }
    return 0;
}

static PyObject *
capture_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"interface", "snaplen", "promisc", "timeout_ms", "buffer_bytes", NULL};
    char errbuf[PCAP_ERRBUF_SIZE] = "";
    int snaplen, promisc, timeout_ms, buffer_bytes;
    FpcCaptureObject *self;
    const char *interface;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "siiii:Capture", kwlist, &interface, &snaplen,
                                     &promisc, &timeout_ms, &buffer_bytes)) {
        return NULL;
    }
    self = (FpcCaptureObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->wake[0] = self->wake[1] = -1;
    self->timeout_ms = timeout_ms;
    self->pcap = pcap_create(interface, errbuf);
    if (self->pcap == NULL) {
        PyErr_SetString(PyExc_OSError, errbuf);
        Py_DECREF(self);
        return NULL;
    }
    pcap_set_snaplen(self->pcap, snaplen);
    pcap_set_promisc(self->pcap, promisc);
    pcap_set_timeout(self->pcap, timeout_ms);
    pcap_set_buffer_size(self->pcap, buffer_bytes);
    return (PyObject *)self;
}

/* New reference: (status, libpcap's message); status < 0 failed, > 0 a warning. */
static PyObject *
capture_activate(FpcCaptureObject *self, PyObject *unused)
{
    const char *detail = "";
    int status;

    if (require_stopped(self, "activate()") < 0) {
        return NULL;
    }
    status = pcap_activate(self->pcap);
    if (status != 0) {
        detail = pcap_geterr(self->pcap);
        if (detail == NULL || detail[0] == '\0') {
            detail = pcap_statustostr(status);
        }
    }
    return Py_BuildValue("(is)", status, detail);
}

static PyObject *
capture_setfilter(FpcCaptureObject *self, PyObject *args)
{
    struct bpf_program prog;
    const char *expression;
    int rc;

    if (!PyArg_ParseTuple(args, "s:setfilter", &expression) ||
        require_stopped(self, "setfilter()") < 0) {
        return NULL;
    }
    if (pcap_compile(self->pcap, &prog, expression, 1, PCAP_NETMASK_UNKNOWN) < 0) {
        PyErr_SetString(PyExc_ValueError, pcap_geterr(self->pcap));
        return NULL;
    }
    rc = pcap_setfilter(self->pcap, &prog);
    pcap_freecode(&prog);
    if (rc < 0) {
        PyErr_SetString(PyExc_ValueError, pcap_geterr(self->pcap));
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
capture_set_fanout(FpcCaptureObject *self, PyObject *args)
{
    int group, mode, value, fd;

    if (!PyArg_ParseTuple(args, "ii:set_fanout", &group, &mode) ||
        require_stopped(self, "set_fanout()") < 0) {
        return NULL;
    }
    fd = pcap_fileno(self->pcap);
    value = (group & 0xffff) | (mode << 16);
    if (fd < 0 || setsockopt(fd, SOL_PACKET, PACKET_FANOUT, &value, sizeof(value)) < 0) {
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    Py_RETURN_NONE;
}

static PyObject *
capture_datalink(FpcCaptureObject *self, PyObject *unused)
{
    if (require_handle(self) < 0) {
        return NULL;
    }
    return PyLong_FromLong(pcap_datalink(self->pcap));
}

static int
open_wake_pipe(FpcCaptureObject *self)
{
    if (self->wake[0] < 0 && pipe2(self->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    return 0;
}

/* Creates the thread with every signal blocked, so that signals go to Python's thread. */
static int
spawn_thread(FpcCaptureObject *self)
{
    sigset_t all, old;
    int rc;

    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    rc = pthread_create(&self->thread, NULL, capture_main, self);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        errno = rc;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    pthread_setname_np(self->thread, "fpc-capture"); /* for top -H and perf */
    return 0;
}

static void
publish_now(FpcCaptureObject *self)
{
    if (self->pcap != NULL && !self->running) {
        publish_counters(self, 1);
    }
}

static PyObject *
capture_start(FpcCaptureObject *self, PyObject *args)
{
    char errbuf[PCAP_ERRBUF_SIZE] = "";
    PyObject *ring_obj;
    int linktype;
    FpcRing ring;

    if (!PyArg_ParseTuple(args, "Oi:start", &ring_obj, &linktype) ||
        require_stopped(self, "start()") < 0 || fpc_ring_borrow(ring_obj, &ring) < 0) {
        return NULL;
    }
    if ((uint64_t)pcap_snapshot(self->pcap) + FPC_RING_RECORD_HEADER > ring.hdr->data_bytes / 2) {
        PyErr_Format(PyExc_ValueError,
                     "snaplen %d does not fit in a ring of %llu bytes; make the ring at "
                     "least %d bytes",
                     pcap_snapshot(self->pcap), (unsigned long long)ring.hdr->data_bytes,
                     2 * (pcap_snapshot(self->pcap) + FPC_RING_RECORD_HEADER));
        return NULL;
    }
    if (pcap_setnonblock(self->pcap, 1, errbuf) < 0) {
        PyErr_SetString(PyExc_OSError, errbuf);
        return NULL;
    }
    if (open_wake_pipe(self) < 0) {
        return NULL;
    }
    publish_now(self); /* stats() is right before the first dispatch too */
    self->ring = ring;
    self->linktype = (uint16_t)linktype;
    atomic_store(&self->stopping, 0);
    Py_XSETREF(self->ring_obj, Py_NewRef(ring_obj));
    if (spawn_thread(self) < 0) {
        Py_CLEAR(self->ring_obj);
        return NULL;
    }
    self->running = 1;
    Py_RETURN_NONE;
}

/* Ends the thread and waits for it (GIL released); the ring is closed after. */
static void
stop_thread(FpcCaptureObject *self)
{
    ssize_t unused;

    if (!self->running) {
        return;
    }
    atomic_store_explicit(&self->stopping, 1, memory_order_release);
    pcap_breakloop(self->pcap);
    unused = write(self->wake[1], "x", 1); /* a full pipe already wakes the thread */
    (void)unused;
    Py_BEGIN_ALLOW_THREADS pthread_join(self->thread, NULL);
    Py_END_ALLOW_THREADS self->running = 0;
    Py_CLEAR(self->ring_obj);
}

static PyObject *
capture_stop(FpcCaptureObject *self, PyObject *unused)
{
    stop_thread(self);
    Py_RETURN_NONE;
}

static void
close_handle(FpcCaptureObject *self)
{
    int i;

    stop_thread(self);
    if (self->pcap != NULL) {
        publish_counters(self, 1); /* the final counters, kept for stats() */
        pcap_close(self->pcap);
        self->pcap = NULL;
    }
    for (i = 0; i < 2; i++) {
        if (self->wake[i] >= 0) {
            close(self->wake[i]);
            self->wake[i] = -1;
        }
    }
}

static PyObject *
capture_close(FpcCaptureObject *self, PyObject *unused)
{
    close_handle(self);
    Py_RETURN_NONE;
}

/* New reference: libpcap's counters (last snapshot) and the packets put in the ring. */
static PyObject *
capture_stats(FpcCaptureObject *self, PyObject *unused)
{
    publish_now(self);
    return Py_BuildValue(
        "{sKsKsKsKsKsK}", "received", (unsigned long long)atomic_load(&self->received),
        "dropped", (unsigned long long)atomic_load(&self->dropped), "interface_dropped",
        (unsigned long long)atomic_load(&self->if_dropped), "captured",
        (unsigned long long)atomic_load(&self->packets), "captured_bytes",
        (unsigned long long)atomic_load(&self->bytes), "wire_bytes",
        (unsigned long long)atomic_load(&self->wire_bytes));
}

/* New reference: why the thread ended on its own, or None. */
static PyObject *
capture_failure(FpcCaptureObject *self, PyObject *unused)
{
    if (!atomic_load_explicit(&self->failed, memory_order_acquire)) {
        Py_RETURN_NONE;
    }
    return PyUnicode_DecodeUTF8(self->error, (Py_ssize_t)strlen(self->error), "replace");
}

static void
capture_dealloc(FpcCaptureObject *self)
{
    PyTypeObject *type = Py_TYPE(self);

    close_handle(self);
    Py_XDECREF(self->ring_obj);
    type->tp_free((PyObject *)self);
    Py_DECREF(type);
}

static PyMethodDef capture_methods[] = {
    {"activate", (PyCFunction)capture_activate, METH_NOARGS,
     "activate($self, /)\n--\n\n(status, message) of pcap_activate: < 0 failed, > 0 a warning."},
    {"setfilter", (PyCFunction)capture_setfilter, METH_VARARGS,
     "setfilter($self, expression, /)\n--\n\nCompile and set a BPF filter; ValueError with "
     "libpcap's reason."},
    {"set_fanout", (PyCFunction)capture_set_fanout, METH_VARARGS,
     "set_fanout($self, group, mode, /)\n--\n\nJoin PACKET_FANOUT group `group` in `mode`."},
    {"datalink", (PyCFunction)capture_datalink, METH_NOARGS,
     "datalink($self, /)\n--\n\nThe DLT_* of the activated handle."},
    {"start", (PyCFunction)capture_start, METH_VARARGS,
     "start($self, ring, linktype, /)\n--\n\nStart the capture thread: every packet goes\n"
     "into `ring` (this thread is its only producer) as a pcap record of `linktype`."},
    {"stop", (PyCFunction)capture_stop, METH_NOARGS,
     "stop($self, /)\n--\n\nEnd the capture thread and wait for it; the ring is closed."},
    {"close", (PyCFunction)capture_close, METH_NOARGS,
     "close($self, /)\n--\n\nStop, then release the interface; stats() keeps the last values."},
    {"stats", (PyCFunction)capture_stats, METH_NOARGS,
     "stats($self, /)\n--\n\nreceived, dropped, interface_dropped (libpcap); captured,\n"
     "captured_bytes, wire_bytes (put in the ring)."},
    {"failure", (PyCFunction)capture_failure, METH_NOARGS,
     "failure($self, /)\n--\n\nWhy the capture thread ended by itself (libpcap's text), or None."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot capture_slots[] = {
    {Py_tp_new, capture_new},
    {Py_tp_dealloc, capture_dealloc},
    {Py_tp_methods, capture_methods},
    {Py_tp_doc, "Capture(interface, snaplen, promisc, timeout_ms, buffer_bytes)\n--\n\n"
                "A libpcap handle on `interface`, not yet activated, whose packets a\n"
                "native thread pushes into a Ring once started."},
    {0, NULL},
};

static PyType_Spec capture_spec = {
    .name = "fpc._fastpath.Capture",
    .basicsize = sizeof(FpcCaptureObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = capture_slots,
};

int
fpc_capture_type_register(PyObject *module)
{
    PyObject *type = PyType_FromModuleAndSpec(module, &capture_spec, NULL);
    int rc;

    if (type == NULL) {
        return -1;
    }
    rc = PyModule_AddObjectRef(module, "Capture", type);
    Py_DECREF(type);
    if (rc < 0 || PyModule_AddIntConstant(module, "PACKET_FANOUT_HASH", PACKET_FANOUT_HASH) < 0 ||
        PyModule_AddIntConstant(module, "PACKET_FANOUT_LB", PACKET_FANOUT_LB) < 0 ||
        PyModule_AddIntConstant(module, "PACKET_FANOUT_CPU", PACKET_FANOUT_CPU) < 0 ||
        PyModule_AddIntConstant(module, "PACKET_FANOUT_ROLLOVER", PACKET_FANOUT_ROLLOVER) < 0 ||
        PyModule_AddIntConstant(module, "PACKET_FANOUT_RND", PACKET_FANOUT_RND) < 0) {
        return -1;
    }
    return 0;
}
