# The pacer: a pure function from slot number to intended send time.
# A rate of num/den requests per second gives period = den * 1e9 / num ns, kept as the
# exact fraction period_num / period_den so that slot i lands at
# start + floor(i * period_num / period_den): no accumulated drift, ever.

cdef struct Pacer:
    int64_t start_ns
    int64_t period_num
    int64_t period_den


cdef inline int64_t pacer_intended_ns(const Pacer *p, int64_t slot) noexcept nogil:
    return p.start_ns + hm_muldiv(slot, p.period_num, p.period_den)


def intended_ns(int64_t start_ns, int64_t period_num, int64_t period_den, int64_t slot) -> int:
    """Intended send time of `slot` (exposed for tests against the pure-Python twin)."""
    cdef Pacer p
    p.start_ns = start_ns
    p.period_num = period_num
    p.period_den = period_den
    return pacer_intended_ns(&p, slot)
