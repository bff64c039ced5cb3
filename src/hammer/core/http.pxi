# The HTTP/1.1 exchange: which pre-serialised request goes out (keep-alive or
# `Connection: close` variant, round-robin or seeded random target), and what its
# response means for the connection (complete, keep-alive, or wait for the server's FIN).
# framing.pxi finds where a response ends; this file fills HTTP_HOOKS (proto.pxi).


cdef struct Request:
    # one target's pre-serialised request, in two variants: keep-alive, and with
    # `Connection: close` (the last request on a connection)
    const char *keep
    size_t keep_len
    const char *close
    size_t close_len
    uint8_t is_head


cdef struct HttpWorker:          # a worker's HTTP settings (read-only once running)
    const Request *requests      # the targets, in order
    uint32_t n_requests
    uint8_t random_order         # pick targets at random (seeded) instead of round-robin
    uint64_t rng                 # rng_next state for the random order
    int64_t max_per_conn         # requests per connection, then `Connection: close` (0: no cap)
    const uint32_t *slot_targets # slot i sends request slot_targets[i] (NULL: round-robin
    int64_t n_slot_targets       # or random); an access log's order, kept alive by Engine


cdef struct HttpConn:            # a connection's HTTP state
    Framer fr                    # the response in flight
    uint8_t closing              # the request in flight asked the server to close


cdef inline uint32_t http_next_target(Worker *w, int64_t seq) noexcept nogil:
    if w.proto.http.slot_targets != NULL and seq < w.proto.http.n_slot_targets:
        return w.proto.http.slot_targets[seq]
    if w.proto.http.n_requests == 1:
        return 0
    if w.proto.http.random_order:
        return <uint32_t>rng_below(&w.proto.http.rng, w.proto.http.n_requests)
    return <uint32_t>(seq % w.proto.http.n_requests)


cdef void http_prepare(Worker *w, Conn *c, int64_t seq) noexcept nogil:
    cdef const Request *rq
    c.target = http_next_target(w, seq)
    rq = &w.proto.http.requests[c.target]
    # the last request a connection may carry asks the server to close (it then closes
    # first); `served` counts the responses on the current socket (0 when closed)
    c.proto.http.closing = (w.proto.http.max_per_conn > 0
                            and c.served + 1 >= w.proto.http.max_per_conn)
    if c.proto.http.closing:
        c.wreq = rq.close
        c.wlen = rq.close_len
    else:
        c.wreq = rq.keep
        c.wlen = rq.keep_len


cdef void http_begin(Worker *w, Conn *c) noexcept nogil:
    framer_reset(&c.proto.http.fr, w.proto.http.requests[c.target].is_head)


cdef void http_complete(Worker *w, Conn *c, int64_t now) noexcept nogil:
    """A response is complete: record it, then keep the connection, wait for the
    server's FIN, or close it."""
    # a response that came before the whole request was written leaves the stream
    # mid-request: the connection cannot carry another one
    cdef bint keep = (c.proto.http.fr.keep_alive and c.wpos == c.wlen
                      and not c.proto.http.closing)
    emit_result(w, c, c.proto.http.fr.status, ERR_NONE, now)
    c.served += 1
    if not keep:
        if c.proto.http.closing and c.proto.http.fr.state == FS_DONE:
            # we asked the server to close: wait for its FIN so it closes first
            c.state = CS_AWAIT_FIN
            c.deadline_ns = now + FIN_WAIT_NS
            return
        conn_close(w, c)
        return
    c.state = CS_IDLE
    on_idle(w, c, now)


cdef int http_on_bytes(Worker *w, Conn *c, const char *buf, size_t n, size_t *used,
                       int64_t now) noexcept nogil:
    cdef int r = framer_feed(&c.proto.http.fr, buf, n, used)
    if r == FR_MORE:
        return PROTO_MORE
    if r == FR_DONE:
        if used[0] < n:
            # bytes past the end of the response we asked for: count it, then drop
            # the connection since its framing is no longer trustworthy
            c.proto.http.fr.keep_alive = 0
        http_complete(w, c, now)
        return PROTO_DONE
    return -(ERR_HEADERS_TOO_LARGE if r == FR_TOO_LARGE else ERR_PROTOCOL_ERROR)


cdef int http_on_eof(Worker *w, Conn *c, int64_t now) noexcept nogil:
    if framer_eof(&c.proto.http.fr) == FR_DONE:
        http_complete(w, c, now)   # a close-delimited body
        if c.state != CS_CLOSED:
            conn_close(w, c)
        return PROTO_DONE
    if not c.got_bytes:
        return -(ERR_KEEPALIVE_CLOSED if c.served > 0 else ERR_CLOSED_BEFORE_RESPONSE)
    if c.proto.http.fr.state == FS_HEAD:
        return -ERR_TRUNCATED_HEADERS
    return -ERR_TRUNCATED_BODY


cdef ProtoHooks HTTP_HOOKS
HTTP_HOOKS.prepare = http_prepare
HTTP_HOOKS.begin = http_begin
HTTP_HOOKS.on_bytes = http_on_bytes
HTTP_HOOKS.on_eof = http_on_eof
HTTP_HOOKS.session_start = NULL
HTTP_HOOKS.session_bytes = NULL
HTTP_HOOKS.stage = NULL
HTTP_HOOKS.flush = NULL
HTTP_HOOKS.session_end = NULL
HTTP_HOOKS.fail_held = NULL
HTTP_HOOKS.idle_tick = NULL
HTTP_HOOKS.linger = NULL
