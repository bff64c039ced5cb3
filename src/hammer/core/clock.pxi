# Time in the core: int64 nanoseconds of CLOCK_MONOTONIC, never wall clock, never floats.

cdef inline int64_t clock_ns() noexcept nogil:
    return hm_now_ns()


cdef inline void sleep_ns(int64_t ns) noexcept nogil:
    cdef timespec ts
    if ns <= 0:
        return
    ts.tv_sec = <long>(ns // 1000000000)
    ts.tv_nsec = <long>(ns % 1000000000)
    nanosleep(&ts, NULL)


def monotonic_ns() -> int:
    """The core's clock (CLOCK_MONOTONIC, ns): the same clock as time.monotonic_ns()."""
    return clock_ns()


def bench_clock(int64_t count) -> float:
    """Nanoseconds per clock read in the core (for `hammer limits`)."""
    cdef int64_t i, t0, t1, sink = 0
    with nogil:
        t0 = clock_ns()
        for i in range(count):
            sink += clock_ns()
        t1 = clock_ns()
    return (t1 - t0) / count if sink else 0.0
