# The pacer for hammers that run on the event loop (Python hammers): the same schedule
# as the core's workers, and a timerfd armed to an absolute CLOCK_MONOTONIC time, which
# the loop watches like any fd. uvloop's own timers round to 1 ms and can fire early;
# a timerfd wakes the loop at the slot's time, to the nanosecond the kernel allows.

cdef class SlotTimer:
    """Slot k of a schedule is due at intended_ns(k); arm_at() sets the timerfd (fileno())
    to fire at an absolute time; clear() reads it after it fired. In a shard (k of N),
    local slot j is the schedule's first_slot + j * slot_stride (k + jN), and n_slots counts
    local slots."""

    cdef Pacer pacer
    cdef int fd
    cdef readonly int64_t n_slots
    cdef readonly int64_t first_slot
    cdef readonly int64_t slot_stride
    cdef object trace             # keeps a trace's offsets alive

    def __cinit__(self):
        self.fd = -1

    def __init__(self, *, object rate_num=None, object rate_den=1, object profile=None,
                 object poisson_seed=None, object trace=None, int64_t n_slots=0,
                 int64_t shard_index=0, int64_t shard_count=1):
        if shard_count < 1 or not 0 <= shard_index < shard_count:
            raise ValueError(f"shard {shard_index} of {shard_count}")
        memset(&self.pacer, 0, sizeof(Pacer))
        self.trace = trace
        if rate_num is not None or profile is not None or trace is not None:
            pacer_setup(&self.pacer, rate_num, rate_den, profile, poisson_seed, trace)
        self.first_slot = shard_index
        self.slot_stride = shard_count
        self.n_slots = ((n_slots - shard_index + shard_count - 1) // shard_count
                        if n_slots > shard_index else 0)
        self.fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)
        if self.fd < 0:
            raise OSError(errno, "timerfd_create failed")

    def __dealloc__(self):
        if self.fd >= 0:
            close(self.fd)
            self.fd = -1

    def close(self) -> None:
        if self.fd >= 0:
            close(self.fd)
            self.fd = -1

    def fileno(self) -> int:
        return self.fd

    def start(self, int64_t start_ns) -> None:
        """Slot 0 is due at start_ns (CLOCK_MONOTONIC)."""
        self.pacer.start_ns = start_ns

    @property
    def start_ns(self) -> int:
        return self.pacer.start_ns

    cpdef int64_t intended_ns(self, int64_t slot):
        """When local slot `slot` is due (absolute CLOCK_MONOTONIC ns); slots only grow."""
        return pacer_intended_ns(&self.pacer, self.first_slot + slot * self.slot_stride)

    cpdef void arm_at(self, int64_t when_ns):
        """Fire at when_ns (absolute; a time already past fires at once)."""
        cdef itimerspec spec
        memset(&spec, 0, sizeof(spec))
        if when_ns < 1:
            when_ns = 1  # zero would disarm
        spec.it_value.tv_sec = <long>(when_ns // 1000000000)
        spec.it_value.tv_nsec = <long>(when_ns % 1000000000)
        timerfd_settime(self.fd, TFD_TIMER_ABSTIME, &spec, NULL)

    cpdef void disarm(self):
        cdef itimerspec spec
        memset(&spec, 0, sizeof(spec))
        timerfd_settime(self.fd, 0, &spec, NULL)

    cpdef void clear(self):
        cdef uint64_t expirations
        read(self.fd, &expirations, sizeof(expirations))
