/*
 * The contract between FpcDecoded and the numpy dtype fpc.decode.DECODED.
 *
 * fpc_layout_check holds the GIL and reads the dtype through its Python
 * attributes (no numpy C API); it fails with a ValueError naming the first
 * field whose name, kind, size or byte order differs, so the two layouts
 * cannot drift apart silently. fpc_layout_write needs no GIL: it copies each
 * field to the offset the dtype gave.
 */
#include "fastpath.h" /* Python.h first, as CPython requires */

#include <stddef.h>
#include <string.h>

typedef struct {
    const char *name;
    char kind;        /* numpy kind of one element: 'u' unsigned, 'S' bytes */
    Py_ssize_t size;  /* bytes of one element */
    Py_ssize_t count; /* elements (2 for vlan) */
    size_t c_offset;  /* offsetof in FpcDecoded */
} FpcFieldSpec;

#define FIELD(name, kind, size, count) {#name, kind, size, count, offsetof(FpcDecoded, name)}

static const FpcFieldSpec FIELDS[FPC_LAYOUT_FIELDS] = {
    FIELD(status, 'u', 1, 1),    FIELD(ip_version, 'u', 1, 1),     FIELD(proto, 'u', 1, 1),
    FIELD(tcp_flags, 'u', 1, 1), FIELD(frag, 'u', 1, 1),           FIELD(ttl, 'u', 1, 1),
    FIELD(reverse, 'u', 1, 1),   FIELD(vlan_count, 'u', 1, 1),     FIELD(vlan, 'u', 2, 2),
    FIELD(ethertype, 'u', 2, 1), FIELD(sport, 'u', 2, 1),          FIELD(dport, 'u', 2, 1),
    FIELD(icmp_type, 'u', 1, 1), FIELD(icmp_code, 'u', 1, 1),      FIELD(tunnel, 'u', 2, 1),
    FIELD(l3_offset, 'u', 2, 1), FIELD(payload_offset, 'u', 2, 1), FIELD(payload_len, 'u', 4, 1),
    FIELD(ip_id, 'u', 4, 1),     FIELD(frag_offset, 'u', 2, 1),    FIELD(seq, 'u', 4, 1),
    FIELD(ack, 'u', 4, 1),       FIELD(src, 'S', 16, 1),           FIELD(dst, 'S', 16, 1),
    FIELD(src_mac, 'S', 6, 1),   FIELD(dst_mac, 'S', 6, 1),        FIELD(key, 'S', FPC_KEY_LEN, 1),
    FIELD(hash, 'u', 4, 1),
};

/* Reads an integer attribute; -1 with an exception set on failure. */
static Py_ssize_t
get_size_attr(PyObject *obj, const char *attr)
{
    PyObject *v = PyObject_GetAttrString(obj, attr);
    Py_ssize_t n;

    if (v == NULL) {
        return -1;
    }
    n = PyLong_AsSsize_t(v);
    Py_DECREF(v);
    return n;
}

/* Whether one-character string attribute `attr` of obj is in `allowed`; -1 on error. */
static int
char_attr_in(PyObject *obj, const char *attr, const char *allowed)
{
    PyObject *v = PyObject_GetAttrString(obj, attr);
    const char *s;
    int ok;

    if (v == NULL) {
        return -1;
    }
    s = PyUnicode_AsUTF8(v);
    ok = s != NULL && strlen(s) == 1 && strchr(allowed, s[0]) != NULL;
    Py_DECREF(v);
    return s == NULL ? -1 : ok;
}

/* Checks one field's entry (dtype, offset) from dtype.fields; returns its offset or -1. */
static Py_ssize_t
check_field(PyObject *fields, const FpcFieldSpec *spec, Py_ssize_t itemsize)
{
    PyObject *entry = NULL, *base = NULL;
    Py_ssize_t offset = -1, elem, total;
    char kind[2] = {spec->kind, 0};

    entry = PyMapping_GetItemString(fields, spec->name);
    if (entry == NULL || !PyTuple_Check(entry) || PyTuple_GET_SIZE(entry) < 2) {
        PyErr_Format(PyExc_ValueError,
                     "DECODED dtype has no field '%s'; rebuild fpc._fastpath against "
                     "fpc/decode.py",
                     spec->name);
        goto cleanup;
    }
    base = PyObject_GetAttrString(PyTuple_GET_ITEM(entry, 0), "base");
    if (base == NULL) {
        goto cleanup;
    }
    elem = get_size_attr(base, "itemsize");
    total = get_size_attr(PyTuple_GET_ITEM(entry, 0), "itemsize");
    offset = PyLong_AsSsize_t(PyTuple_GET_ITEM(entry, 1));
    if (PyErr_Occurred()) {
        offset = -1;
        goto cleanup;
    }
    if (elem != spec->size || total != spec->size * spec->count || offset < 0 ||
        offset + total > itemsize || char_attr_in(base, "kind", kind) != 1 ||
        char_attr_in(base, "byteorder", "=|") != 1) {
        PyErr_Format(PyExc_ValueError,
                     "DECODED field '%s' at offset %zd has itemsize %zd x %zd; the C decoder "
                     "expects native kind '%c' of %zd x %zd bytes: keep fpc/decode.py and "
                     "csrc/layout.c in step",
                     spec->name, offset, elem, elem > 0 ? total / elem : 0, spec->kind, spec->size,
                     spec->count);
        offset = -1;
    }

cleanup:
    Py_XDECREF(base);
    Py_XDECREF(entry);
    return offset;
}

int
fpc_layout_check(PyObject *dtype, FpcLayout *layout)
{
    PyObject *fields = PyObject_GetAttrString(dtype, "fields");
    int rc = -1;
    int i;

    if (fields == NULL || fields == Py_None) {
        PyErr_SetString(PyExc_ValueError, "out must have the structured dtype fpc.decode.DECODED; "
                                          "create it with np.zeros(n, dtype=DECODED)");
        goto cleanup;
    }
    if (PyObject_Length(fields) != FPC_LAYOUT_FIELDS) {
        PyErr_Format(PyExc_ValueError,
                     "DECODED dtype has %zd fields, the C decoder fills %d: keep "
                     "fpc/decode.py and csrc/layout.c in step",
                     PyObject_Length(fields), FPC_LAYOUT_FIELDS);
        goto cleanup;
    }
    layout->itemsize = get_size_attr(dtype, "itemsize");
    if (layout->itemsize < 0) {
        goto cleanup;
    }
    for (i = 0; i < FPC_LAYOUT_FIELDS; i++) {
        layout->offset[i] = check_field(fields, &FIELDS[i], layout->itemsize);
        if (layout->offset[i] < 0) {
            goto cleanup;
        }
    }
    rc = 0;

cleanup:
    Py_XDECREF(fields);
    return rc;
}

int
fpc_layout_get(FpcLayoutCache *cache, PyObject *dtype, FpcLayout *layout)
{
    PyObject *names = PyObject_GetAttrString(dtype, "names");

    if (names == NULL) {
        PyErr_Clear();
    } else if (cache->dtype == dtype && cache->names == names) {
        *layout = cache->layout;
        Py_DECREF(names);
        return 0;
    }
    if (fpc_layout_check(dtype, layout) < 0) {
        Py_XDECREF(names);
        return -1;
    }
    fpc_layout_forget(cache);
    cache->dtype = Py_NewRef(dtype);
    cache->names = names; /* the new reference from GetAttr moves into the cache */
    cache->layout = *layout;
    return 0;
}

void
fpc_layout_forget(FpcLayoutCache *cache)
{
    Py_CLEAR(cache->dtype);
    Py_CLEAR(cache->names);
}

/* Copies with a size known at compile time, so each becomes a plain load and store. */
static inline void
copy_field(char *dst, const char *src, Py_ssize_t n)
{
    switch (n) {
    case 1:
        memcpy(dst, src, 1);
        break;
    case 2:
        memcpy(dst, src, 2);
        break;
    case 4:
        memcpy(dst, src, 4);
        break;
    case 16:
        memcpy(dst, src, 16);
        break;
    default:
        memcpy(dst, src, (size_t)n);
        break;
    }
}

void
fpc_layout_write(char *dst, const FpcDecoded *dec, const FpcLayout *layout)
{
    const char *src = (const char *)dec;
    int i;

    for (i = 0; i < FPC_LAYOUT_FIELDS; i++) {
        copy_field(dst + layout->offset[i], src + FIELDS[i].c_offset,
                   FIELDS[i].size * FIELDS[i].count);
    }
}
