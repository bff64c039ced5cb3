# The pacer: a pure function from slot number to intended send time.
#
# Constant rate: a rate of num/den requests per second gives period = den * 1e9 / num ns,
# kept as the exact fraction period_num / period_den so that slot i lands at
# start + floor(i * period_num / period_den): no accumulated drift, ever.
#
# Profile: segments of constant rate, linear ramp or sine. Slot i is due when the
# integral of the rate since the start reaches i: solved in closed form per segment
# (constant, ramp: a quadratic) or by Newton's method (sine, whose integral is monotone).
#
# Poisson: exponential gaps with mean 1/rate from a seeded xorshift64* generator; each
# worker replays the whole sequence and sends its own slots, so the merged stream is the
# same whatever the thread count. hammer.pacer holds the pure-Python twin of all three.

from libc.math cimport cos, log, sin, sqrt

cdef enum:
    PACE_CONSTANT = 0
    PACE_PROFILE = 1
    PACE_POISSON = 2
    PACE_TRACE = 3          # explicit offsets (an access log's timeline)

cdef enum:
    SEG_CONSTANT = 0
    SEG_RAMP = 1
    SEG_SINE = 2


cdef struct Segment:
    int32_t kind
    double start_s          # segment start, seconds since the run's start
    double duration_s
    double count_before     # slots due before this segment (the integral up to start_s)
    double r0               # constant: the rate; ramp: rate at start; sine: mean
    double r1               # ramp: rate at the end; sine: amplitude
    double period_s         # sine: period (phase counts from the run's start)


cdef struct Pacer:
    int64_t start_ns
    int32_t kind
    int64_t period_num      # constant rate: period = period_num / period_den ns
    int64_t period_den
    Segment segments[MAX_SEGMENTS]
    int32_t n_segments
    int32_t cursor          # segment of the last slot asked for (slots only grow)
    double poisson_rate
    uint64_t poisson_rng
    int64_t poisson_slot    # the slot whose time is poisson_t
    double poisson_t
    const int64_t *trace_ns # PACE_TRACE: slot i is due at start + trace_ns[i] (ascending;
    int64_t n_trace         # the owner keeps the array alive)


cdef inline double segment_count(const Segment *g, double tau) noexcept nogil:
    """Slots due within the segment's first tau seconds."""
    cdef double two_pi = 6.283185307179586
    cdef double t0
    if g.kind == SEG_CONSTANT:
        return g.r0 * tau
    if g.kind == SEG_RAMP:
        return g.r0 * tau + (g.r1 - g.r0) * tau * tau / (2.0 * g.duration_s)
    t0 = g.start_s
    return g.r0 * tau - g.r1 * g.period_s / two_pi * (
        cos(two_pi * (t0 + tau) / g.period_s) - cos(two_pi * t0 / g.period_s))


cdef double segment_solve(const Segment *g, double k) noexcept nogil:
    """The tau at which segment_count(g, tau) == k (0 <= k <= the segment's count)."""
    cdef double a, tau, f, rate
    cdef double two_pi = 6.283185307179586
    cdef int i
    if k <= 0.0:
        return 0.0
    if g.kind == SEG_CONSTANT:
        return k / g.r0
    if g.kind == SEG_RAMP:
        a = (g.r1 - g.r0) / (2.0 * g.duration_s)
        if a == 0.0:
            return k / g.r0
        # a tau^2 + r0 tau - k = 0, in the form that stays exact when r0 >> a tau
        return 2.0 * k / (g.r0 + sqrt(g.r0 * g.r0 + 4.0 * a * k))
    # sine: Newton from the constant-rate guess; the count is monotone (mean > amp)
    tau = k / g.r0
    for i in range(60):
        f = segment_count(g, tau) - k
        rate = g.r0 + g.r1 * sin(two_pi * (g.start_s + tau) / g.period_s)
        if rate <= 0.0:
            rate = g.r0
        tau -= f / rate
        if tau < 0.0:
            tau = 0.0
        if f < 1e-9 and f > -1e-9:
            break
    return tau


cdef inline uint64_t rng_next(uint64_t *state) noexcept nogil:
    """xorshift64*: the core's one generator (Poisson gaps, random target order), each
    use with its own state seeded from --seed. The state must not be 0."""
    cdef uint64_t x = state[0]
    x ^= x >> 12
    x ^= x << 25
    x ^= x >> 27
    state[0] = x
    return x * 2685821657736338717ULL


cdef inline double rng_unit(uint64_t *state) noexcept nogil:
    """A double in (0, 1] from the top 53 bits of rng_next."""
    return ((rng_next(state) >> 11) + 1) * (1.0 / 9007199254740992.0)


cdef inline uint64_t rng_below(uint64_t *state, uint64_t n) noexcept nogil:
    """A uniform integer in [0, n) from the high bits (multiply-shift, no division)."""
    return hm_mulhi64(rng_next(state), n)


cdef int64_t pacer_intended_ns(Pacer *p, int64_t slot) noexcept nogil:
    cdef const Segment *g
    cdef double k = <double>slot
    if p.kind == PACE_CONSTANT:
        return p.start_ns + hm_muldiv(slot, p.period_num, p.period_den)
    if p.kind == PACE_TRACE:
        return p.start_ns + (p.trace_ns[slot] if slot < p.n_trace else p.trace_ns[p.n_trace - 1])
    if p.kind == PACE_POISSON:
        # slots are asked for in increasing order (a worker's next_local_slot only grows)
        while p.poisson_slot < slot:
            p.poisson_t += -log(rng_unit(&p.poisson_rng)) / p.poisson_rate
            p.poisson_slot += 1
        return p.start_ns + <int64_t>(p.poisson_t * 1e9)
    while p.cursor + 1 < p.n_segments and p.segments[p.cursor + 1].count_before <= k:
        p.cursor += 1
    while p.cursor > 0 and p.segments[p.cursor].count_before > k:
        p.cursor -= 1
    g = &p.segments[p.cursor]
    return p.start_ns + <int64_t>((g.start_s + segment_solve(g, k - g.count_before)) * 1e9)


cdef int pacer_setup(Pacer *p, object rate_num, object rate_den, object profile,
                     object poisson_seed, object trace=None) except -1:
    """constant (rate_num/rate_den req/s), a profile [(kind, duration_s, r0, r1, period_s)],
    Poisson arrivals at rate_num/rate_den with a seed, or a trace: ascending int64 ns
    offsets (an array('q'), which the caller keeps alive)."""
    cdef const int64_t[::1] offsets
    cdef int32_t i
    cdef double t = 0.0, count = 0.0
    cdef Segment *g
    memset(p, 0, sizeof(Pacer))
    if trace is not None:
        offsets = trace
        if offsets.shape[0] == 0:
            raise ValueError("a trace holds at least one slot")
        p.kind = PACE_TRACE
        p.trace_ns = &offsets[0]
        p.n_trace = offsets.shape[0]
        return 0
    if profile is not None:
        if not 1 <= len(profile) <= MAX_SEGMENTS:
            raise ValueError(f"a rate profile has 1 to {MAX_SEGMENTS} segments")
        p.kind = PACE_PROFILE
        p.n_segments = len(profile)
        for i, (kind, duration_s, r0, r1, period_s) in enumerate(profile):
            g = &p.segments[i]
            g.kind = {"constant": SEG_CONSTANT, "ramp": SEG_RAMP, "sine": SEG_SINE}[kind]
            g.start_s = t
            g.duration_s = duration_s
            g.count_before = count
            g.r0 = r0
            g.r1 = r1
            g.period_s = period_s
            t += duration_s
            count += segment_count(g, duration_s)
        return 0
    if poisson_seed is not None:
        p.kind = PACE_POISSON
        p.poisson_rate = float(rate_num) / float(rate_den)
        p.poisson_rng = (<uint64_t>int(poisson_seed) * 0x9E3779B97F4A7C15ULL) | 1
        return 0
    p.kind = PACE_CONSTANT
    p.period_num = <int64_t>int(rate_den) * 1000000000
    p.period_den = <int64_t>int(rate_num)
    return 0


def intended_ns(int64_t start_ns, int64_t period_num, int64_t period_den, int64_t slot) -> int:
    """Intended send time of `slot` at a constant rate (for tests against the twin)."""
    cdef Pacer p
    memset(&p, 0, sizeof(Pacer))
    p.start_ns = start_ns
    p.period_num = period_num
    p.period_den = period_den
    return pacer_intended_ns(&p, slot)


def schedule_ns(list slots, *, object rate_num=None, object rate_den=1, object profile=None,
                object poisson_seed=None, object trace=None) -> list:
    """Offsets (ns from the start) of the given increasing slots, for tests and reports."""
    cdef Pacer p
    pacer_setup(&p, rate_num, rate_den, profile, poisson_seed, trace)
    return [pacer_intended_ns(&p, s) for s in slots]


def poisson_slots_within(object rate_num, object rate_den, object seed,
                         int64_t duration_ns) -> int:
    """How many Poisson arrivals (the core's generator) fall within duration_ns."""
    cdef Pacer p
    cdef int64_t n = 0
    pacer_setup(&p, rate_num, rate_den, None, seed)
    with nogil:
        while pacer_intended_ns(&p, n) < duration_ns:
            n += 1
    return n
