# cython: language_level=3
"""hammer's core: pacing, raw HTTP/1.1 on non-blocking sockets, response framing,
HdrHistogram-layout histograms and SPSC result rings. Each worker runs without the GIL.

Built from textual parts (core/*.pxi) so calls between them stay plain C calls. Every
tunable is in core/consts.pxi; all foreign C is declared in includes/: system.pxd (libc
and Linux), openssl.pxd (libssl, libcrypto), pyapi.pxd (the CPython calls Python hammers'
hits need) and hammer_c.h (atomics, 128-bit muldiv).
"""

from libc.stdint cimport int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free, malloc, realloc
from libc.string cimport memchr, memcmp, memcpy, memmove, memset

from hammer.includes.openssl cimport *
from hammer.includes.system cimport *
from cpython.ref cimport PyObject, Py_XDECREF
from hammer.includes.pyapi cimport PyContext_CopyCurrent, PyContext_Enter, PyContext_Exit
from hammer.includes.pyapi cimport PyIter_Send

include "core/consts.pxi"
include "core/clock.pxi"
include "core/pacer.pxi"
include "core/timer.pxi"
include "core/hist.pxi"
include "core/ring.pxi"
include "core/framing.pxi"
include "core/proto.pxi"
include "core/tls.pxi"
include "core/http.pxi"
include "core/mqtt.pxi"
include "core/conn.pxi"
include "core/sched.pxi"
include "core/aggregator.pxi"
include "core/engine.pxi"
include "core/hits.pxi"
