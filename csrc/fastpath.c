/*
 * The fpc._fastpath module: decode_batch, pack_records, the SessionTable type
 * (session_type.c) and the Ring type (ring.c).
 *
 * decode_batch checks its arguments and the DECODED layout with the GIL held,
 * then releases the GIL for the decode loop: the packet buffer and the arrays
 * are borrowed through buffer views that keep them alive, and no Python code
 * can run on them meanwhile (the caller is blocked in this call). No Python
 * object is created per packet. The module state only remembers the last
 * DECODED dtype it checked (FpcLayoutCache), so that the layout check costs
 * one attribute lookup per call instead of one per field.
 */
#include "fastpath.h" /* Python.h first, as CPython requires */

#include <string.h>

/* An Ethernet header was decoded: frames without one (Linux cooked, raw)
 * leave both MACs zero. */
static int
has_macs(const FpcDecoded *row)
{
    static const uint8_t zero[6] = {0};

    return memcmp(row->src_mac, zero, 6) != 0 || memcmp(row->dst_mac, zero, 6) != 0;
}

/* Decodes packet `pkt` of `caplen` bytes into `dst`; GIL not needed. */
static void
decode_one(const uint8_t *pkt, size_t caplen, unsigned linktype, char *dst, const FpcLayout *layout,
           int key_vlan)
{
    FpcDecoder d;
    FpcCursor c = {pkt, 0, caplen, 0};

    memset(&d, 0, sizeof(d));
    d.row.status = (uint8_t)fpc_link_decode(&d, &c, linktype);
    if (d.row.status == FPC_STATUS_IP) {
        fpc_key_build(&d.row, pkt, key_vlan);
    } else if (d.row.status == FPC_STATUS_NON_IP && has_macs(&d.row)) {
        fpc_key_build_link(&d.row, key_vlan);
        d.row.status = FPC_STATUS_LINK;
    }
    fpc_layout_write(dst, &d.row, layout);
}

/* Packets ahead of the one being decoded whose first bytes are prefetched:
 * the decode loop otherwise waits on a cache miss per packet. */
#define PREFETCH_AHEAD 16

/* Decodes every packet; returns the index of the first one outside `data`, or -1. */
static Py_ssize_t
decode_all(const Py_buffer *data, const int64_t *offset, const uint32_t *caplen,
           const uint16_t *linktype, char *out, Py_ssize_t n, const FpcLayout *layout, int key_vlan)
{
    const uint8_t *base = data->buf;
    const size_t len = (size_t)data->len;
    Py_ssize_t i;

    for (i = 0; i < n; i++) {
#if defined(__GNUC__)
        if (i + PREFETCH_AHEAD < n && (size_t)offset[i + PREFETCH_AHEAD] < len) {
            __builtin_prefetch(base + offset[i + PREFETCH_AHEAD]);
        }
#endif
        if (offset[i] < 0 || (size_t)offset[i] > len || caplen[i] > len - (size_t)offset[i]) {
            return i;
        }
        decode_one(base + offset[i], caplen[i], linktype[i], out + i * layout->itemsize, layout,
                   key_vlan);
    }
    return -1;
}

static PyObject *
decode_batch(PyObject *module, PyObject *args)
{
    Py_buffer data = {0}, offset = {0}, caplen = {0}, linktype = {0}, out = {0};
    PyObject *off_obj, *cap_obj, *lt_obj, *out_obj, *dtype = NULL, *result = NULL;
    FpcLayout layout;
    Py_ssize_t n, bad;
    int key_vlan = 0;

    if (!PyArg_ParseTuple(args, "y*OOOO|p:decode_batch", &data, &off_obj, &cap_obj, &lt_obj,
                          &out_obj, &key_vlan)) {
        return NULL;
    }
    if (fpc_array_get(off_obj, "offset", "lq", 8, -1, &offset) < 0) {
        goto cleanup;
    }
    n = offset.shape[0];
    if (fpc_array_get(cap_obj, "caplen", "I", 4, n, &caplen) < 0 ||
        fpc_array_get(lt_obj, "linktype", "H", 2, n, &linktype) < 0) {
        goto cleanup;
    }

    dtype = PyObject_GetAttrString(out_obj, "dtype");
    if (dtype == NULL || fpc_layout_get(PyModule_GetState(module), dtype, &layout) < 0) {
        goto cleanup;
    }
    if (PyObject_GetBuffer(out_obj, &out, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0) {
        PyErr_SetString(PyExc_ValueError, "out must be a writable C-contiguous numpy array; "
                                          "create it with np.zeros(n, dtype=DECODED)");
        goto cleanup;
    }
    if (out.len != n * layout.itemsize) {
        PyErr_Format(PyExc_ValueError, "out holds %zd bytes, expected %zd rows of %zd bytes",
                     out.len, n, layout.itemsize);
        goto cleanup;
    }

    Py_BEGIN_ALLOW_THREADS bad =
        decode_all(&data, offset.buf, caplen.buf, linktype.buf, out.buf, n, &layout, key_vlan);
    Py_END_ALLOW_THREADS if (bad >= 0)
    {
        PyErr_Format(PyExc_ValueError,
                     "packet %zd: offset %lld + caplen %u runs past the end of data (%zd bytes); "
                     "the batch's offset/caplen arrays do not match its buffer",
                     bad, (long long)((int64_t *)offset.buf)[bad], ((uint32_t *)caplen.buf)[bad],
                     data.len);
        goto cleanup;
    }
    result = Py_NewRef(Py_None);

cleanup:
    Py_XDECREF(dtype);
    PyBuffer_Release(&out);
    PyBuffer_Release(&linktype);
    PyBuffer_Release(&caplen);
    PyBuffer_Release(&offset);
    PyBuffer_Release(&data);
    return result;
}

PyDoc_STRVAR(decode_batch_doc,
             "decode_batch(data, offset, caplen, linktype, out, key_vlan=False)\n--\n\n"
             "Decode packet i = data[offset[i]:offset[i] + caplen[i]] of link type\n"
             "linktype[i] into out[i] (dtype fpc.decode.DECODED), for every i.\n"
             "With key_vlan, the session key holds the outer two VLAN ids.");

PyDoc_STRVAR(pack_records_doc,
             "pack_records(data, offset, caplen, wirelen, ts_ns, precision)\n--\n\n"
             "Return classic-pcap records (16-byte little-endian header, then the\n"
             "packet bytes) for every packet, timestamps in microseconds\n"
             "(precision 6) or nanoseconds (precision 9).");

PyDoc_STRVAR(scan_pcap_doc,
             "scan_pcap(data, pos, end, max_bytes, max_caplen, swap, offset, sec, frac,\n"
             "          caplen, wirelen)\n--\n\n"
             "Walk the whole classic-pcap records of data[pos:end], at most len(offset)\n"
             "and about max_bytes; fill the arrays with each record's start and header\n"
             "fields (byte-swapped if swap). Return (count, next pos, caplen above\n"
             "max_caplen that stopped the walk or -1).");

static PyMethodDef fastpath_methods[] = {
    {"decode_batch", decode_batch, METH_VARARGS, decode_batch_doc},
    {"pack_records", fpc_records_pack, METH_VARARGS, pack_records_doc},
    {"scan_pcap", fpc_scan_pcap, METH_VARARGS, scan_pcap_doc},
    {NULL, NULL, 0, NULL},
};

static int
fastpath_exec(PyObject *module)
{
    if (fpc_session_type_register(module) < 0) {
        return -1;
    }
    if (fpc_ring_type_register(module) < 0) {
        return -1;
    }
    return fpc_capture_type_register(module);
}

static PyModuleDef_Slot fastpath_slots[] = {
    {Py_mod_exec, fastpath_exec},
#if PY_VERSION_HEX >= 0x030C0000
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
    {0, NULL},
};

static int
fastpath_traverse(PyObject *module, visitproc visit, void *arg)
{
    FpcLayoutCache *cache = PyModule_GetState(module);

    Py_VISIT(cache->dtype);
    Py_VISIT(cache->names);
    return 0;
}

static int
fastpath_clear(PyObject *module)
{
    fpc_layout_forget(PyModule_GetState(module));
    return 0;
}

static void
fastpath_free(void *module)
{
    fpc_layout_forget(PyModule_GetState(module));
}

static struct PyModuleDef fastpath_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "fpc._fastpath",
    .m_doc = "C batch decoder and PCAP record packer of fpc.",
    .m_size = sizeof(FpcLayoutCache),
    .m_methods = fastpath_methods,
    .m_slots = fastpath_slots,
    .m_traverse = fastpath_traverse,
    .m_clear = fastpath_clear,
    .m_free = fastpath_free,
};

PyMODINIT_FUNC
PyInit__fastpath(void)
{
    return PyModuleDef_Init(&fastpath_module);
}
