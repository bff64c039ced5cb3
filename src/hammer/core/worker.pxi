# A worker: one thread, one epoll loop, its own connections, pacer and result ring.
# Runs entirely without the GIL. Nothing here allocates or formats per request.

cdef enum:  # error classes; names in ERROR_NAMES (same order)
    ERR_NONE = 0
    ERR_CONNECT_REFUSED = 1
    ERR_CONNECT_ERROR = 2
    ERR_CONNECT_TIMEOUT = 3
    ERR_TIMEOUT = 4
    ERR_RESET = 5
    ERR_CLOSED_BEFORE_RESPONSE = 6
    ERR_KEEPALIVE_CLOSED = 7
    ERR_TRUNCATED_HEADERS = 8
    ERR_TRUNCATED_BODY = 9
    ERR_PROTOCOL = 10
    ERR_HEADERS_TOO_LARGE = 11
    ERR_SOCKET = 12
    ERR_CANCELLED = 13
    ERR_TLS = 14
    ERR_COUNT = 15

ERROR_NAMES = (
    None, "connect_refused", "connect_error", "connect_timeout", "timeout", "reset",
    "closed_before_response", "keepalive_closed", "truncated_headers", "truncated_body",
    "protocol_error", "headers_too_large", "socket_error", "cancelled", "tls",
)

cdef enum:  # connection states
    CS_CLOSED = 0
    CS_CONNECTING = 1
    CS_IDLE = 2
    CS_BUSY = 3        # a request is being written or its response read
    CS_DRAINING = 4    # after a `Connection: close` exchange: waiting for the server's FIN,
                       # so the server closes first and holds the TIME_WAIT, not us
    CS_HANDSHAKE = 5   # TCP connected, TLS handshake under way

cdef enum:  # stop levels, set by the control plane
    STOP_NONE = 0
    STOP_SCHEDULING = 1   # schedule no more; let in-flight requests finish
    STOP_NOW = 2          # cancel what is in flight and leave


cdef struct Request:
    # one target's pre-serialised request, in two variants: keep-alive, and with
    # `Connection: close` (the last request on a connection)
    const char *keep
    size_t keep_len
    const char *close
    size_t close_len
    int32_t is_head


cdef struct Conn:
    int fd
    int32_t state
    uint32_t gen             # bumps on every (re)open: stale epoll events are ignored
    uint32_t epoll_mask
    int32_t next_free        # link in the idle or closed stack
    uint32_t served          # responses completed on this socket
    int64_t intended_ns
    int64_t write_ns
    int64_t deadline_ns
    size_t wpos
    const char *wreq         # the bytes of the request in flight
    size_t wlen
    uint16_t target
    uint8_t closing          # the request in flight asked the server to close
    uint8_t has_request
    uint8_t late
    uint8_t got_bytes
    Framer fr
    char *carry
    uint32_t carry_len
    uint32_t carry_cap
    SSL *ssl                 # NULL: plain TCP
    uint8_t tls_session_checked  # looked for a resumable session after the first read
    uint8_t tls_failed         # ended in error: do not keep its session
    SSL_SESSION *tls_offered   # the session offered in its handshake (not owned)
    int64_t setup_start_ns     # when the connect, then the TLS handshake, began


cdef struct Worker:
    int32_t index
    # configuration (read-only once running)
    int32_t open_loop
    int64_t first_slot         # this worker sends slots first_slot + k * slot_stride
    int64_t slot_stride
    int64_t n_local_slots
    Pacer pacer
    int64_t duration_ns        # -1: the load phase ends when the slots or budget run out
    int64_t timeout_ns
    int64_t spin_ns            # poll without sleeping this long before each slot
    bint batch_sched           # run as SCHED_BATCH (closed loop, threads sharing CPUs)
    uint64_t batch_sched_on    # set once the thread runs as SCHED_BATCH
    int64_t request_budget     # closed loop: requests this worker may start (-1: no cap)
    int64_t connect_timeout_ns
    int64_t max_per_conn       # requests per connection, then `Connection: close` (0: no cap)
    const Request *requests    # the targets, in order
    int32_t n_targets
    int32_t random_order       # pick targets at random (seeded) instead of round-robin
    uint64_t rng               # xorshift64 state
    sockaddr_storage addr
    socklen_t addrlen
    int32_t family
    SSL_CTX *ssl_ctx             # NULL: plain HTTP
    const char *sni              # server name sent in the handshake (NULL: none)
    const char *verify_name      # host name to verify (NULL: verify_ip or nothing)
    const char *verify_ip        # IP literal to verify against the certificate
    SSL_SESSION *session         # the last session, offered on new connections
    Hist connect_hist            # TCP connect times, ns
    Hist tls_hist                # TLS handshake times, ns
    uint64_t tls_handshakes
    uint64_t tls_resumed
    int32_t n_conns
    uint64_t *stop_level
    uint64_t *go                  # 0 until the engine sets start_ns
    # run state
    int64_t start_ns
    int64_t end_ns
    int64_t next_k                # next local slot to dispatch
    int32_t starved               # a due slot is waiting for a connection
    int32_t scheduling            # the load phase is on
    int64_t inflight
    int64_t started               # closed loop: requests started
    int32_t idle_head
    int32_t closed_head
    int epfd
    int wake_fd                # the engine's eventfd: wakes the control loop to drain
    Conn *conns
    char *rbuf
    Ring ring
    int64_t next_sweep_ns
    int64_t sweep_interval_ns
    int64_t reconnect_at_ns
    # published counters (relaxed atomics: read live by the control plane)
    uint64_t scheduled
    uint64_t unsent
    uint64_t bytes_out
    uint64_t bytes_in
    uint64_t ring_full_waits
    uint64_t load_end_ns
    uint64_t ready
    uint64_t finished


cdef inline void counter_add(uint64_t *c, uint64_t v) noexcept nogil:
    # single writer: a plain load + relaxed store is enough, and cheaper than an RMW
    hm_store_relaxed(c, c[0] + v)


cdef void emit(Worker *w, Conn *c, int32_t status, uint16_t error, int64_t now) noexcept nogil:
    """Hand one request's outcome to the aggregator; waits (never drops) if the ring is full."""
    cdef Result res
    res.intended_ns = c.intended_ns
    res.write_ns = c.write_ns
    res.done_ns = now
    res.status = <int16_t>status
    res.target = c.target
    res.error = error
    res.late = c.late
    while not ring_push(&w.ring, &res):
        counter_add(&w.ring_full_waits, 1)
        sleep_ns(RING_FULL_BACKOFF_NS)
    if (w.ring.head & (w.ring.mask >> 2)) == 0:
        # a quarter of the ring filled since the last call: have it drained now, not at
        # the control loop's next timed wake (which may be too far off at high rates)
        eventfd_write(w.wake_fd, 1)
    c.has_request = 0
    w.inflight -= 1


cdef inline void push_idle(Worker *w, Conn *c) noexcept nogil:
    c.state = CS_IDLE
    c.next_free = w.idle_head
    w.idle_head = <int32_t>(c - w.conns)


cdef inline Conn *pop_idle(Worker *w) noexcept nogil:
    cdef Conn *c
    if w.idle_head < 0:
        return NULL
    c = &w.conns[w.idle_head]
    w.idle_head = c.next_free
    return c


cdef inline Conn *pop_closed(Worker *w) noexcept nogil:
    cdef Conn *c
    if w.closed_head < 0:
        return NULL
    c = &w.conns[w.closed_head]
    w.closed_head = c.next_free
    return c


cdef void conn_close(Worker *w, Conn *c) noexcept nogil:
    """Close the socket; the connection slot goes on the closed stack for reuse."""
    if c.state == CS_IDLE:
        # unlink from the idle stack (rare: the server closed an idle connection)
        if w.idle_head == <int32_t>(c - w.conns):
            w.idle_head = c.next_free
        else:
            unlink_idle(w, c)
    if c.ssl != NULL:
        if not c.tls_failed:
            # a clean end: keep the session resumable (OpenSSL marks the session of a
            # connection freed without a shutdown as not resumable)
            SSL_set_shutdown(c.ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN)
        SSL_free(c.ssl)
        c.ssl = NULL
    c.tls_failed = 0
    if c.fd >= 0:
        close(c.fd)
    c.fd = -1
    c.state = CS_CLOSED
    c.carry_len = 0
    c.served = 0
    c.next_free = w.closed_head
    w.closed_head = <int32_t>(c - w.conns)


cdef void unlink_idle(Worker *w, Conn *c) noexcept nogil:
    cdef int32_t i = w.idle_head
    cdef int32_t me = <int32_t>(c - w.conns)
    while i >= 0:
        if w.conns[i].next_free == me:
            w.conns[i].next_free = c.next_free
            return
        i = w.conns[i].next_free


cdef void fail(Worker *w, Conn *c, uint16_t error, int64_t now) noexcept nogil:
    """The request on c ends in error; c is closed (never reused, never retried)."""
    c.tls_failed = 1
    if c.has_request:
        emit(w, c, 0, error, now)
    if error == ERR_CONNECT_REFUSED or error == ERR_CONNECT_ERROR or error == ERR_CONNECT_TIMEOUT:
        w.reconnect_at_ns = now + RECONNECT_BACKOFF_NS
    conn_close(w, c)


cdef inline uint16_t classify_io_errno(Conn *c, int err) noexcept nogil:
    if err == ECONNRESET or err == EPIPE:
        if not c.got_bytes:
            return ERR_KEEPALIVE_CLOSED if c.served > 0 else ERR_RESET
        return ERR_RESET
    if err == ETIMEDOUT:
        return ERR_TIMEOUT
    return ERR_SOCKET


cdef inline uint16_t classify_connect_errno(int err) noexcept nogil:
    if err == ECONNREFUSED:
        return ERR_CONNECT_REFUSED
    if err == ETIMEDOUT:
        return ERR_CONNECT_TIMEOUT
    return ERR_CONNECT_ERROR


cdef int set_mask(Worker *w, Conn *c, uint32_t mask) noexcept nogil:
    cdef epoll_event ev
    if c.epoll_mask == mask:
        return 0
    ev.events = mask
    ev.data.u64 = (<uint64_t>c.gen << 32) | <uint64_t>(c - w.conns)
    c.epoll_mask = mask
    return epoll_ctl(w.epfd, EPOLL_CTL_MOD, c.fd, &ev)


cdef void conn_send(Worker *w, Conn *c) noexcept nogil:
    """Write (the rest of) the request on a connected socket."""
    cdef ssize_t n
    cdef int r
    if c.wpos == 0:
        c.write_ns = clock_ns()
        if c.intended_ns == 0:
            c.intended_ns = c.write_ns  # closed loop: no schedule, measured from the write
        c.deadline_ns = c.write_ns + w.timeout_ns
        framer_reset(&c.fr, w.requests[c.target].is_head)
        c.got_bytes = 0
    c.state = CS_BUSY
    if c.ssl != NULL:
        ERR_clear_error()
        n = SSL_write(c.ssl, c.wreq + c.wpos, <int>(c.wlen - c.wpos))
        if n > 0:
            counter_add(&w.bytes_out, <uint64_t>n)
            c.wpos += <size_t>n
        else:
            r = SSL_get_error(c.ssl, <int>n)
            if r == SSL_ERROR_SYSCALL:
                fail(w, c, classify_io_errno(c, errno), clock_ns())
                return
            if r != SSL_ERROR_WANT_WRITE and r != SSL_ERROR_WANT_READ:
                fail(w, c, ERR_TLS, clock_ns())
                return
    else:
        n = send(c.fd, c.wreq + c.wpos, c.wlen - c.wpos, MSG_NOSIGNAL)
        if n > 0:
            counter_add(&w.bytes_out, <uint64_t>n)
            c.wpos += <size_t>n
        elif n < 0 and errno != EAGAIN and errno != EINTR:
            fail(w, c, classify_io_errno(c, errno), clock_ns())
            return
    if c.wpos < c.wlen:
        set_mask(w, c, EPOLLIN | EPOLLOUT)  # wait until writable
    elif c.epoll_mask != EPOLLIN:
        set_mask(w, c, EPOLLIN)


cdef void conn_connect(Worker *w, Conn *c, int64_t now) noexcept nogil:
    """Open a socket and start a non-blocking connect; the request (if any) waits for it."""
    cdef int one = 1
    cdef int r
    cdef epoll_event ev
    c.fd = socket(w.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)
    c.gen += 1
    c.carry_len = 0
    c.served = 0
    c.got_bytes = 0
    c.deadline_ns = now + w.connect_timeout_ns
    c.setup_start_ns = now
    if c.fd < 0:
        c.state = CS_CLOSED
        fail(w, c, ERR_CONNECT_ERROR, now)
        return
    if w.family != AF_UNIX:
        setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one))
    r = connect(c.fd, <sockaddr *>&w.addr, w.addrlen)
    if r < 0 and errno != EINPROGRESS:
        c.state = CS_CONNECTING
        fail(w, c, classify_connect_errno(errno), now)
        return
    c.state = CS_CONNECTING
    c.epoll_mask = EPOLLOUT
    ev.events = EPOLLOUT
    ev.data.u64 = (<uint64_t>c.gen << 32) | <uint64_t>(c - w.conns)
    if epoll_ctl(w.epfd, EPOLL_CTL_ADD, c.fd, &ev) < 0:
        fail(w, c, ERR_SOCKET, now)


cdef void tls_start(Worker *w, Conn *c, int64_t now) noexcept nogil:
    c.ssl = SSL_new(w.ssl_ctx)
    if c.ssl == NULL or SSL_set_fd(c.ssl, c.fd) != 1:
        fail(w, c, ERR_TLS, now)
        return
    if w.sni != NULL:
        SSL_ctrl(c.ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
                 <void *>w.sni)
    if w.verify_name != NULL:
        SSL_set1_host(c.ssl, w.verify_name)
    elif w.verify_ip != NULL:
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c.ssl), w.verify_ip)
    c.tls_offered = w.session
    c.tls_session_checked = 0
    if w.session != NULL:
        SSL_set_session(c.ssl, w.session)  # resumption: no full handshake
    c.state = CS_HANDSHAKE
    c.setup_start_ns = now
    tls_step(w, c)


cdef void keep_session(Worker *w, Conn *c) noexcept nogil:
    """Keep this connection's session for resumption if it is resumable. Called after the
    handshake and once more after the first read: a TLS 1.3 ticket arrives after the
    handshake, ahead of the first response."""
    cdef SSL_SESSION *session = SSL_get1_session(c.ssl)
    if session == NULL:
        return
    # a TLS 1.3 ticket is used once: after a resumption, wait for the fresh ticket
    if session == c.tls_offered or not SSL_SESSION_is_resumable(session):
        SSL_SESSION_free(session)
        return
    if w.session != NULL:
        SSL_SESSION_free(w.session)
    w.session = session


cdef void tls_step(Worker *w, Conn *c) noexcept nogil:
    """Drive the handshake; on completion the connection is ready."""
    cdef int r, e
    cdef int64_t now
    ERR_clear_error()
    r = SSL_connect(c.ssl)
    now = clock_ns()
    if r == 1:
        hist_record(&w.tls_hist, now - c.setup_start_ns)
        counter_add(&w.tls_handshakes, 1)
        if SSL_session_reused(c.ssl):
            counter_add(&w.tls_resumed, 1)
        keep_session(w, c)
        set_mask(w, c, EPOLLIN)
        conn_ready(w, c, now)
        return
    e = SSL_get_error(c.ssl, r)
    if e == SSL_ERROR_WANT_READ:
        set_mask(w, c, EPOLLIN)
    elif e == SSL_ERROR_WANT_WRITE:
        set_mask(w, c, EPOLLOUT)
    else:
        fail(w, c, ERR_TLS, now)


cdef void conn_connected(Worker *w, Conn *c, int64_t now) noexcept nogil:
    cdef int err = 0
    cdef socklen_t len_ = sizeof(err)
    getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len_)
    if err != 0:
        fail(w, c, classify_connect_errno(err), now)
        return
    hist_record(&w.connect_hist, now - c.setup_start_ns)
    if w.ssl_ctx != NULL:
        tls_start(w, c, now)
        return
    set_mask(w, c, EPOLLIN)
    conn_ready(w, c, now)


cdef void conn_ready(Worker *w, Conn *c, int64_t now) noexcept nogil:
    """Connected (and through the TLS handshake): send the waiting request, or idle."""
    if c.has_request:
        c.wpos = 0
        conn_send(w, c)
    else:
        c.state = CS_IDLE
        on_idle(w, c, now)


cdef inline uint16_t next_target(Worker *w, int64_t seq) noexcept nogil:
    if w.n_targets == 1:
        return 0
    if w.random_order:
        w.rng ^= w.rng << 13
        w.rng ^= w.rng >> 7
        w.rng ^= w.rng << 17
        return <uint16_t>(w.rng % <uint64_t>w.n_targets)
    return <uint16_t>(seq % w.n_targets)


cdef inline void assign(Worker *w, Conn *c, int64_t intended_ns, uint8_t late,
                        int64_t seq) noexcept nogil:
    """Give request number `seq` (the slot, or the worker's count in closed loop) to c."""
    cdef const Request *rq
    c.has_request = 1
    c.intended_ns = intended_ns
    c.write_ns = 0
    c.wpos = 0
    c.late = late
    c.target = next_target(w, seq)
    rq = &w.requests[c.target]
    # the last request a connection may carry asks the server to close (it then closes
    # first); `served` counts the responses on the current socket (0 when closed)
    c.closing = 1 if w.max_per_conn > 0 and c.served + 1 >= w.max_per_conn else 0
    if c.closing:
        c.wreq = rq.close
        c.wlen = rq.close_len
    else:
        c.wreq = rq.keep
        c.wlen = rq.keep_len
    w.inflight += 1


cdef void dispatch_open(Worker *w, int64_t now) noexcept nogil:
    """Open loop: hand every due slot to a connection; slots with none wait (late)."""
    cdef int64_t intended
    cdef Conn *c
    cdef uint8_t late
    while w.scheduling and w.next_k < w.n_local_slots:
        intended = pacer_intended_ns(&w.pacer, w.first_slot + w.next_k * w.slot_stride)
        if intended > now:
            w.starved = 0
            return
        if now - intended >= w.timeout_ns:
            # its deadline passed while it waited for a connection: never sent
            w.next_k += 1
            counter_add(&w.scheduled, 1)
            counter_add(&w.unsent, 1)
            continue
        c = pop_idle(w)
        if c == NULL:
            c = pop_closed(w)  # open a new connection for it
        if c == NULL:
            w.starved = 1  # every connection is busy or connecting: wait for one (late)
            return
        late = <uint8_t>w.starved
        counter_add(&w.scheduled, 1)
        assign(w, c, intended, late, w.first_slot + w.next_k * w.slot_stride)
        w.next_k += 1
        if c.state == CS_CLOSED:
            conn_connect(w, c, now)
        else:
            conn_send(w, c)
    w.starved = 0


cdef void start_closed(Worker *w, Conn *c, int64_t now) noexcept nogil:
    """Closed loop: the next request on this connection, if the run still wants one."""
    if not w.scheduling:
        return
    if w.request_budget >= 0 and w.started >= w.request_budget:
        return
    w.started += 1
    counter_add(&w.scheduled, 1)
    assign(w, c, 0, 0, w.started - 1)
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
        start_closed(w, c, now)
        if not c.has_request and c.state == CS_IDLE:
            push_idle(w, c)


cdef void reopen_closed(Worker *w, int64_t now) noexcept nogil:
    """Closed loop: every closed connection starts its next request on a new socket.
    After a connect error, wait until reconnect_at_ns so a dead server is not spun on."""
    cdef int32_t tries = w.n_conns
    cdef Conn *c
    while tries > 0 and w.scheduling and w.closed_head >= 0 and now >= w.reconnect_at_ns:
        if w.request_budget >= 0 and w.started >= w.request_budget:
            return
        c = pop_closed(w)
        start_closed(w, c, now)
        tries -= 1


cdef void complete(Worker *w, Conn *c, int64_t now) noexcept nogil:
    # a response that came before the whole request was written leaves the stream
    # mid-request: the connection cannot carry another one
    cdef bint keep = c.fr.keep_alive and c.wpos == c.wlen and not c.closing
    if c.intended_ns == 0:
        c.intended_ns = c.write_ns
    emit(w, c, c.fr.status, ERR_NONE, now)
    c.served += 1
    if not keep:
        if c.closing and c.fr.state == FS_DONE:
            # we asked the server to close: wait for its FIN so it closes first
            c.state = CS_DRAINING
            c.deadline_ns = now + DRAIN_WAIT_NS
            return
        conn_close(w, c)
        return
    c.state = CS_IDLE
    on_idle(w, c, now)


cdef void save_carry(Worker *w, Conn *c, const char *p, size_t n) noexcept nogil:
    cdef char *grown
    cdef uint32_t cap
    if n > c.carry_cap:
        cap = CARRY_MIN_BYTES
        while cap < n:
            cap *= 2
        grown = <char *>realloc(c.carry, cap)
        if grown == NULL:
            return
        c.carry = grown
        c.carry_cap = cap
    memmove(c.carry, p, n)
    c.carry_len = <uint32_t>n


cdef ssize_t tls_recv(Worker *w, Conn *c, size_t off) noexcept nogil:
    """Read decrypted bytes into rbuf[off:]: what the TLS records hold now. Like read():
    > 0 bytes, 0 at end of stream, -1 with errno, -2 a TLS error, -3 nothing yet."""
    cdef ssize_t total = 0
    cdef int r, e
    while off + <size_t>total < RBUF_BYTES:
        ERR_clear_error()
        r = SSL_read(c.ssl, w.rbuf + off + total, <int>(RBUF_BYTES - off - <size_t>total))
        if r > 0:
            total += r
            if not c.tls_session_checked:
                c.tls_session_checked = 1
                keep_session(w, c)
            if not SSL_has_pending(c.ssl):
                # nothing buffered in OpenSSL: whatever else arrives wakes epoll (level-
                # triggered), so no read() that can only answer EAGAIN
                return total
            continue
        e = SSL_get_error(c.ssl, r)
        if e == SSL_ERROR_WANT_READ or e == SSL_ERROR_WANT_WRITE:
            return total if total > 0 else -3
        if total > 0:
            return total  # report the bytes; the end or error shows on the next read
        if e == SSL_ERROR_ZERO_RETURN:
            return 0
        if e == SSL_ERROR_SYSCALL:
            if errno == 0:
                return 0
            return -1
        return -2
    return total


cdef void conn_readable(Worker *w, Conn *c) noexcept nogil:
    cdef size_t off = 0, pos = 0, used
    cdef ssize_t n
    cdef int r
    cdef int64_t now
    cdef uint16_t err
    if c.carry_len:
        memcpy(w.rbuf, c.carry, c.carry_len)
        off = c.carry_len
        c.carry_len = 0
    if c.ssl != NULL:
        n = tls_recv(w, c, off)
    else:
        n = read(c.fd, w.rbuf + off, RBUF_BYTES - off)
    now = clock_ns()
    if n == -2:
        fail(w, c, ERR_TLS, now)
        return
    if n < 0:
        if n == -3 or errno == EAGAIN or errno == EINTR:
            if off:
                save_carry(w, c, w.rbuf, off)
            return
        fail(w, c, classify_io_errno(c, errno), now)
        return
    if n == 0:
        if c.state != CS_BUSY or not c.has_request:
            conn_close(w, c)  # an idle keep-alive connection closed by the server
            return
        if framer_eof(&c.fr) == FR_DONE:
            complete(w, c, now)
            if c.state != CS_CLOSED:
                conn_close(w, c)
            return
        if not c.got_bytes and off == 0:
            err = ERR_KEEPALIVE_CLOSED if c.served > 0 else ERR_CLOSED_BEFORE_RESPONSE
        elif c.fr.state == FS_HEAD:
            err = ERR_TRUNCATED_HEADERS
        else:
            err = ERR_TRUNCATED_BODY
        fail(w, c, err, now)
        return
    counter_add(&w.bytes_in, <uint64_t>n)
    if c.state != CS_BUSY or not c.has_request:
        conn_close(w, c)  # bytes nobody asked for: the framing cannot be trusted
        return
    c.got_bytes = 1
    n += <ssize_t>off
    r = framer_feed(&c.fr, w.rbuf, <size_t>n, &used)
    if r == FR_MORE:
        if used < <size_t>n:
            save_carry(w, c, w.rbuf + used, <size_t>n - used)
        return
    if r == FR_DONE:
        if used < <size_t>n:
            # bytes past the end of the response we asked for: count it, then drop
            # the connection since its framing is no longer trustworthy
            c.fr.keep_alive = 0
        complete(w, c, now)
        return
    fail(w, c, ERR_HEADERS_TOO_LARGE if r == FR_TOO_LARGE else ERR_PROTOCOL, now)


cdef void sweep(Worker *w, int64_t now) noexcept nogil:
    """Time out requests and connects past their deadline; expire waiting slots."""
    cdef int32_t i
    cdef Conn *c
    for i in range(w.n_conns):
        c = &w.conns[i]
        if c.has_request and now >= c.deadline_ns:
            if c.state == CS_CONNECTING or c.state == CS_HANDSHAKE:
                fail(w, c, ERR_CONNECT_TIMEOUT, now)
            else:
                fail(w, c, ERR_TIMEOUT, now)
        elif ((c.state == CS_CONNECTING or c.state == CS_HANDSHAKE) and not c.has_request
              and now >= c.deadline_ns):
            conn_close(w, c)
        elif c.state == CS_DRAINING and now >= c.deadline_ns:
            conn_close(w, c)  # the server never closed: close from our side
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
        while w.next_k < w.n_local_slots:
            intended = pacer_intended_ns(&w.pacer, w.first_slot + w.next_k * w.slot_stride)
            if intended > now:
                break
            w.next_k += 1
            counter_add(&w.scheduled, 1)
            counter_add(&w.unsent, 1)


cdef void cancel_all(Worker *w, int64_t now) noexcept nogil:
    cdef int32_t i
    for i in range(w.n_conns):
        if w.conns[i].has_request:
            fail(w, &w.conns[i], ERR_CANCELLED, now)


cdef int64_t next_wake_ns(Worker *w, int64_t now) noexcept nogil:
    """When the loop must next wake. A slot wake comes spin_ns early: the loop then
    polls without sleeping until the slot is due, since waking from a sleep can be late
    by far more than the period (idle-CPU wake-up latency, worst in VMs)."""
    cdef int64_t wake = w.next_sweep_ns
    cdef int64_t t
    if w.scheduling:
        if w.end_ns < wake:
            wake = w.end_ns
        if w.open_loop and not w.starved and w.next_k < w.n_local_slots:
            t = pacer_intended_ns(&w.pacer, w.first_slot + w.next_k * w.slot_stride) - w.spin_ns
            if t < wake:
                wake = t
        elif (not w.open_loop and w.closed_head >= 0 and w.reconnect_at_ns < wake
                and (w.request_budget < 0 or w.started < w.request_budget)):
            wake = w.reconnect_at_ns
    return wake


cdef void worker_connect_all(Worker *w) noexcept nogil:
    """Open every connection before the schedule starts; wait up to the timeout."""
    cdef int32_t i
    cdef int n, k
    cdef int64_t now = clock_ns(), deadline = now + w.timeout_ns
    cdef epoll_event events[MAX_EVENTS]
    cdef timespec ts
    cdef int connecting = 0
    cdef Conn *c
    w.closed_head = -1
    w.idle_head = -1
    for i in range(w.n_conns - 1, -1, -1):
        w.conns[i].fd = -1
        w.conns[i].state = CS_CLOSED
        w.conns[i].next_free = w.closed_head
        w.closed_head = i
    for i in range(w.n_conns):
        c = pop_closed(w)
        conn_connect(w, c, now)
        if c.state == CS_CONNECTING:
            connecting += 1
    while connecting > 0 and now < deadline and hm_load_relaxed(w.stop_level) == STOP_NONE:
        ts.tv_sec = 0
        ts.tv_nsec = CONNECT_POLL_NS
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
        connecting = 0
        for i in range(w.n_conns):
            if w.conns[i].state == CS_CONNECTING or w.conns[i].state == CS_HANDSHAKE:
                connecting += 1


cdef bint has_draining(Worker *w) noexcept nogil:
    cdef int32_t i
    for i in range(w.n_conns):
        if w.conns[i].state == CS_DRAINING:
            return True
    return False


cdef void worker_run(Worker *w) noexcept nogil:
    cdef int64_t drain_until
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
    while hm_load_acquire(w.go) == 0:
        sched_yield()  # released within microseconds; a sleep could wake milliseconds late
    now = clock_ns()
    w.start_ns = w.pacer.start_ns
    w.end_ns = w.start_ns + w.duration_ns if w.duration_ns >= 0 else 0x7FFFFFFFFFFFFFFF
    w.scheduling = 1
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
        while i >= 0:
            c = &w.conns[i]
            i = c.next_free
            c.state = CS_IDLE
            start_closed(w, c, now)
            if not c.has_request:
                push_idle(w, c)
        # connections that failed to open are retried as requests (and counted)
        reopen_closed(w, now)
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
                if w.next_k >= w.n_local_slots and w.duration_ns < 0:
                    end_load_phase(w, now)
            elif w.request_budget >= 0 and w.started >= w.request_budget and w.duration_ns < 0:
                end_load_phase(w, now)
            elif w.closed_head >= 0:
                reopen_closed(w, now)
        if not w.scheduling and w.inflight == 0:
            break
        if now >= w.next_sweep_ns:
            sweep(w, now)
            w.next_sweep_ns = now + w.sweep_interval_ns
        wake = next_wake_ns(w, now)
        wait_ns = wake - clock_ns()
        if wait_ns < 0:
            wait_ns = 0
        ts.tv_sec = <long>(wait_ns // 1000000000)
        ts.tv_nsec = <long>(wait_ns % 1000000000)
        n = epoll_pwait2(w.epfd, events, MAX_EVENTS, &ts, NULL)
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
            if (ev & EPOLLOUT) and c.state == CS_BUSY and c.wpos < c.wlen:
                conn_send(w, c)
    # connections that asked the server to close: give its FIN a moment (so it closes
    # first and keeps the TIME_WAIT), then close every socket
    drain_until = clock_ns() + FINAL_FIN_WAIT_NS
    while has_draining(w) and clock_ns() < drain_until:
        ts.tv_sec = 0
        ts.tv_nsec = CONNECT_POLL_NS
        n = epoll_pwait2(w.epfd, events, MAX_EVENTS, &ts, NULL)
        for k in range(n):
            c = &w.conns[<uint32_t>events[k].data.u64]
            if <uint32_t>(events[k].data.u64 >> 32) == c.gen and c.state == CS_DRAINING:
                conn_readable(w, c)
    for i in range(w.n_conns):
        if w.conns[i].fd >= 0:
            conn_close(w, &w.conns[i])  # frees its TLS state too
    hm_store_release(&w.finished, 1)
    eventfd_write(w.wake_fd, 1)
