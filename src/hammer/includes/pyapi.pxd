# The CPython C API the Python-hammer driver (core/hits.pxi) uses beyond Cython's own
# declarations: stepping a coroutine without raising StopIteration, and contexts.

from cpython.ref cimport PyObject


cdef extern from "Python.h":
    # PYGEN_ERROR (-1, the exception set), PYGEN_RETURN (0), PYGEN_NEXT (1: it yielded)
    int PyIter_Send(object iter, object arg, PyObject **presult) except -1
    object PyContext_CopyCurrent()
    int PyContext_Enter(object ctx) except -1
    int PyContext_Exit(object ctx) except -1
