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
