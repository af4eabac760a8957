/*
 * Argument checking for the numpy arrays passed to fpc._fastpath.
 *
 * Holds the GIL. Uses only the buffer protocol, so the module needs no numpy
 * C API; the buffers stay owned by the caller's arrays, and the views taken
 * here keep them alive until released.
 */
#include "fastpath.h" /* Python.h first, as CPython requires */

#include <string.h>

/* Struct code of a buffer format, without a native byte-order prefix; NULL if foreign. */
static const char *
native_code(const char *format)
{
    if (format == NULL) {
        return "B";
    }
    if (format[0] == '@' || format[0] == '=') {
        format++;
    }
#if PY_LITTLE_ENDIAN
    else if (format[0] == '<') {
        format++;
    }
#else
    else if (format[0] == '>' || format[0] == '!') {
        format++;
    }
#endif
    return strlen(format) == 1 ? format : NULL;
}

int
fpc_array_get(PyObject *obj, const char *what, const char *codes, Py_ssize_t itemsize, Py_ssize_t n,
              Py_buffer *view)
{
    const char *code;

    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        PyErr_Format(PyExc_ValueError,
                     "%s must be a C-contiguous numpy array, got %.100s; "
                     "pass np.ascontiguousarray(...)",
                     what, Py_TYPE(obj)->tp_name);
        return -1;
    }
    code = native_code(view->format);
    if (view->ndim != 1 || view->itemsize != itemsize || code == NULL ||
        strchr(codes, code[0]) == NULL) {
        PyErr_Format(PyExc_ValueError,
                     "%s has format '%s', %d dimension(s), itemsize %zd; expected a 1-D "
                     "native-endian array with itemsize %zd (struct code one of '%s')",
                     what, view->format ? view->format : "B", view->ndim, view->itemsize, itemsize,
                     codes);
        PyBuffer_Release(view);
        return -1;
    }
    if (n >= 0 && view->shape[0] != n) {
        PyErr_Format(PyExc_ValueError, "%s has %zd items but offset has %zd; pass one per packet",
                     what, view->shape[0], n);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}
