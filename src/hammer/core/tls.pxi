# TLS over a connection (OpenSSL): the client context, the non-blocking handshake,
# session resumption, and record reads and writes. A connection uses TLS when its
# worker has a context (Worker.tls.ctx); conn.pxi then calls tls_send / tls_recv in
# place of send / read.


cdef struct TlsClient:
    SSL_CTX *ctx                 # NULL: plain TCP
    const char *sni              # server name sent in the handshake (NULL: none)
    const char *verify_name      # host name to verify (NULL: verify_ip or nothing)
    const char *verify_ip        # IP literal to verify against the certificate
    SSL_SESSION *session         # the last resumable session, offered on new connections
    Hist handshake_hist          # TLS handshake times, ns
    uint64_t handshakes          # relaxed atomics, read live by the control plane
    uint64_t resumed


def _ssl_error(str what) -> str:
    cdef char buf[256]
    cdef unsigned long e = ERR_get_error()
    if e == 0:
        return what
    ERR_error_string_n(e, buf, sizeof(buf))
    ERR_clear_error()
    return f"{what}: {buf.decode(errors='replace')}"


cdef SSL_CTX *make_ssl_ctx(dict tls) except NULL:
    """A client context: system trust store (or cafile), verification on unless
    insecure, client certificate, session cache for resumption."""
    cdef SSL_CTX *ctx = SSL_CTX_new(TLS_client_method())
    if ctx == NULL:
        raise ValueError(_ssl_error("cannot create a TLS context"))
    try:
        SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF)
        SSL_CTX_ctrl(ctx, SSL_CTRL_MODE, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER, NULL)
        SSL_CTX_ctrl(ctx, SSL_CTRL_SET_SESS_CACHE_MODE, SSL_SESS_CACHE_CLIENT, NULL)
        if tls.get("cafile"):
            if SSL_CTX_load_verify_locations(ctx, tls["cafile"].encode(), NULL) != 1:
                raise ValueError(_ssl_error(f"cannot load CA file {tls['cafile']!r}"))
        elif SSL_CTX_set_default_verify_paths(ctx) != 1:
            raise ValueError(_ssl_error("cannot load the system trust store"))
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE if tls.get("insecure") else SSL_VERIFY_PEER,
                           NULL)
        if tls.get("certfile"):
            if SSL_CTX_use_certificate_chain_file(ctx, tls["certfile"].encode()) != 1:
                raise ValueError(_ssl_error(f"cannot load certificate {tls['certfile']!r}"))
            keyfile = tls.get("keyfile") or tls["certfile"]
            if SSL_CTX_use_PrivateKey_file(ctx, keyfile.encode(), SSL_FILETYPE_PEM) != 1:
                raise ValueError(_ssl_error(f"cannot load private key {keyfile!r}"))
            if SSL_CTX_check_private_key(ctx) != 1:
                raise ValueError(_ssl_error("the private key does not match the certificate"))
    except BaseException:
        SSL_CTX_free(ctx)
        raise
    return ctx


cdef void tls_start(Worker *w, Conn *c, int64_t now) noexcept nogil:
    """TCP is connected: start the handshake."""
    c.ssl = SSL_new(w.tls.ctx)
    if c.ssl == NULL or SSL_set_fd(c.ssl, c.fd) != 1:
        conn_fail(w, c, ERR_TLS, now)
        return
    if w.tls.sni != NULL:
        SSL_ctrl(c.ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
                 <void *>w.tls.sni)
    if w.tls.verify_name != NULL:
        SSL_set1_host(c.ssl, w.tls.verify_name)
    elif w.tls.verify_ip != NULL:
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c.ssl), w.tls.verify_ip)
    c.tls_offered = w.tls.session
    c.tls_session_checked = 0
    if w.tls.session != NULL:
        SSL_set_session(c.ssl, w.tls.session)  # resumption: no full handshake
    c.state = CS_HANDSHAKE
    c.setup_start_ns = now
    tls_step(w, c)


cdef void tls_keep_session(Worker *w, Conn *c) noexcept nogil:
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
    if w.tls.session != NULL:
        SSL_SESSION_free(w.tls.session)
    w.tls.session = session


cdef void tls_step(Worker *w, Conn *c) noexcept nogil:
    """Drive the handshake; on completion the connection is ready."""
    cdef int r, e
    cdef int64_t now
    ERR_clear_error()
    r = SSL_connect(c.ssl)
    now = clock_ns()
    if r == 1:
        hist_record(&w.tls.handshake_hist, now - c.setup_start_ns)
        counter_add(&w.tls.handshakes, 1)
        if SSL_session_reused(c.ssl):
            counter_add(&w.tls.resumed, 1)
        tls_keep_session(w, c)
        set_mask(w, c, EPOLLIN)
        conn_ready(w, c, now)
        return
    e = SSL_get_error(c.ssl, r)
    if e == SSL_ERROR_WANT_READ:
        set_mask(w, c, EPOLLIN)
    elif e == SSL_ERROR_WANT_WRITE:
        set_mask(w, c, EPOLLOUT)
    else:
        conn_fail(w, c, ERR_TLS, now)


cdef inline ssize_t tls_send(Worker *w, Conn *c) noexcept nogil:
    """Write the rest of the request as TLS records. Like conn_send's plain path:
    > 0 bytes written, 0 try again later, < 0 -(error class)."""
    cdef int n, r
    ERR_clear_error()
    n = SSL_write(c.ssl, c.wreq + c.wpos, <int>(c.wlen - c.wpos))
    if n > 0:
        return n
    r = SSL_get_error(c.ssl, n)
    if r == SSL_ERROR_SYSCALL:
        return -<ssize_t>classify_io_errno(c, errno)
    if r != SSL_ERROR_WANT_WRITE and r != SSL_ERROR_WANT_READ:
        return -<ssize_t>ERR_TLS
    return 0


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
                tls_keep_session(w, c)
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
