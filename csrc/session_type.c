/*
 * fpc._fastpath.SessionTable: the Python type around the session table of
 * session.c, used by fpc/session.py.
 *
 * Arguments are checked and results built with the GIL held; add, expire and
 * flush release the GIL while the table works. Meanwhile the object is marked
 * busy, so a second thread calling in gets RuntimeError instead of racing.
 * The batch arrays stay owned by the caller and are borrowed through buffer
 * views for the length of the call; the table and everything in it is owned
 * by the object and freed with it. take() copies ended sessions into new
 * bytes objects, which the caller owns.
 */
#include "fastpath.h" /* Python.h first, as CPython requires */

#include "session.h"

#define MAX_SESSIONS_LIMIT ((1 << 27) - 1) /* the slot index bits of a serial */

/* clang-format off */
typedef struct {
    PyObject_HEAD
    FpcSessionTable *table;
    int busy;
    PyObject *dtype; /* last DECODED dtype whose offsets `layout` holds (strong) */
    PyObject *names; /* its names when read: renaming fields replaces them (strong) */
    FpcRowLayout layout;
} FpcSessionObject;
/* clang-format on */

typedef struct {
    const char *name;
    size_t offset; /* in FpcRowLayout */
} FpcRowField;

static const FpcRowField ROW_FIELDS[] = {
    {"status", offsetof(FpcRowLayout, status)},
    {"proto", offsetof(FpcRowLayout, proto)},
    {"tcp_flags", offsetof(FpcRowLayout, tcp_flags)},
    {"ttl", offsetof(FpcRowLayout, ttl)},
    {"reverse", offsetof(FpcRowLayout, reverse)},
    {"vlan_count", offsetof(FpcRowLayout, vlan_count)},
    {"icmp_type", offsetof(FpcRowLayout, icmp_type)},
    {"icmp_code", offsetof(FpcRowLayout, icmp_code)},
    {"tunnel", offsetof(FpcRowLayout, tunnel)},
    {"payload_len", offsetof(FpcRowLayout, payload_len)},
    {"seq", offsetof(FpcRowLayout, seq)},
    {"ack", offsetof(FpcRowLayout, ack)},
    {"src_mac", offsetof(FpcRowLayout, src_mac)},
    {"dst_mac", offsetof(FpcRowLayout, dst_mac)},
    {"vlan", offsetof(FpcRowLayout, vlan)},
    {"key", offsetof(FpcRowLayout, key)},
    {"hash", offsetof(FpcRowLayout, hash)},
    {"src", offsetof(FpcRowLayout, src)},
    {"dst", offsetof(FpcRowLayout, dst)},
    {"sport", offsetof(FpcRowLayout, sport)},
    {"dport", offsetof(FpcRowLayout, dport)},
    {NULL, 0},
};

static int
check_idle(FpcSessionObject *self)
{
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "SessionTable is in use by another thread; "
                                            "call it from one thread only");
        return -1;
    }
    return 0;
}

/* Reads the offsets of ROW_FIELDS from a dtype already checked against FpcDecoded. */
static int
read_offsets(PyObject *dtype, FpcRowLayout *layout)
{
    PyObject *fields = PyObject_GetAttrString(dtype, "fields"), *entry;
    const FpcRowField *f;
    ptrdiff_t offset;

    if (fields == NULL) {
        return -1;
    }
    for (f = ROW_FIELDS; f->name != NULL; f++) {
        entry = PyMapping_GetItemString(fields, f->name);
        if (entry == NULL) {
            Py_DECREF(fields);
            return -1;
        }
        offset = PyLong_AsSsize_t(PyTuple_GetItem(entry, 1));
        Py_DECREF(entry);
        if (offset < 0) {
            Py_DECREF(fields);
            return -1;
        }
        *(ptrdiff_t *)((char *)layout + f->offset) = offset;
    }
    Py_DECREF(fields);
    return 0;
}

/* Makes self->layout describe the rows of `dec` (dtype fpc.decode.DECODED). */
static int
row_layout(FpcSessionObject *self, PyObject *dec)
{
    PyObject *dtype = PyObject_GetAttrString(dec, "dtype"), *names = NULL;
    FpcLayout full;
    int rc = -1;

    if (dtype == NULL || (names = PyObject_GetAttrString(dtype, "names")) == NULL) {
        PyErr_SetString(PyExc_ValueError, "dec must be a numpy array of dtype fpc.decode.DECODED; "
                                          "pass what fpc.decode.decode_batch returns");
        goto cleanup;
    }
    if (dtype == self->dtype && names == self->names) {
        rc = 0;
        goto cleanup;
    }
    if (fpc_layout_check(dtype, &full) < 0 || read_offsets(dtype, &self->layout) < 0) {
        goto cleanup;
    }
    self->layout.itemsize = full.itemsize;
    Py_XSETREF(self->dtype, Py_NewRef(dtype));
    Py_XSETREF(self->names, Py_NewRef(names));
    rc = 0;

cleanup:
    Py_XDECREF(names);
    Py_XDECREF(dtype);
    return rc;
}

/* fpc_array_get for an array the table writes into. */
static int
out_array(PyObject *obj, const char *what, const char *codes, Py_ssize_t itemsize, Py_ssize_t n,
          Py_buffer *view)
{
    if (fpc_array_get(obj, what, codes, itemsize, n, view) < 0) {
        return -1;
    }
    if (view->readonly) {
        PyErr_Format(PyExc_ValueError, "%s is read-only; pass a new writable array (np.empty)",
                     what);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

/* Checks that every file number fits the 32 bits a position keeps. */
static int
check_files(const int64_t *file, Py_ssize_t n)
{
    Py_ssize_t i;

    for (i = 0; i < n; i++) {
        if (file[i] < -1 || file[i] > INT32_MAX) {
            PyErr_Format(PyExc_ValueError,
                         "packet %zd: file number %lld is outside -1..%d; file numbers come "
                         "from the PCAP writer",
                         i, (long long)file[i], INT32_MAX);
            return -1;
        }
    }
    return 0;
}

enum { B_TS, B_WIRE, B_CAP, B_FILE, B_POS, B_INDEX, B_SERIAL, B_DIR, B_DEC, B_COUNT };

/* Gets the views of add()'s arguments into v[] (released by the caller either way). */
static int
add_views(FpcSessionObject *self, PyObject *const *a, Py_buffer *v)
{
    Py_ssize_t n;

    if (fpc_array_get(a[B_TS], "ts_ns", "lq", 8, -1, &v[B_TS]) < 0) {
        return -1;
    }
    n = v[B_TS].shape[0];
    if (fpc_array_get(a[B_WIRE], "wirelen", "I", 4, n, &v[B_WIRE]) < 0 ||
        fpc_array_get(a[B_CAP], "caplen", "I", 4, n, &v[B_CAP]) < 0 ||
        fpc_array_get(a[B_FILE], "files", "lq", 8, n, &v[B_FILE]) < 0 ||
        fpc_array_get(a[B_POS], "pos", "lq", 8, n, &v[B_POS]) < 0 ||
        out_array(a[B_INDEX], "app_index", "lq", 8, n, &v[B_INDEX]) < 0 ||
        out_array(a[B_SERIAL], "app_serial", "LQ", 8, n, &v[B_SERIAL]) < 0 ||
        out_array(a[B_DIR], "app_dir", "B", 1, n, &v[B_DIR]) < 0 ||
        row_layout(self, a[B_DEC]) < 0) {
        return -1;
    }
    if (PyObject_GetBuffer(a[B_DEC], &v[B_DEC], PyBUF_C_CONTIGUOUS) < 0) {
        return -1;
    }
    if (v[B_DEC].len != n * self->layout.itemsize) {
        PyErr_Format(PyExc_ValueError, "dec holds %zd bytes, expected %zd rows of %zd bytes",
                     v[B_DEC].len, n, (Py_ssize_t)self->layout.itemsize);
        return -1;
    }
    return check_files(v[B_FILE].buf, n);
}

static PyObject *
table_add(FpcSessionObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *a[B_COUNT], *result = NULL;
    Py_buffer v[B_COUNT];
    FpcBatch batch;
    FpcAppOut app;
    Py_ssize_t bad;
    int k;

    memset(v, 0, sizeof(v));
    if (nargs != 9) {
        PyErr_Format(PyExc_TypeError,
                     "add() takes 9 arguments (dec, ts_ns, wirelen, caplen, "
                     "files, pos, app_index, app_serial, app_dir), got %zd",
                     nargs);
        return NULL;
    }
    a[B_DEC] = args[0];
    for (k = 0; k < B_DEC; k++) {
        a[k] = args[k + 1];
    }
    if (check_idle(self) < 0 || add_views(self, a, v) < 0) {
        goto cleanup;
    }
    batch = (FpcBatch){v[B_DEC].buf, &self->layout, v[B_TS].buf,  v[B_WIRE].buf,
                       v[B_CAP].buf, v[B_FILE].buf, v[B_POS].buf, v[B_TS].shape[0]};
    app = (FpcAppOut){v[B_INDEX].buf, v[B_SERIAL].buf, v[B_DIR].buf, 0};
    self->busy = 1;
    /* clang-format off */
    Py_BEGIN_ALLOW_THREADS
    bad = fpc_session_add(self->table, &batch, &app);
    Py_END_ALLOW_THREADS
    self->busy = 0;
    /* clang-format on */
    if (bad >= 0) {
        PyErr_Format(PyExc_MemoryError,
                     "session table out of memory at packet %zd of %zd with %zu active sessions; "
                     "lower [sessions] max_sessions",
                     bad, batch.n, fpc_session_active(self->table));
        goto cleanup;
    }
    result = PyLong_FromSsize_t(app.n);

cleanup:
    for (k = 0; k < B_COUNT; k++) {
        if (v[k].obj != NULL) {
            PyBuffer_Release(&v[k]);
        }
    }
    return result;
}

/* Runs expire (now_ns given) or flush (now_ns NULL) without the GIL; returns a new reference. */
static PyObject *
run_ending(FpcSessionObject *self, const int64_t *now_ns)
{
    int rc;

    if (check_idle(self) < 0) {
        return NULL;
    }
    self->busy = 1;
    /* clang-format off */
    Py_BEGIN_ALLOW_THREADS
    rc = now_ns != NULL ? fpc_session_expire(self->table, *now_ns) : fpc_session_flush(self->table);
    Py_END_ALLOW_THREADS
    self->busy = 0;
    /* clang-format on */
    if (rc < 0) {
        return PyErr_Format(PyExc_MemoryError,
                            "session table out of memory while ending sessions (%zu active); "
                            "call take() more often or lower [sessions] max_sessions",
                            fpc_session_active(self->table));
    }
    Py_RETURN_NONE;
}

static PyObject *
table_expire(FpcSessionObject *self, PyObject *arg)
{
    int64_t now = PyLong_AsLongLong(arg);

    if (now == -1 && PyErr_Occurred()) {
        return NULL;
    }
    return run_ending(self, &now);
}

static PyObject *
table_flush(FpcSessionObject *self, PyObject *unused)
{
    return run_ending(self, NULL);
}

/* Returns a new reference: (ended records as bytes, their positions as bytes). */
static PyObject *
table_take(FpcSessionObject *self, PyObject *unused)
{
    PyObject *rec = NULL, *pos = NULL, *result = NULL;
    size_t n, npos;

    if (check_idle(self) < 0) {
        return NULL;
    }
    n = fpc_session_ended_count(self->table, &npos);
    rec = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(n * sizeof(FpcEnded)));
    pos = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(npos * sizeof(FpcPosition)));
    if (rec == NULL || pos == NULL) {
        goto cleanup;
    }
    fpc_session_take(self->table, (FpcEnded *)PyBytes_AS_STRING(rec),
                     (FpcPosition *)PyBytes_AS_STRING(pos));
    result = PyTuple_Pack(2, rec, pos);

cleanup:
    Py_XDECREF(rec);
    Py_XDECREF(pos);
    return result;
}

static PyObject *
table_app_done(FpcSessionObject *self, PyObject *args)
{
    PyObject *serial_obj;
    unsigned long long serial;
    int directions = FPC_APP_DONE_ALL, done;

    if (!PyArg_ParseTuple(args, "O|i:app_done", &serial_obj, &directions)) {
        return NULL;
    }
    serial = PyLong_AsUnsignedLongLong(serial_obj); /* range checked, unlike "K" */
    if ((serial == (unsigned long long)-1 && PyErr_Occurred()) || check_idle(self) < 0) {
        return NULL;
    }
    if (directions < 1 || directions > FPC_APP_DONE_ALL) {
        PyErr_Format(PyExc_ValueError, "app_done: directions %d is not 1, 2 or 3", directions);
        return NULL;
    }
    done = fpc_session_app_done(self->table, serial, directions);
    return PyLong_FromLong(done);
}

/* Returns a new reference: (seq or None, seq or None) of the SYNs per client direction. */
static PyObject *
table_syn_seqs(FpcSessionObject *self, PyObject *arg)
{
    unsigned long long serial = PyLong_AsUnsignedLongLong(arg);
    uint32_t seq[2];
    PyObject *item[2] = {NULL, NULL}, *result = NULL;
    int seen, d;

    if ((serial == (unsigned long long)-1 && PyErr_Occurred()) || check_idle(self) < 0) {
        return NULL;
    }
    seen = fpc_session_syn_seqs(self->table, serial, seq);
    for (d = 0; d < 2; d++) {
        item[d] =
            seen > 0 && (seen & (1 << d)) ? PyLong_FromUnsignedLong(seq[d]) : Py_NewRef(Py_None);
        if (item[d] == NULL) {
            goto cleanup;
        }
    }
    result = PyTuple_Pack(2, item[0], item[1]);

cleanup:
    Py_XDECREF(item[0]);
    Py_XDECREF(item[1]);
    return result;
}

/* Returns a new reference: a dict of the table's counters. */
static PyObject *
table_counters(FpcSessionObject *self, PyObject *unused)
{
    const FpcSessionCounters *c = fpc_session_counters(self->table);

    return Py_BuildValue("{sKsKsKsKsn}", "sessions", (unsigned long long)c->sessions, "segments",
                         (unsigned long long)c->segments, "evicted", (unsigned long long)c->evicted,
                         "position_cuts", (unsigned long long)c->position_cuts, "memory_bytes",
                         (Py_ssize_t)fpc_session_memory(self->table));
}

/* Returns a new reference: ((name, format, offset) of each FpcEnded field,
 * sizeof(FpcEnded), the same for FpcPosition, sizeof(FpcPosition)). */
static PyObject *
table_layouts(PyObject *unused_cls, PyObject *unused)
{
    PyObject *ended = PyList_New(0), *result = NULL, *item;
    const FpcEndedField *f;

    if (ended == NULL) {
        return NULL;
    }
    for (f = fpc_session_ended_fields; f->name != NULL; f++) {
        item = Py_BuildValue("(ssn)", f->name, f->format, (Py_ssize_t)f->offset);
        if (item == NULL || PyList_Append(ended, item) < 0) {
            Py_XDECREF(item);
            goto cleanup;
        }
        Py_DECREF(item);
    }
    result =
        Py_BuildValue("(On((ssn)(ssn)(ssn))n)", ended, (Py_ssize_t)sizeof(FpcEnded), "pos", "i8",
                      (Py_ssize_t)offsetof(FpcPosition, pos), "file", "i4",
                      (Py_ssize_t)offsetof(FpcPosition, file), "len", "u4",
                      (Py_ssize_t)offsetof(FpcPosition, caplen), (Py_ssize_t)sizeof(FpcPosition));

cleanup:
    Py_DECREF(ended);
    return result;
}

static Py_ssize_t
table_len(FpcSessionObject *self)
{
    return (Py_ssize_t)fpc_session_active(self->table);
}

/* Checks the limits; -1 with ValueError naming the first one out of range. */
static int
check_limits(const long long *v, const char *const *names, const long long *lo, const long long *hi,
             int n)
{
    int k;

    for (k = 0; k < n; k++) {
        if (v[k] < lo[k] || v[k] > hi[k]) {
            PyErr_Format(PyExc_ValueError,
                         "SessionTable %s = %lld is out of range; pass %lld to %lld", names[k],
                         v[k], lo[k], hi[k]);
            return -1;
        }
    }
    return 0;
}

static PyObject *
table_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kw[] = {"tcp_timeout_ns", "udp_timeout_ns", "other_timeout_ns",
                         "tcp_close_ns",   "segment_age_ns", "segment_packets",
                         "max_sessions",   "app_bytes",      "max_positions",
                         "app_layer",      "seed",           NULL};
    long long v[9] = {480000000000LL, 60000000000LL, 60000000000LL, 5000000000LL, 600000000000LL,
                      10000,          1000000,       65536,         16000000};
    static const long long lo[9] = {0, 0, 0, 0, 0, 1, 1, 0, 1};
    static const long long hi[9] = {LLONG_MAX,  LLONG_MAX,          LLONG_MAX, LLONG_MAX, LLONG_MAX,
                                    UINT32_MAX, MAX_SESSIONS_LIMIT, INT32_MAX, LLONG_MAX};
    unsigned long long seed = 0;
    int app_layer = 1;
    FpcSessionLimits lim;
    FpcSessionObject *self;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|$LLLLLLLLLpK:SessionTable", kw, &v[0], &v[1],
                                     &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &app_layer,
                                     &seed) ||
        check_limits(v, (const char *const *)kw, lo, hi, 9) < 0) {
        return NULL;
    }
    lim.timeout_ns[0] = v[0];
    lim.timeout_ns[1] = v[1];
    lim.timeout_ns[2] = v[2];
    lim.close_ns = v[3];
    lim.segment_age_ns = v[4];
    lim.segment_packets = (uint32_t)v[5];
    lim.max_sessions = (uint32_t)v[6];
    lim.app_bytes = (uint32_t)v[7];
    lim.max_positions = (uint64_t)v[8];
    lim.app_layer = app_layer;
    self = (FpcSessionObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->table = fpc_session_new(&lim, seed);
    if (self->table == NULL) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    return (PyObject *)self;
}

static void
table_dealloc(FpcSessionObject *self)
{
    PyTypeObject *type = Py_TYPE(self);

    fpc_session_free(self->table);
    Py_XDECREF(self->dtype);
    Py_XDECREF(self->names);
    type->tp_free((PyObject *)self);
    Py_DECREF(type);
}

static PyMethodDef table_methods[] = {
    {"add", (PyCFunction)(void (*)(void))table_add, METH_FASTCALL,
     "add($self, dec, ts_ns, wirelen, caplen, files, pos, app_index, app_serial, app_dir, /)\n"
     "--\n\n"
     "Account a batch; list the packets for the app-layer parsers in the app_* arrays\n"
     "and return how many were listed."},
    {"expire", (PyCFunction)table_expire, METH_O,
     "expire($self, now_ns, /)\n--\n\nEnd the sessions idle or closed as of now_ns."},
    {"flush", (PyCFunction)table_flush, METH_NOARGS, "flush($self, /)\n--\n\nEnd every session."},
    {"take", (PyCFunction)table_take, METH_NOARGS,
     "take($self, /)\n--\n\nThe ended sessions and their packet positions."},
    {"app_done", (PyCFunction)table_app_done, METH_VARARGS,
     "app_done($self, serial, directions=3, /)\n--\n\nOffer no more packets of this session "
     "to the parsers\nin `directions` (bit 0: client to server, bit 1: server to client);\n"
     "returns the directions stopped so far (3 for a session that ended)."},
    {"syn_seqs", (PyCFunction)table_syn_seqs, METH_O,
     "syn_seqs($self, serial, /)\n--\n\nSequence numbers of the SYNs the "
     "session saw\nper client direction before its first packet for the parsers."},
    {"counters", (PyCFunction)table_counters, METH_NOARGS,
     "counters($self, /)\n--\n\nSessions started, segments, evictions, memory."},
    {"layouts", (PyCFunction)table_layouts, METH_NOARGS | METH_STATIC,
     "layouts()\n--\n\nFields, formats and offsets of the records take() returns."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot table_slots[] = {
    {Py_tp_new, table_new},
    {Py_tp_dealloc, table_dealloc},
    {Py_tp_methods, table_methods},
    {Py_mp_length, table_len},
    {Py_tp_doc, "SessionTable(*, tcp_timeout_ns=480000000000, udp_timeout_ns=60000000000, "
                "other_timeout_ns=60000000000, tcp_close_ns=5000000000, "
                "segment_age_ns=600000000000, segment_packets=10000, max_sessions=1000000, "
                "app_bytes=65536, max_positions=16000000, app_layer=True, seed=0)\n--\n\n"
                "The active sessions of one capture, keyed by the normalized key of "
                "fpc.decode."},
    {0, NULL},
};

static PyType_Spec table_spec = {
    .name = "fpc._fastpath.SessionTable",
    .basicsize = sizeof(FpcSessionObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = table_slots,
};

int
fpc_session_type_register(PyObject *module)
{
    PyObject *type = PyType_FromModuleAndSpec(module, &table_spec, NULL);
    int rc;

    if (type == NULL) {
        return -1;
    }
    rc = PyModule_AddObjectRef(module, "SessionTable", type);
    Py_DECREF(type);
    return rc;
}
