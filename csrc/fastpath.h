/*
 * Declarations shared by the Python-facing files of fpc._fastpath
 * (fastpath.c, array.c, layout.c, records.c, scan.c, session_type.c). These functions hold the GIL
 * unless their comment says otherwise.
 */
#ifndef FPC_FASTPATH_H
#define FPC_FASTPATH_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "decode.h"
#include "ring.h"

#define FPC_LAYOUT_FIELDS 28

/* Where each FpcDecoded field goes in one row of the caller's DECODED array. */
typedef struct {
    Py_ssize_t itemsize;
    Py_ssize_t offset[FPC_LAYOUT_FIELDS];
} FpcLayout;

/* The last dtype whose layout was checked (strong references), so that a
 * call with the same dtype skips the check. Lives in the module state. */
typedef struct {
    PyObject *dtype;
    PyObject *names; /* dtype.names when checked: renaming fields replaces it */
    FpcLayout layout;
} FpcLayoutCache;

/*
 * array.c: gets a 1-D C-contiguous buffer of `obj` whose items are `itemsize`
 * bytes with a struct code from `codes`, of length n (n < 0: any length).
 * On error sets ValueError naming `what` and returns -1; on success the
 * caller releases `view` with PyBuffer_Release.
 */
int fpc_array_get(PyObject *obj, const char *what, const char *codes, Py_ssize_t itemsize,
                  Py_ssize_t n, Py_buffer *view);

/* layout.c: checks `dtype` against FpcDecoded and fills `layout`; -1 and ValueError if they differ.
 */
int fpc_layout_check(PyObject *dtype, FpcLayout *layout);
/* layout.c: fpc_layout_check through `cache`; -1 and ValueError if they differ. */
int fpc_layout_get(FpcLayoutCache *cache, PyObject *dtype, FpcLayout *layout);
/* layout.c: drops the references held by `cache`. */
void fpc_layout_forget(FpcLayoutCache *cache);
/* layout.c: copies `dec` into the row at `dst`; GIL not needed. */
void fpc_layout_write(char *dst, const FpcDecoded *dec, const FpcLayout *layout);

/* records.c: _fastpath.pack_records; returns a new reference. */
PyObject *fpc_records_pack(PyObject *module, PyObject *args);

/* scan.c: _fastpath.scan_pcap; returns a new reference. */
PyObject *fpc_scan_pcap(PyObject *module, PyObject *args);

/* session_type.c: adds the SessionTable type to the module; -1 with an exception on failure. */
int fpc_session_type_register(PyObject *module);

/* ring.c: adds the Ring type to the module; -1 with an exception on failure. */
int fpc_ring_type_register(PyObject *module);
/*
 * ring.c: copies the view of the Ring object `obj` into `ring`; -1 and TypeError
 * if `obj` is not a Ring. The caller keeps a reference to `obj` while it uses
 * the view, and is the ring's only producer meanwhile.
 */
int fpc_ring_borrow(PyObject *obj, FpcRing *ring);

/* capture.c: adds the Capture type and the PACKET_FANOUT_* constants to the module. */
int fpc_capture_type_register(PyObject *module);

#endif /* FPC_FASTPATH_H */
