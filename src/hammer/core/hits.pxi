# Python hammers' hits, started on the event loop by the driver's worker tasks
# (hammer/hammers/python.py): which slot is next and when it is due (the same pacer as
# the core's workers, through a SlotTimer), and each async hit's first step, run here up
# to its first wait or to its end, timed and recorded without a Task or a Python frame
# of our own. A hit that waits goes back to the worker that started it, which drives it
# to its end; so does any result other than None or an int, and any exception.

HIT_YIELD = "yield"          # HitLoop.run(): many hits in a row: let the loop run


cdef class HitLoop:
    """The slots of a Python hammer's load phase. run() starts what is due (open loop) or
    wanted (closed loop); scheduled, unsent and inflight add up as the core's do."""

    cdef SlotTimer timer
    cdef Aggregator agg
    cdef object hit                    # the hammer's hit (a coroutine function), or a
                                       # wrapper that hands a plain def to a thread pool
    cdef readonly bint open_loop
    cdef public bint scheduling
    cdef public bint starved           # a slot fell due while every in-flight slot was taken
    cdef readonly int64_t n_slots, next_slot, scheduled, unsent, inflight
    cdef readonly int64_t limit, budget, timeout_ns, quantum_ns, end_ns
    cdef int64_t first_slot, stride
    cdef int64_t done_ns               # when the last hit that ended at once ended
    # open loop, set by attach(): the timer's wake runs here (wake()), not in Python
    cdef list idle                     # the driver's parked workers: (task, wake-up)
    cdef object loop, enter_task, leave_task
    cdef object on_step                # driver(task, wake-up, step): a hit that did not end
    cdef object on_busy                # driver(): no parked worker; False: wait a wake
    cdef object on_end                 # driver(now): the load phase is over

    def __init__(self, SlotTimer timer, Aggregator aggregator, object hit, *,
                 bint open_loop, int64_t limit, object budget, int64_t timeout_ns,
                 int64_t quantum_ns):
        self.timer = timer
        self.agg = aggregator
        self.hit = hit
        self.open_loop = open_loop
        self.n_slots = timer.n_slots
        self.first_slot = timer.first_slot
        self.stride = timer.slot_stride
        self.limit = limit
        self.budget = -1 if budget is None else budget
        self.timeout_ns = timeout_ns
        self.quantum_ns = quantum_ns
        self.end_ns = NO_END_NS

    def attach(self, list idle, object loop, object enter_task, object leave_task, *,
               object on_step, object on_busy, object on_end) -> None:
        """Open loop: what wake() needs of the driver (asyncio's _enter_task and
        _leave_task make a parked worker the current Task for the hits it starts)."""
        self.idle = idle
        self.loop = loop
        self.enter_task = enter_task
        self.leave_task = leave_task
        self.on_step = on_step
        self.on_busy = on_busy
        self.on_end = on_end

    def wake(self) -> None:
        """Open loop: the timer's reader callback. Start every due slot, each hit's first
        step under a parked worker made the current Task for it (as asyncio's eager tasks
        do), so that a hit that ends at once costs no Task step. A hit that waits goes to
        its worker (on_step) and the next due slot gets another."""
        cdef object step, task, woken
        cdef int64_t now
        self.timer.clear()
        while self.scheduling:
            if len(self.idle) == 0:
                if not self.on_busy():
                    return            # a new worker first: the due slots wait a wake
                break
            task, woken = self.idle[len(self.idle) - 1]
            self.enter_task(self.loop, task)
            try:
                step = self.run()
            finally:
                self.leave_task(self.loop, task)
            if step is None:
                break
            self.on_step(task, woken, step)
        if not self.scheduling:
            return
        now = clock_ns()
        if self.over(now):
            self.on_end(now)

    def start(self, int64_t start_ns, object duration_ns) -> None:
        """Slot 0 is due at start_ns; the load phase lasts duration_ns (None: until the
        request budget is spent). Arms the timer for the first wake."""
        self.end_ns = NO_END_NS if duration_ns is None else start_ns + duration_ns
        self.timer.start(start_ns)
        self.scheduling = True
        if not self.open_loop:
            self.timer.arm_at(start_ns)       # the first hits start at start_ns
        elif self.n_slots:
            self.timer.arm_at(min(self.timer.intended_ns(0), self.end_ns))
        else:
            self.arm_end()

    cpdef bint over(self, int64_t now):
        """The load phase is over by now: its end passed or, with a request budget alone,
        every slot was started (open loop) or the budget spent and every hit ended
        (closed loop)."""
        if now >= self.end_ns:
            return True
        if self.end_ns != NO_END_NS:
            return False
        if self.open_loop:
            return self.next_slot >= self.n_slots
        return 0 <= self.budget <= self.scheduled and self.inflight == 0

    cpdef void arm_end(self):
        """Arm the timer for the end of the load phase, if it has one."""
        if self.end_ns != NO_END_NS:
            self.timer.arm_at(self.end_ns)

    cpdef object run(self):
        """Start hits, each up to its first wait, until none is due (open loop: the timer
        is then armed for the next) or wanted (closed loop: the request budget, the end).
        None: nothing more now. HIT_YIELD: closed loop, PY_HITS_BEFORE_YIELD hits done in a
        row.
        Otherwise a tuple for the worker: ("wait", slot, intended, start, late, coro,
        awaited, ctx) when a hit waits on `awaited`; ("result", slot, intended, start,
        done, late, value) for a value other than None or an int; ("raised", slot,
        intended, start, done, late, exception)."""
        cdef int64_t now, t, wake, local, batch_end, done_in_a_row = 0
        cdef bint late
        cdef object out
        if not self.open_loop:
            self.done_ns = clock_ns()
            while self.scheduling:
                if self.budget >= 0 and self.scheduled >= self.budget:
                    return None
                if self.inflight >= self.limit or self.done_ns >= self.end_ns:
                    return None
                local = self.next_slot
                self.next_slot += 1
                self.scheduled += 1
                self.inflight += 1
                out = self.first_step(local, 0, False, self.done_ns)
                if out is not None:
                    return out
                done_in_a_row += 1
                if done_in_a_row >= PY_HITS_BEFORE_YIELD:
                    return HIT_YIELD
            return None
        now = clock_ns()
        # one call starts what falls due within a quantum of it: a hammer that cannot keep
        # up still lets the loop run (signals, timeouts, I/O) between batches
        batch_end = now + self.quantum_ns
        while self.scheduling and self.next_slot < self.n_slots:
            t = self.timer.intended_ns(self.next_slot)
            if t > now:
                # a timer wake at most once per quantum: the slots due by then go together
                wake = t if t - now >= self.quantum_ns else now + self.quantum_ns
                self.timer.arm_at(wake if wake < self.end_ns else self.end_ns)
                self.starved = False
                return None
            if now - t >= self.timeout_ns:
                # its deadline passed while it waited for a free slot: never sent
                self.next_slot += 1
                self.scheduled += 1
                self.unsent += 1
                continue
            if self.inflight >= self.limit:
                self.starved = True
                return None
            late = self.starved
            local = self.next_slot
            self.next_slot += 1
            self.scheduled += 1
            self.inflight += 1
            out = self.first_step(local, t, late, now)
            if out is not None:
                return out
            now = self.done_ns                # the clock read that ended that hit
            if now >= batch_end:
                self.timer.arm_at(now)        # the rest from the next wake, at once
                return None
        self.starved = False
        if self.scheduling:
            self.arm_end()
        return None

    cdef object first_step(self, int64_t local, int64_t intended, bint late, int64_t start):
        """start: the clock read just before (the run's, or the one that ended the last hit
        run in a row), so that a hit costs one clock read, at its end."""
        cdef PyObject *sent = NULL
        cdef int state
        cdef int64_t done
        cdef object value, ctx, coro
        cdef int64_t slot = self.first_slot + local * self.stride
        if intended == 0:
            intended = start                  # closed loop: from the hit's start
        ctx = PyContext_CopyCurrent()         # each hit has a context of its own
        PyContext_Enter(ctx)
        try:
            coro = self.hit(slot)
            state = PyIter_Send(coro, None, &sent)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:          # CancelledError too: the worker names it
            return ("raised", slot, intended, start, clock_ns(), late, exc)
        finally:
            PyContext_Exit(ctx)
        value = <object>sent
        Py_XDECREF(sent)
        if state == 1:                        # PYGEN_NEXT: it waits on `value`
            return ("wait", slot, intended, start, late, coro, value, ctx)
        done = clock_ns()
        if value is None:
            self.record(intended, start, done, 0, late, RF_OK)
        elif type(value) is int and -32768 <= value <= 32767:
            self.record(intended, start, done, value, late, 0)
        else:
            return ("result", slot, intended, start, done, late, value)
        self.inflight -= 1
        self.done_ns = done
        return None

    cdef inline void record(self, int64_t intended, int64_t start, int64_t done,
                            int status, bint late, uint8_t flags) noexcept:
        cdef Result r
        r.intended_ns = intended
        r.write_ns = start
        r.done_ns = done
        r.status = <int16_t>status
        r.error = ERR_NONE
        r.flags = flags | (RF_LATE if late else 0)
        r.target = 0
        self.agg.record(&r)

    def arm_next(self) -> None:
        """Open loop, after run() stopped at a hit that waits: arm the timer for the next
        slot (at once if it is due; else as run() would, at most once per quantum) or the
        end, so that the rest is started from the timer."""
        cdef int64_t now, t
        if self.next_slot < self.n_slots:
            now = clock_ns()
            t = self.timer.intended_ns(self.next_slot)
            if now < t < now + self.quantum_ns:
                t = now + self.quantum_ns
            self.timer.arm_at(min(t, self.end_ns))
        else:
            self.arm_end()

    def hit_done(self) -> None:
        """A hit the worker finished (a wait, a result or an exception it recorded)."""
        self.inflight -= 1

    def expire(self, int64_t now) -> None:
        """Open loop, while starved: due slots whose deadline passed become unsent."""
        while self.next_slot < self.n_slots:
            if now - self.timer.intended_ns(self.next_slot) < self.timeout_ns:
                return
            self.next_slot += 1
            self.scheduled += 1
            self.unsent += 1

    def end(self, int64_t now) -> None:
        """Stop scheduling; open loop: slots due by now but never started are unsent."""
        self.scheduling = False
        self.timer.disarm()
        if not self.open_loop:
            return
        while self.next_slot < self.n_slots and self.timer.intended_ns(self.next_slot) <= now:
            self.next_slot += 1
            self.scheduled += 1
            self.unsent += 1
