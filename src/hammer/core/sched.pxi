# A worker: one thread, one epoll loop, its own connections, pacer and result ring; it
# decides when each request goes (open-loop slots or closed-loop turns), times requests
# out and runs the loop. Protocol-independent: what a request is comes from the
# protocol's hooks (proto.pxi). Runs entirely without the GIL; nothing here allocates or
# formats per request.

cdef enum:  # stop levels, set by the control plane
    STOP_NONE = 0
    STOP_SCHEDULING = 1   # schedule no more; let in-flight requests finish
    STOP_NOW = 2          # cancel what is in flight and leave


cdef struct Worker:
    # configuration (read-only once running)
    uint8_t open_loop
    uint8_t batch_sched          # run as SCHED_BATCH (closed loop, threads sharing CPUs)
    int64_t first_slot           # this worker sends slots first_slot + k * slot_stride
    int64_t slot_stride
    int64_t n_local_slots
    Pacer pacer
    int64_t duration_ns          # -1: the load phase ends when the slots or budget run out
    int64_t timeout_ns
    int64_t spin_ns              # poll without sleeping this long before each slot
    int64_t quantum_ns           # a timer wake for slots at most this often (0: one per slot)
    uint8_t defer_reads          # read at timer wakes, timed by the kernel's receive stamps
    uint8_t no_preconnect        # every request opens its own connection (a connection
                                 # storm): none is opened before the schedule starts
    int64_t request_budget       # closed loop: requests this worker may start (-1: no cap)
    int64_t connect_timeout_ns
    ProtoHooks proto_hooks       # the protocol's functions (HTTP_HOOKS)
    ProtoWorker proto            # the protocol's settings and state
    TlsClient tls                # TLS settings, session cache and counters (ctx NULL: none)
    sockaddr_storage addr
    socklen_t addrlen
    int32_t family
    Hist connect_hist            # TCP connect times, ns
    int32_t n_conns              # the pool's connections
    int32_t n_service            # then the protocol's own (conns[n_conns:]; MQTT --e2e)
    uint64_t *stop_level
    uint64_t *go_flag            # 0 until the engine sets start_ns
    # run state
    int64_t start_ns
    int64_t end_ns
    int64_t next_local_slot      # k of the next slot to dispatch: first_slot + k * stride
    uint8_t starved              # a due slot is waiting for a connection
    uint8_t scheduling           # the load phase is on
    int64_t inflight
    int64_t started              # closed loop: requests started
    int32_t idle_head
    int32_t idle_tail            # the idle list's last (push_idle_back), -1 when empty
    int32_t *flush_list          # connections whose protocol flushes at the pass's end
    int32_t n_flush
    int32_t unopened_head        # connections without a socket (never opened, or closed)
    int epfd
    int wake_fd                  # the engine's eventfd: wakes the control loop to drain
    Conn *conns
    char *rbuf
    Ring ring
    int64_t next_sweep_ns
    int64_t sweep_interval_ns
    int64_t reconnect_at_ns
    int64_t last_timer_wake_ns   # when the loop last woke by its timer (not by a socket)
    int64_t realtime_offset_ns   # CLOCK_REALTIME - CLOCK_MONOTONIC, read at each wake
    int64_t linger_until_ns      # after the last request: the protocol's next look (0: none)
    # published counters (relaxed atomics: read live by the control plane)
    uint64_t scheduled
    uint64_t unsent
    uint64_t bytes_out
    uint64_t bytes_in
    uint64_t ring_full_waits
    uint64_t load_end_ns
    uint64_t batch_sched_on      # set once the thread runs as SCHED_BATCH
    uint64_t ready
    uint64_t finished


cdef inline void push_result(Worker *w, const Result *res) noexcept nogil:
    """Hand a result to the aggregator; waits (never drops) if the ring is full."""
    while not ring_push(&w.ring, res):
        counter_add(&w.ring_full_waits, 1)
        sleep_ns(RING_FULL_BACKOFF_NS)
    if (w.ring.head & (w.ring.mask >> 2)) == 0:
        # a quarter of the ring filled since the last call: have it drained now, not at
        # the control loop's next timed wake (which may be too far off at high rates)
        eventfd_write(w.wake_fd, 1)


cdef inline void emit_held(Worker *w, int64_t intended_ns, int64_t write_ns, uint8_t late,
                           uint32_t target, int32_t status, uint8_t error,
                           int64_t now, uint8_t flags=0) noexcept nogil:
    """Hand one request's outcome to the aggregator. A request a protocol held after its
    write (MQTT --inflight) has left its connection: its stamps come from the protocol."""
    cdef Result res
    res.intended_ns = intended_ns
    res.write_ns = write_ns
    res.done_ns = now
    res.status = <int16_t>status
    res.error = error
    res.flags = flags | (RF_LATE if late else 0)
    res.target = target
    push_result(w, &res)
    w.inflight -= 1


cdef inline void emit_result(Worker *w, Conn *c, int32_t status, uint8_t error,
                             int64_t now) noexcept nogil:
    """The outcome of the request on c."""
    emit_held(w, c.intended_ns, c.write_ns, c.late, c.target, status, error, now)
    c.has_request = 0


cdef inline void assign_request(Worker *w, Conn *c, int64_t intended_ns, uint8_t late,
                                int64_t seq) noexcept nogil:
    """Give request number `seq` (the slot, or the worker's count in closed loop) to c."""
    c.has_request = 1
    c.intended_ns = intended_ns
    c.write_ns = 0
    c.wpos = 0
    c.late = late
    w.proto_hooks.prepare(w, c, seq)
    w.inflight += 1


cdef void dispatch_open(Worker *w, int64_t now) noexcept nogil:
    """Open loop: hand every due slot to a connection; slots with none wait (late)."""
    cdef int64_t intended, slot
    cdef Conn *c
    cdef uint8_t late
    while w.scheduling and w.next_local_slot < w.n_local_slots:
        slot = w.first_slot + w.next_local_slot * w.slot_stride
        intended = pacer_intended_ns(&w.pacer, slot)
        if intended > now:
            w.starved = 0
            return
        if now - intended >= w.timeout_ns:
            # its deadline passed while it waited for a connection: never sent
            w.next_local_slot += 1
            counter_add(&w.scheduled, 1)
            counter_add(&w.unsent, 1)
            continue
        c = pop_idle(w)
        if c == NULL:
            c = pop_unopened(w)  # open a new connection for it
        if c == NULL:
            w.starved = 1  # every connection is busy or connecting: wait for one (late)
            return
        late = w.starved
        counter_add(&w.scheduled, 1)
        assign_request(w, c, intended, late, slot)
        w.next_local_slot += 1
        if c.state == CS_CLOSED:
            conn_connect(w, c, now)
        else:
            conn_send(w, c)
    w.starved = 0


cdef void closed_loop_next(Worker *w, Conn *c, int64_t now) noexcept nogil:
    """Closed loop: the next request on this connection, if the run still wants one."""
    if not w.scheduling:
        return
    if w.request_budget >= 0 and w.started >= w.request_budget:
        return
    # `now` is when this batch of events began: near the end, read the clock, so that no
    # request goes out after the load phase (its second would be past the last)
    if now >= w.end_ns - END_GUARD_NS and clock_ns() >= w.end_ns:
        return
    w.started += 1
    counter_add(&w.scheduled, 1)
    assign_request(w, c, 0, 0, w.started - 1)
    if c.state == CS_CLOSED:
        conn_connect(w, c, now)
        return
    conn_send(w, c)


cdef void on_idle(Worker *w, Conn *c, int64_t now) noexcept nogil:
    """c has just become free (connected, or its response completed)."""
    if w.open_loop:
        push_idle(w, c)
        if w.starved:
            dispatch_open(w, now)
    else:
        closed_loop_next(w, c, now)
        if not c.has_request and c.state == CS_IDLE:
            push_idle(w, c)


cdef void closed_loop_reopen(Worker *w, int64_t now) noexcept nogil:
    """Closed loop: every unopened connection starts its next request on a new socket.
    After a connect error, wait until reconnect_at_ns so a dead server is not spun on."""
    cdef int32_t tries = w.n_conns
    cdef Conn *c
    while tries > 0 and w.scheduling and w.unopened_head >= 0 and now >= w.reconnect_at_ns:
        if w.request_budget >= 0 and w.started >= w.request_budget:
            return
        c = pop_unopened(w)
        closed_loop_next(w, c, now)
        tries -= 1


cdef void sweep_timeouts(Worker *w, int64_t now) noexcept nogil:
    """Time out requests and connects past their deadline; expire waiting slots."""
    cdef int32_t i
    cdef Conn *c
    for i in range(w.n_conns + w.n_service):
        c = &w.conns[i]
        if (c.has_request or c.held) and now >= c.deadline_ns:
            if conn_setting_up(c):
                conn_fail(w, c, ERR_CONNECT_TIMEOUT, now)
            else:
                conn_fail(w, c, ERR_TIMEOUT, now)
        elif conn_setting_up(c) and not c.has_request and now >= c.deadline_ns:
            conn_close(w, c)
        elif c.state == CS_AWAIT_FIN and now >= c.deadline_ns:
            conn_close(w, c)  # the server never closed: close from our side
        elif (w.proto_hooks.idle_tick != NULL and c.session_open
              and (c.state == CS_IDLE or c.held or c.service)):
            w.proto_hooks.idle_tick(w, c, now)
    if w.open_loop and w.starved:
        dispatch_open(w, now)


cdef void end_load_phase(Worker *w, int64_t now) noexcept nogil:
    """Stop scheduling: slots already due but never handed out are unsent."""
    cdef int64_t intended
    if not w.scheduling:
        return
    w.scheduling = 0
    # a wake-up that came late does not lengthen the load phase past its planned end
    hm_store_relaxed(&w.load_end_ns, <uint64_t>(now if now < w.end_ns else w.end_ns))
    if w.open_loop:
        while w.next_local_slot < w.n_local_slots:
            intended = pacer_intended_ns(
                &w.pacer, w.first_slot + w.next_local_slot * w.slot_stride)
            if intended > now:
                break
            w.next_local_slot += 1
            counter_add(&w.scheduled, 1)
            counter_add(&w.unsent, 1)


cdef void cancel_all(Worker *w, int64_t now) noexcept nogil:
    cdef int32_t i
    for i in range(w.n_conns):
        if w.conns[i].has_request or w.conns[i].held:
            conn_fail(w, &w.conns[i], ERR_CANCELLED, now)


cdef int64_t next_wake_ns(Worker *w, int64_t now) noexcept nogil:
    """When the loop must next wake. A timer wake for a slot comes at most once per
    quantum_ns (a wake costs ~20 us of CPU here): it then sends every slot due by then,
    each measured from its own intended time; a socket wake in between sends what is due
    too. With spin_ns, a slot wake comes spin_ns early and the loop polls until the slot
    is due (waking from a sleep can be late by more than the period on an idle CPU)."""
    cdef int64_t wake = w.next_sweep_ns
    cdef int64_t t
    if w.linger_until_ns and w.linger_until_ns < wake:
        wake = w.linger_until_ns
    if w.scheduling:
        if w.end_ns < wake:
            wake = w.end_ns
        if w.open_loop and not w.starved and w.next_local_slot < w.n_local_slots:
            t = pacer_intended_ns(
                &w.pacer, w.first_slot + w.next_local_slot * w.slot_stride) - w.spin_ns
            if t < w.last_timer_wake_ns + w.quantum_ns:
                t = w.last_timer_wake_ns + w.quantum_ns
            if t < wake:
                wake = t
        elif (not w.open_loop and w.unopened_head >= 0 and w.reconnect_at_ns < wake
                and (w.request_budget < 0 or w.started < w.request_budget)):
            wake = w.reconnect_at_ns
    return wake


cdef inline void set_timespec(timespec *ts, int64_t ns) noexcept nogil:
    ts.tv_sec = <long>(ns // 1000000000)
    ts.tv_nsec = <long>(ns % 1000000000)


cdef void worker_connect_all(Worker *w) noexcept nogil:
    """Open every connection before the schedule starts; wait up to the timeout."""
    cdef int32_t i
    cdef int n, k
    cdef int64_t now = clock_ns(), deadline = now + w.timeout_ns
    cdef epoll_event events[MAX_EVENTS]
    cdef timespec ts
    cdef int connecting = 0
    cdef Conn *c
    w.unopened_head = -1
    w.idle_head = -1
    w.idle_tail = -1
    for i in range(w.n_conns - 1, -1, -1):
        w.conns[i].fd = -1
        w.conns[i].state = CS_CLOSED
        w.conns[i].next_free = w.unopened_head
        w.unopened_head = i
    for i in range(w.n_conns, w.n_conns + w.n_service):
        w.conns[i].fd = -1
        w.conns[i].state = CS_CLOSED
        w.conns[i].service = 1
    if w.no_preconnect:
        return
    for i in range(w.n_conns):
        c = pop_unopened(w)
        conn_connect(w, c, now)
        if conn_setting_up(c):
            connecting += 1
    for i in range(w.n_conns, w.n_conns + w.n_service):
        conn_connect(w, &w.conns[i], now)
        if conn_setting_up(&w.conns[i]):
            connecting += 1
    set_timespec(&ts, CONNECT_POLL_NS)
    while connecting > 0 and now < deadline and hm_load_relaxed(w.stop_level) == STOP_NONE:
        n = epoll_pwait2(w.epfd, events, MAX_EVENTS, &ts, NULL)
        now = clock_ns()
        for k in range(n):
            c = &w.conns[<uint32_t>events[k].data.u64]
            if <uint32_t>(events[k].data.u64 >> 32) != c.gen:
                continue
            if c.state == CS_CONNECTING:
                conn_connected(w, c, now)
            elif c.state == CS_HANDSHAKE:
                tls_step(w, c)
            elif c.state == CS_SESSION:
                conn_readable(w, c)
        connecting = 0
        for i in range(w.n_conns + w.n_service):
            if conn_setting_up(&w.conns[i]):
                connecting += 1


cdef void wait_until_start(Worker *w) noexcept nogil:
    """Closed loop: the first requests go at start_ns, not at release (the shards of a
    sharded run agree on that instant ahead); a stop ends the wait."""
    cdef timespec ts
    cdef int64_t now = clock_ns()
    cdef int64_t until
    while now < w.pacer.start_ns and hm_load_relaxed(w.stop_level) == STOP_NONE:
        until = now + START_WAIT_POLL_NS
        set_timespec(&ts, until if until < w.pacer.start_ns else w.pacer.start_ns)
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL)
        now = clock_ns()


cdef bint keeps_lingering(Worker *w, int64_t now) noexcept nogil:
    """The last request is done: does the protocol keep the loop a while (its linger)?"""
    if w.proto_hooks.linger == NULL:
        return False
    w.linger_until_ns = w.proto_hooks.linger(w, now)
    return w.linger_until_ns != 0


cdef bint any_awaiting_fin(Worker *w) noexcept nogil:
    cdef int32_t i
    for i in range(w.n_conns):
        if w.conns[i].state == CS_AWAIT_FIN:
            return True
    return False


cdef void worker_run(Worker *w) noexcept nogil:
    cdef int64_t fin_wait_until
    cdef sched_param sched
    cdef epoll_event events[MAX_EVENTS]
    cdef timespec ts
    cdef int n, k
    cdef int64_t now, wake, wait_ns
    cdef uint64_t stop
    cdef uint32_t ev
    cdef Conn *c
    cdef int32_t i
    prctl(PR_SET_TIMERSLACK, 1, 0, 0, 0)
    if w.batch_sched:
        # workers time-sharing a CPU: a wake-up of one (a response arrived) no longer
        # preempts the other mid-batch; it runs when the other blocks in epoll_wait
        sched.sched_priority = 0
        if sched_setscheduler(0, SCHED_BATCH, &sched) == 0:
            hm_store_relaxed(&w.batch_sched_on, 1)
    worker_connect_all(w)
    hm_store_release(&w.ready, 1)
    while hm_load_acquire(w.go_flag) == 0:
        sched_yield()  # released within microseconds; a sleep could wake milliseconds late
    if not w.open_loop:
        wait_until_start(w)
    now = clock_ns()
    w.start_ns = w.pacer.start_ns
    w.end_ns = w.start_ns + w.duration_ns if w.duration_ns >= 0 else 0x7FFFFFFFFFFFFFFF
    w.scheduling = 1
    w.realtime_offset_ns = hm_realtime_offset_ns()
    # a sweep reads every connection (cache misses at 10,000 of them): sweep as rarely
    # as the timeouts' precision allows
    w.sweep_interval_ns = min(w.timeout_ns, w.connect_timeout_ns) // SWEEP_DIVISOR
    if w.sweep_interval_ns < MIN_SWEEP_INTERVAL_NS:
        w.sweep_interval_ns = MIN_SWEEP_INTERVAL_NS
    elif w.sweep_interval_ns > MAX_SWEEP_INTERVAL_NS:
        w.sweep_interval_ns = MAX_SWEEP_INTERVAL_NS
    w.next_sweep_ns = now + w.sweep_interval_ns
    if hm_load_relaxed(w.stop_level) != STOP_NONE:
        end_load_phase(w, now)
    elif not w.open_loop:
        # closed loop: every connected connection starts its first request now
        i = w.idle_head
        w.idle_head = -1
        w.idle_tail = -1
        while i >= 0:
            c = &w.conns[i]
            i = c.next_free
            c.state = CS_IDLE
            on_idle(w, c, now)
        # connections that failed to open are retried as requests (and counted)
        closed_loop_reopen(w, now)
    while True:
        now = clock_ns()
        stop = hm_load_relaxed(w.stop_level)
        if stop == STOP_NOW:
            end_load_phase(w, now)
            cancel_all(w, now)
            break
        if w.scheduling:
            if stop == STOP_SCHEDULING or now >= w.end_ns:
                if w.open_loop and stop == STOP_NONE:
                    # slots due before the end still go out if a connection is free, even
                    # when this wake-up came late; they are measured from their own time
                    dispatch_open(w, now)
                end_load_phase(w, now)
            elif w.open_loop:
                dispatch_open(w, now)
                if w.next_local_slot >= w.n_local_slots and w.duration_ns < 0:
                    end_load_phase(w, now)
            elif w.request_budget >= 0 and w.started >= w.request_budget and w.duration_ns < 0:
                end_load_phase(w, now)
            elif w.unopened_head >= 0:
                closed_loop_reopen(w, now)
        if now >= w.next_sweep_ns:
            sweep_timeouts(w, now)
            w.next_sweep_ns = now + w.sweep_interval_ns
        if w.n_flush:
            flush_queued(w, clock_ns())  # what this pass staged goes out before the wait
        if not w.scheduling and w.inflight == 0 and not keeps_lingering(w, now):
            break
        wake = next_wake_ns(w, now)
        wait_ns = wake - clock_ns()
        if wait_ns < 0:
            wait_ns = 0
        if w.defer_reads and w.scheduling and not w.starved and 0 < wait_ns <= MAX_DEFER_NS:
            # sleep through response arrivals (a wake costs ~20 us of CPU): at the wake,
            # take every socket that is ready; the kernel's receive stamps time them
            set_timespec(&ts, wake)
            clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL)
            w.last_timer_wake_ns = clock_ns()
            w.realtime_offset_ns = hm_realtime_offset_ns()
            set_timespec(&ts, 0)
            n = epoll_pwait2(w.epfd, events, MAX_EVENTS, &ts, NULL)
        else:
            set_timespec(&ts, wait_ns)
            n = epoll_pwait2(w.epfd, events, MAX_EVENTS, &ts, NULL)
            if n == 0 and wait_ns > 0:
                w.last_timer_wake_ns = clock_ns()
            if w.defer_reads and n > 0:
                w.realtime_offset_ns = hm_realtime_offset_ns()
        if n == 0 and wait_ns == 0 and w.spin_ns > 0:
            # polling ahead of a slot: let other threads on this CPU (the target server,
            # other workers) run meanwhile; the CPU never idles, so it never wakes late
            sched_yield()
        for k in range(n):
            c = &w.conns[<uint32_t>events[k].data.u64]
            if <uint32_t>(events[k].data.u64 >> 32) != c.gen or c.state == CS_CLOSED:
                continue
            ev = events[k].events
            if c.state == CS_CONNECTING:
                conn_connected(w, c, clock_ns())
                continue
            if c.state == CS_HANDSHAKE:
                tls_step(w, c)
                continue
            if ev & (EPOLLIN | EPOLLERR | EPOLLHUP):
                conn_readable(w, c)
                if c.state == CS_CLOSED:
                    continue
            if ev & EPOLLOUT:
                if c.state == CS_BUSY and c.wpos < c.wlen:
                    conn_send(w, c)
                elif w.proto_hooks.flush != NULL:
                    queue_flush(w, c)  # its protocol's partial write can go on
    if w.n_flush:
        flush_queued(w, clock_ns())  # after a stop: what the last answers queued
    # connections that asked the server to close: give its FIN a moment (so it closes
    # first and keeps the TIME_WAIT), then close every socket
    fin_wait_until = clock_ns() + FINAL_FIN_WAIT_NS
    set_timespec(&ts, CONNECT_POLL_NS)
    while any_awaiting_fin(w) and clock_ns() < fin_wait_until:
        n = epoll_pwait2(w.epfd, events, MAX_EVENTS, &ts, NULL)
        for k in range(n):
            c = &w.conns[<uint32_t>events[k].data.u64]
            if <uint32_t>(events[k].data.u64 >> 32) == c.gen and c.state == CS_AWAIT_FIN:
                conn_readable(w, c)
    for i in range(w.n_conns + w.n_service):
        if w.conns[i].fd >= 0:
            if (w.proto_hooks.session_end != NULL and w.conns[i].session_open
                    and (w.conns[i].state == CS_IDLE or w.conns[i].service)):
                w.proto_hooks.session_end(w, &w.conns[i])
            conn_close(w, &w.conns[i])  # frees its TLS state too
    hm_store_release(&w.finished, 1)
    eventfd_write(w.wake_fd, 1)
