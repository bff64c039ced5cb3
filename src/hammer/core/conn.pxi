# Connections, protocol-independent: the pool (an idle stack and an unopened stack),
# non-blocking connect, epoll registration, close, errno classification, failure, and
# the socket read and write paths. The request bytes come from the protocol's prepare
# hook; what arrives goes to its on_bytes / on_eof hooks (proto.pxi). TLS is tls.pxi.


# Per-protocol state, one member per protocol (each protocol's *.pxi defines its structs)
cdef union ProtoWorker:
    HttpWorker http
    MqttWorker mqtt

cdef union ProtoConn:
    HttpConn http
    MqttConn mqtt


cdef enum:  # connection states
    CS_CLOSED = 0
    CS_CONNECTING = 1
    CS_IDLE = 2
    CS_BUSY = 3        # a request is being written or its response read
    CS_AWAIT_FIN = 4   # the protocol asked the server to close (HTTP `Connection: close`):
                       # waiting for its FIN, so the server closes first and holds the
                       # TIME_WAIT, not us
    CS_HANDSHAKE = 5   # TCP connected, TLS handshake under way
    CS_SESSION = 6     # connected: the protocol's session is being opened (MQTT CONNACK)


cdef struct Conn:
    int fd
    int32_t state
    uint32_t gen             # bumps on every (re)open: stale epoll events are ignored
    uint32_t epoll_mask
    int32_t next_free        # link in the idle or unopened stack
    uint32_t served          # responses completed on this socket
    int64_t intended_ns
    int64_t write_ns
    int64_t deadline_ns
    int64_t setup_start_ns   # when the connect, then the TLS handshake, began
    size_t wpos
    const char *wreq         # the bytes of the request in flight (set by the protocol)
    size_t wlen
    uint32_t target          # which of the run's requests (set by the protocol)
    uint8_t has_request
    uint8_t late
    uint8_t got_bytes        # a byte of the response arrived
    uint8_t ended_in_error   # closed by conn_fail: do not keep its TLS session
    uint8_t session_open     # the protocol's session is open on this socket
    uint32_t held            # written requests the protocol holds, awaiting answers
                             # (MQTT --inflight); always 0 for HTTP
    uint8_t expecting        # the protocol awaits an answer of its own (MQTT PINGRESP)
    uint8_t flush_queued     # on the worker's flush list (a protocol with a stage hook)
    uint8_t service          # kept by its protocol for itself (after the pool, never on
                             # its lists): MQTT's --e2e subscriber
    char *carry              # the bytes of a partial frame, kept for the next read
    uint32_t carry_len
    uint32_t carry_cap
    SSL *ssl                 # NULL: plain TCP
    SSL_SESSION *tls_offered # the session offered in its handshake (not owned)
    uint8_t tls_session_checked  # looked for a resumable session after the first read
    ProtoConn proto


cdef struct SocketCounts:
    uint64_t opened              # relaxed atomics, added to by every worker
    uint64_t closed

# Every connection socket the core opened and closed, over all engines of the process:
# tests assert the two match after each run (uvloop's debug-build habit; here always on,
# since it costs one atomic add per connection, not per request).
cdef SocketCounts SOCKETS
SOCKETS.opened = 0
SOCKETS.closed = 0


def socket_counts() -> tuple:
    """(opened, closed): connection sockets the core has opened and closed so far."""
    return hm_load_relaxed(&SOCKETS.opened), hm_load_relaxed(&SOCKETS.closed)


cdef inline void counter_add(uint64_t *c, uint64_t v) noexcept nogil:
    # single writer: a plain load + relaxed store is enough, and cheaper than an RMW
    hm_store_relaxed(c, c[0] + v)


cdef inline void push_idle(Worker *w, Conn *c) noexcept nogil:
    """On top of the idle list: the next request takes it (the hottest connection)."""
    c.state = CS_IDLE
    c.next_free = w.idle_head
    w.idle_head = <int32_t>(c - w.conns)
    if c.next_free < 0:
        w.idle_tail = w.idle_head


cdef inline void push_idle_back(Worker *w, Conn *c) noexcept nogil:
    """At the bottom of the idle list: every other idle connection goes first (a
    protocol that spreads its requests over its connections in turn)."""
    cdef int32_t me = <int32_t>(c - w.conns)
    c.state = CS_IDLE
    c.next_free = -1
    if w.idle_head < 0:
        w.idle_head = me
    else:
        w.conns[w.idle_tail].next_free = me
    w.idle_tail = me


cdef inline Conn *pop_idle(Worker *w) noexcept nogil:
    cdef Conn *c
    if w.idle_head < 0:
        return NULL
    c = &w.conns[w.idle_head]
    w.idle_head = c.next_free
    if w.idle_head < 0:
        w.idle_tail = -1
    return c


cdef inline Conn *pop_unopened(Worker *w) noexcept nogil:
    cdef Conn *c
    if w.unopened_head < 0:
        return NULL
    c = &w.conns[w.unopened_head]
    w.unopened_head = c.next_free
    return c


cdef void unlink_idle(Worker *w, Conn *c) noexcept nogil:
    """Take c (in state CS_IDLE) off the idle list, wherever it is."""
    cdef int32_t i = w.idle_head
    cdef int32_t me = <int32_t>(c - w.conns)
    if i == me:
        w.idle_head = c.next_free
        if w.idle_head < 0:
            w.idle_tail = -1
        return
    while i >= 0:
        if w.conns[i].next_free == me:
            w.conns[i].next_free = c.next_free
            if c.next_free < 0:
                w.idle_tail = i
            return
        i = w.conns[i].next_free


cdef void conn_close(Worker *w, Conn *c) noexcept nogil:
    """Close the socket; the connection slot goes on the unopened stack for reuse."""
    if c.state == CS_IDLE:
        unlink_idle(w, c)  # rare: the server closed an idle connection
    if c.ssl != NULL:
        if not c.ended_in_error:
            # a clean end: keep the session resumable (OpenSSL marks the session of a
            # connection freed without a shutdown as not resumable)
            SSL_set_shutdown(c.ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN)
        SSL_free(c.ssl)
        c.ssl = NULL
    c.ended_in_error = 0
    if c.fd >= 0:
        close(c.fd)
        hm_add_relaxed(&SOCKETS.closed, 1)
    c.fd = -1
    c.state = CS_CLOSED
    c.carry_len = 0
    c.served = 0
    if not c.service:
        c.next_free = w.unopened_head
        w.unopened_head = <int32_t>(c - w.conns)


cdef void conn_fail(Worker *w, Conn *c, uint8_t error, int64_t now) noexcept nogil:
    """The request on c ends in error; c is closed (never reused, never retried)."""
    c.ended_in_error = 1
    if c.has_request:
        emit_result(w, c, 0, error, now)
    if c.held:
        w.proto_hooks.fail_held(w, c, error, now)
    if error == ERR_CONNECT_REFUSED or error == ERR_CONNECT_ERROR or error == ERR_CONNECT_TIMEOUT:
        w.reconnect_at_ns = now + RECONNECT_BACKOFF_NS
    conn_close(w, c)


cdef inline uint8_t classify_io_errno(Conn *c, int err) noexcept nogil:
    if err == ECONNRESET or err == EPIPE:
        if not c.got_bytes:
            return ERR_KEEPALIVE_CLOSED if c.served > 0 else ERR_RESET
        return ERR_RESET
    if err == ETIMEDOUT:
        return ERR_TIMEOUT
    return ERR_SOCKET_ERROR


cdef inline uint8_t classify_connect_errno(int err) noexcept nogil:
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


cdef inline ssize_t conn_write_pending(Worker *w, Conn *c) noexcept nogil:
    """Write c.wreq[c.wpos:c.wlen] as far as the socket takes it: > 0 bytes written (and
    counted), 0 try again when writable, < 0 -(error class)."""
    cdef ssize_t n
    if c.ssl != NULL:
        n = tls_send(w, c)
    else:
        n = send(c.fd, c.wreq + c.wpos, c.wlen - c.wpos, MSG_NOSIGNAL)
        if n < 0:
            n = 0 if errno == EAGAIN or errno == EINTR else -<ssize_t>classify_io_errno(c, errno)
    if n > 0:
        counter_add(&w.bytes_out, <uint64_t>n)
    return n


cdef inline void queue_flush(Worker *w, Conn *c) noexcept nogil:
    """Have c's protocol flush it at the end of this loop pass (once per pass)."""
    if not c.flush_queued:
        c.flush_queued = 1
        w.flush_list[w.n_flush] = <int32_t>(c - w.conns)
        w.n_flush += 1


cdef void flush_queued(Worker *w, int64_t now) noexcept nogil:
    """Every queued connection's flush (a flush may queue more: they go in this pass)."""
    cdef int32_t i = 0
    cdef Conn *c
    while i < w.n_flush:
        c = &w.conns[w.flush_list[i]]
        c.flush_queued = 0
        if c.state != CS_CLOSED:
            w.proto_hooks.flush(w, c, now)
        i += 1
    w.n_flush = 0


cdef void conn_send(Worker *w, Conn *c) noexcept nogil:
    """Write (the rest of) the request on a connected socket, or stage it with a protocol
    that writes several at once."""
    cdef ssize_t n
    if c.wpos == 0:
        if w.proto_hooks.stage != NULL:
            c.state = CS_BUSY
            w.proto_hooks.stage(w, c, clock_ns())
            return
        c.write_ns = clock_ns()
        if c.intended_ns == 0:
            c.intended_ns = c.write_ns  # closed loop: no schedule, measured from the write
        c.deadline_ns = c.write_ns + w.timeout_ns
        w.proto_hooks.begin(w, c)
        c.got_bytes = 0
    c.state = CS_BUSY
    n = conn_write_pending(w, c)
    if n > 0:
        c.wpos += <size_t>n
    elif n < 0:
        conn_fail(w, c, <uint8_t>(-n), clock_ns())
        return
    if c.wpos < c.wlen:
        set_mask(w, c, EPOLLIN | EPOLLOUT)  # wait until writable
        return
    if c.epoll_mask != EPOLLIN:
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
    c.session_open = 0
    c.held = 0
    c.expecting = 0
    c.deadline_ns = now + w.connect_timeout_ns
    c.setup_start_ns = now
    if c.fd < 0:
        c.state = CS_CLOSED
        conn_fail(w, c, ERR_CONNECT_ERROR, now)
        return
    hm_add_relaxed(&SOCKETS.opened, 1)
    if w.family != AF_UNIX:
        setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one))
    if w.defer_reads:
        setsockopt(c.fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one))
    r = connect(c.fd, <sockaddr *>&w.addr, w.addrlen)
    if r < 0 and errno != EINPROGRESS:
        c.state = CS_CONNECTING
        conn_fail(w, c, classify_connect_errno(errno), now)
        return
    c.state = CS_CONNECTING
    c.epoll_mask = EPOLLOUT
    ev.events = EPOLLOUT
    ev.data.u64 = (<uint64_t>c.gen << 32) | <uint64_t>(c - w.conns)
    if epoll_ctl(w.epfd, EPOLL_CTL_ADD, c.fd, &ev) < 0:
        conn_fail(w, c, ERR_SOCKET_ERROR, now)


cdef void conn_connected(Worker *w, Conn *c, int64_t now) noexcept nogil:
    cdef int err = 0
    cdef socklen_t len_ = sizeof(err)
    getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len_)
    if err != 0:
        conn_fail(w, c, classify_connect_errno(err), now)
        return
    hist_record(&w.connect_hist, now - c.setup_start_ns)
    if w.tls.ctx != NULL:
        tls_start(w, c, now)
        return
    set_mask(w, c, EPOLLIN)
    conn_ready(w, c, now)


cdef inline bint conn_setting_up(Conn *c) noexcept nogil:
    """Connecting, in its TLS handshake, or opening the protocol's session."""
    return c.state == CS_CONNECTING or c.state == CS_HANDSHAKE or c.state == CS_SESSION


cdef int conn_write_all(Worker *w, Conn *c, const char *buf, size_t n) noexcept nogil:
    """Write a protocol's small control packet (MQTT CONNECT, PUBREL) at once: 0, or
    -(error class) when it could not go whole."""
    cdef ssize_t r
    if c.ssl != NULL:
        ERR_clear_error()
        r = SSL_write(c.ssl, buf, <int>n)
        if r != <ssize_t>n:
            return -ERR_TLS
    else:
        r = send(c.fd, buf, n, MSG_NOSIGNAL)
        if r < 0:
            return -<int>classify_io_errno(c, errno)
        if r != <ssize_t>n:
            return -ERR_SOCKET_ERROR
    counter_add(&w.bytes_out, <uint64_t>n)
    return 0


cdef void conn_ready(Worker *w, Conn *c, int64_t now) noexcept nogil:
    """Connected (and through the TLS handshake, and the protocol's session): send the
    waiting request, or idle."""
    cdef int r
    if not c.session_open and w.proto_hooks.session_start != NULL:
        r = w.proto_hooks.session_start(w, c, now)
        if r < 0:
            conn_fail(w, c, <uint8_t>(-r), now)
            return
        if r > 0:
            c.state = CS_SESSION
            set_mask(w, c, EPOLLIN)
            return
    c.session_open = 1
    if c.has_request:
        c.wpos = 0
        conn_send(w, c)
    else:
        c.state = CS_IDLE
        on_idle(w, c, now)


cdef void conn_save_carry(Worker *w, Conn *c, const char *p, size_t n,
                          int64_t now) noexcept nogil:
    """Keep the bytes of a partial frame for the next read (they go first in rbuf). If
    the buffer cannot grow, the request fails (socket_error): dropping the bytes would
    frame the next read from the middle of a response."""
    cdef char *grown
    cdef uint32_t cap
    if n > c.carry_cap:
        cap = CARRY_MIN_BYTES
        while cap < n:
            cap *= 2
        grown = <char *>realloc(c.carry, cap)
        if grown == NULL:
            conn_fail(w, c, ERR_SOCKET_ERROR, now)
            return
        c.carry = grown
        c.carry_cap = cap
    memmove(c.carry, p, n)
    c.carry_len = <uint32_t>n


cdef void conn_session_read(Worker *w, Conn *c, ssize_t n, size_t off,
                            int64_t now) noexcept nogil:
    """What arrived while the protocol's session was being opened (n >= 0 bytes read
    after `off` carried ones)."""
    cdef size_t used = 0
    cdef int r
    if n == 0:
        if c.has_request:
            conn_fail(w, c, ERR_CLOSED_BEFORE_RESPONSE, now)
        else:
            conn_close(w, c)
        return
    counter_add(&w.bytes_in, <uint64_t>n)
    n += <ssize_t>off
    r = w.proto_hooks.session_bytes(w, c, w.rbuf, <size_t>n, &used, now)
    if r == PROTO_CLOSED:
        return
    if r == PROTO_MORE or r == PROTO_OWN:
        c.session_open = r == PROTO_OWN
        if used < <size_t>n:
            conn_save_carry(w, c, w.rbuf + used, <size_t>n - used, now)
    elif r < 0:
        if c.has_request:
            conn_fail(w, c, <uint8_t>(-r), now)
        else:
            # opened ahead, with no request on it: closed; a request that reopens it
            # meets the refusal itself and counts it
            c.ended_in_error = 1
            conn_close(w, c)
    else:
        c.session_open = 1
        conn_ready(w, c, now)


cdef void conn_readable(Worker *w, Conn *c) noexcept nogil:
    cdef size_t off = 0, used = 0
    cdef ssize_t n
    cdef int r
    cdef int64_t now, rx_ns = 0
    if c.carry_len:
        memcpy(w.rbuf, c.carry, c.carry_len)
        off = c.carry_len
        c.carry_len = 0
    if c.ssl != NULL:
        n = tls_recv(w, c, off)
        now = clock_ns()
    elif w.defer_reads:
        n = hm_read_stamped(c.fd, w.rbuf + off, RBUF_BYTES - off, &rx_ns)
        now = clock_ns()
        if rx_ns > 0:
            # when the kernel received the bytes, not when this (deferred) read ran
            rx_ns -= w.realtime_offset_ns
            if c.write_ns < rx_ns < now:
                now = rx_ns
    else:
        n = read(c.fd, w.rbuf + off, RBUF_BYTES - off)
        now = clock_ns()
    if n == -2:
        conn_fail(w, c, ERR_TLS, now)
        return
    if n < 0:
        if n == -3 or errno == EAGAIN or errno == EINTR:
            if off:
                conn_save_carry(w, c, w.rbuf, off, now)
            return
        conn_fail(w, c, classify_io_errno(c, errno), now)
        return
    if c.state == CS_SESSION:
        conn_session_read(w, c, n, off, now)
        return
    if n == 0:
        if (c.state != CS_BUSY or not c.has_request) and not c.held:
            conn_close(w, c)  # an idle connection closed by the server, or its FIN came
            return
        if off:
            c.got_bytes = 1
        r = w.proto_hooks.on_eof(w, c, now)
        if r < 0:
            conn_fail(w, c, <uint8_t>(-r), now)
        return
    counter_add(&w.bytes_in, <uint64_t>n)
    if (c.state != CS_BUSY or not c.has_request) and not c.held and not c.expecting \
            and not c.service:
        conn_close(w, c)  # bytes nobody asked for: the framing cannot be trusted
        return
    c.got_bytes = 1
    n += <ssize_t>off
    r = w.proto_hooks.on_bytes(w, c, w.rbuf, <size_t>n, &used, now)
    if r == PROTO_MORE:
        if used < <size_t>n:
            conn_save_carry(w, c, w.rbuf + used, <size_t>n - used, now)
    elif r < 0:
        conn_fail(w, c, <uint8_t>(-r), now)


cdef int make_unix_sockaddr(str path, sockaddr_storage *addr, socklen_t *addrlen) except -1:
    cdef sockaddr_un *un = <sockaddr_un *>addr
    b = path.encode()
    if len(b) >= sizeof(un.sun_path):
        raise ValueError(f"unix socket path too long ({len(b)} bytes, at most 107)")
    un.sun_family = AF_UNIX
    memcpy(un.sun_path, <const char *>b, len(b))
    addrlen[0] = <socklen_t>(sizeof(sa_family_t) + len(b) + 1)
    return AF_UNIX


cdef int make_sockaddr(str host, int port, sockaddr_storage *addr,
                       socklen_t *addrlen) except -1:
    cdef sockaddr_in *a4 = <sockaddr_in *>addr
    cdef sockaddr_in6 *a6 = <sockaddr_in6 *>addr
    b = host.encode()
    if inet_pton(AF_INET, b, &a4.sin_addr) == 1:
        a4.sin_family = AF_INET
        a4.sin_port = htons(port)
        addrlen[0] = sizeof(sockaddr_in)
        return AF_INET
    if inet_pton(AF_INET6, b, &a6.sin6_addr) == 1:
        a6.sin6_family = AF_INET6
        a6.sin6_port = htons(port)
        addrlen[0] = sizeof(sockaddr_in6)
        return AF_INET6
    raise ValueError(f"not an IP address: {host!r}")
