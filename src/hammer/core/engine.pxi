# The engine: owns the workers (one OS thread each, GIL released once around the whole
# loop) and the aggregator that drains their rings into histograms and counters.

import socket as _socket
import threading as _threading


cdef struct SecondStats:
    int64_t sent                    # sent, of the requests due during this second
    int64_t completed               # responses completed during this second
    int64_t errors                  # requests that failed during this second
    Hist latency                    # corrected latency of those completions (2 digits)


cdef struct TargetStats:
    int64_t sent
    int64_t completed
    int64_t ok
    int64_t http_error
    int64_t errors
    int64_t *status_counts          # STATUS_SLOTS entries
    Hist latency                    # corrected latency, ns


cdef class Aggregator:
    """Accumulates results: three histograms (ns), outcome counters, status and errors,
    and with several targets, a breakdown per target."""

    cdef readonly Histogram latency          # done - intended (coordinated-omission corrected)
    cdef readonly Histogram latency_uncorrected  # done - write
    cdef readonly Histogram send_lag         # write - intended
    cdef public int64_t results, sent, completed, ok, http_error, errors, late
    cdef int64_t status_counts[STATUS_SLOTS]
    cdef int64_t error_counts[ERR_COUNT]
    cdef TargetStats *targets
    cdef int32_t n_targets                   # with a breakdown (0: a single target)
    cdef SecondStats *seconds
    cdef int32_t n_seconds                   # allocated
    cdef public int64_t start_ns             # second 0 starts here (set by Engine.go_at)

    def __cinit__(self, int n_targets=1):
        cdef int32_t i
        self.latency = Histogram()
        self.latency_uncorrected = Histogram()
        self.send_lag = Histogram()
        memset(self.status_counts, 0, sizeof(self.status_counts))
        memset(self.error_counts, 0, sizeof(self.error_counts))
        self.targets = NULL
        self.n_targets = 0
        self.seconds = NULL
        self.n_seconds = 0
        self.start_ns = 0
        if n_targets > 1:
            self.n_targets = min(n_targets, MAX_TARGET_BREAKDOWN)
            self.targets = <TargetStats *>calloc(self.n_targets, sizeof(TargetStats))
            if self.targets == NULL:
                raise MemoryError()
            for i in range(self.n_targets):
                self.targets[i].status_counts = <int64_t *>calloc(STATUS_SLOTS, sizeof(int64_t))
                if (self.targets[i].status_counts == NULL
                        or hist_init(&self.targets[i].latency, HIST_HIGHEST, HIST_SIGFIGS) != 0):
                    raise MemoryError()

    def __dealloc__(self):
        cdef int32_t i
        for i in range(self.n_seconds):
            hist_free(&self.seconds[i].latency)
        free(self.seconds)
        if self.targets != NULL:
            for i in range(self.n_targets):
                free(self.targets[i].status_counts)
                hist_free(&self.targets[i].latency)
            free(self.targets)

    cdef int reserve_seconds(self, int64_t n) noexcept nogil:
        """Room for n seconds (capped at MAX_SECONDS); their histograms come later."""
        cdef int32_t grown
        cdef SecondStats *more
        if n <= self.n_seconds:
            return 0
        grown = self.n_seconds * 2 if self.n_seconds else 64
        while grown < n:
            grown *= 2
        if grown > MAX_SECONDS:
            grown = MAX_SECONDS
        more = <SecondStats *>realloc(self.seconds, grown * sizeof(SecondStats))
        if more == NULL:
            return -1
        memset(&more[self.n_seconds], 0, (grown - self.n_seconds) * sizeof(SecondStats))
        self.seconds = more
        self.n_seconds = grown
        return 0

    cdef SecondStats *second(self, int64_t ts) noexcept nogil:
        """The stats of the second holding ts (NULL before the start or past a day)."""
        cdef int64_t i
        cdef SecondStats *sec
        if self.start_ns == 0 or ts < self.start_ns:
            return NULL
        i = (ts - self.start_ns) // 1000000000
        if i >= MAX_SECONDS or (i >= self.n_seconds and self.reserve_seconds(i + 1) != 0):
            return NULL
        sec = &self.seconds[i]
        # a second's histogram is made when the second is first reached: one 36 KiB
        # allocation per second, never a burst of them inside a drain
        if sec.latency.counts == NULL and hist_init(&sec.latency, HIST_HIGHEST, SECOND_HIST_SIGFIGS) != 0:
            return NULL
        return sec

    cdef void record(self, const Result *r) noexcept nogil:
        cdef TargetStats *t = NULL
        cdef SecondStats *sec
        cdef int32_t status
        cdef bint ok
        if r.target < self.n_targets:
            t = &self.targets[r.target]
        self.results += 1
        if r.write_ns != 0:
            self.sent += 1
            hist_record(&self.send_lag.h, r.write_ns - r.intended_ns)
            if t != NULL:
                t.sent += 1
            # by the second it was due in, so that each second's achieved rate answers its
            # target and a late last send still counts within the load phase
            sec = self.second(r.intended_ns)
            if sec != NULL:
                sec.sent += 1
        if r.late:
            self.late += 1
        sec = self.second(r.done_ns)
        if r.error != ERR_NONE:
            self.errors += 1
            self.error_counts[r.error] += 1
            if t != NULL:
                t.errors += 1
            if sec != NULL:
                sec.errors += 1
            return
        if sec != NULL:
            sec.completed += 1
            hist_record(&sec.latency, r.done_ns - r.intended_ns)
        status = r.status if 0 < r.status < STATUS_SLOTS else 0
        ok = 200 <= r.status < 400
        self.completed += 1
        if ok:
            self.ok += 1
        else:
            self.http_error += 1
        self.status_counts[status] += 1
        hist_record(&self.latency.h, r.done_ns - r.intended_ns)
        hist_record(&self.latency_uncorrected.h, r.done_ns - r.write_ns)
        if t != NULL:
            t.completed += 1
            if ok:
                t.ok += 1
            else:
                t.http_error += 1
            t.status_counts[status] += 1
            hist_record(&t.latency, r.done_ns - r.intended_ns)

    cdef uint64_t drain_ring(self, Ring *ring) noexcept nogil:
        cdef Result batch[AGG_BATCH]
        cdef uint64_t n, i, total = 0
        while True:
            n = ring_pop(ring, batch, AGG_BATCH)
            if n == 0:
                return total
            for i in range(n):
                self.record(&batch[i])
            total += n

    def record_one(self, int64_t intended_ns, int64_t write_ns, int64_t done_ns,
                   int status=200, int error=0, bint late=False) -> None:
        """Record one result as a worker would have pushed it (tests and benchmarks)."""
        cdef Result r
        memset(&r, 0, sizeof(Result))
        r.intended_ns, r.write_ns, r.done_ns = intended_ns, write_ns, done_ns
        r.status, r.error, r.late = status, error, late
        self.record(&r)

    def status(self) -> dict:
        cdef int i
        return {str(i): self.status_counts[i] for i in range(STATUS_SLOTS) if self.status_counts[i]}

    def error_classes(self) -> dict:
        cdef int i
        return {ERROR_NAMES[i]: self.error_counts[i] for i in range(1, ERR_COUNT)
                if self.error_counts[i]}

    def time_series(self, int64_t seconds) -> list:
        """Per second of the run (0 .. seconds-1): sent, completed, errors and the
        corrected latency p50/p99 (ms) of that second's completions."""
        cdef int64_t i
        cdef SecondStats *sec
        out = []
        for i in range(min(seconds, MAX_SECONDS)):
            if i < self.n_seconds:
                sec = &self.seconds[i]
                has = sec.latency.total_count > 0
                out.append({
                    "sent": sec.sent, "completed": sec.completed, "errors": sec.errors,
                    "p50_ms": hist_value_at_percentile(&sec.latency, 50.0) / 1e6 if has else None,
                    "p99_ms": hist_value_at_percentile(&sec.latency, 99.0) / 1e6 if has else None,
                })
            else:
                out.append({"sent": 0, "completed": 0, "errors": 0, "p50_ms": None,
                            "p99_ms": None})
        return out

    def target_breakdown(self) -> list:
        """Per target (in the run's order, up to MAX_TARGET_BREAKDOWN): sent, completed,
        ok, http_error, errors, status counts and corrected latency (ms); [] for one."""
        cdef int32_t i, k
        cdef TargetStats *t
        out = []
        for i in range(self.n_targets):
            t = &self.targets[i]
            out.append({
                "sent": t.sent, "completed": t.completed, "ok": t.ok,
                "http_error": t.http_error, "error": t.errors,
                "status": {str(k): t.status_counts[k] for k in range(STATUS_SLOTS)
                           if t.status_counts[k]},
                "latency_ms": hist_summary_ms(&t.latency),
            })
        return out


cdef class Engine:
    """Runs one load phase. Python drives it: start(), drain() when wake_fd is readable
    or every so often, stop(), join(); nothing here is called per request."""

    cdef Worker *workers
    cdef int32_t n_workers
    cdef uint64_t stop_level
    cdef uint64_t go
    cdef Request *requests
    cdef int32_t n_requests
    cdef SSL_CTX *ssl_ctx
    cdef list tls_names           # keeps the bytes behind the workers' name pointers alive
    cdef list request_objects     # keeps the bytes behind `requests` alive
    cdef object threads
    cdef readonly Aggregator aggregator
    cdef readonly int64_t start_ns
    cdef bint started
    cdef int _wake_fd

    def __cinit__(self):
        self._wake_fd = -1
        self.workers = NULL
        self.n_workers = 0
        self.requests = NULL
        self.ssl_ctx = NULL

    def __init__(self, *, str host, int port, list requests, int threads,
                 int connections, object rate_num, object rate_den, int64_t n_slots,
                 int64_t duration_ns, int64_t max_requests, int64_t timeout_ns,
                 int64_t connect_timeout_ns=-1, int64_t max_per_conn=0,
                 bint random_order=False, uint64_t seed=1, int64_t spin_ns=0,
                 bint batch_sched=False,  # closed loop: workers run as SCHED_BATCH
                 str unix_path=None, object profile=None, object poisson_seed=None,
                 dict tls=None, int ring_capacity=RING_CAPACITY_DEFAULT):
        """requests: [(keep_alive_bytes, close_bytes, is_head)], one per target.
        rate_num/rate_den: requests per second as a fraction (None: closed loop);
        profile: rate segments [(kind, duration_s, r0, r1, period_s)] instead;
        poisson_seed: Poisson arrivals at rate_num/rate_den.
        n_slots: slots the open-loop schedule holds. duration_ns, max_requests: -1 = none.
        max_per_conn: requests per connection, the last asking the server to close
        (1: a new connection per request; 0: no cap). unix_path: connect there instead.
        tls: None for plain HTTP, else {"insecure", "cafile", "certfile", "keyfile",
        "server_name", "verify_name", "verify_ip"}."""
        cdef int32_t i
        cdef Worker *w
        cdef int64_t per, extra
        cdef sockaddr_storage addr
        cdef socklen_t addrlen
        cdef int family
        if threads < 1 or connections < threads:
            raise ValueError("need 1 <= threads <= connections")
        if not 1 <= len(requests) <= 65535:
            raise ValueError("need 1 to 65535 requests")
        memset(&addr, 0, sizeof(addr))
        if unix_path is not None:
            family = make_unix_sockaddr(unix_path, &addr, &addrlen)
        else:
            family = make_sockaddr(host, port, &addr, &addrlen)
        self.request_objects = []
        self.n_requests = len(requests)
        self.requests = <Request *>calloc(self.n_requests, sizeof(Request))
        if self.requests == NULL:
            raise MemoryError()
        for i, (keep, close_, is_head) in enumerate(requests):
            keep = bytes(keep)
            close_ = bytes(close_)
            self.request_objects.append((keep, close_))
            self.requests[i].keep = <const char *>keep
            self.requests[i].keep_len = len(keep)
            self.requests[i].close = <const char *>close_
            self.requests[i].close_len = len(close_)
            self.requests[i].is_head = bool(is_head)
        self.aggregator = Aggregator(self.n_requests)
        if tls is not None:
            self.ssl_ctx = make_ssl_ctx(tls)
            self.tls_names = [(tls.get(k) or "").encode() or None
                              for k in ("server_name", "verify_name", "verify_ip")]
        self.threads = []
        self.workers = <Worker *>calloc(threads, sizeof(Worker))
        if self.workers == NULL:
            raise MemoryError()
        self.n_workers = threads
        self._wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)
        if self._wake_fd < 0:
            raise OSError(errno, "eventfd failed")
        for i in range(threads):
            w = &self.workers[i]
            w.index = i
            w.epfd = -1
            w.wake_fd = self._wake_fd
            w.open_loop = rate_num is not None or profile is not None
            if w.open_loop:
                # slots are dealt round-robin: worker i sends i, i+T, i+2T, ... so the
                # merged stream stays evenly spaced
                w.first_slot = i
                w.slot_stride = threads
                w.n_local_slots = (n_slots - i + threads - 1) // threads if n_slots > i else 0
                pacer_setup(&w.pacer, rate_num, rate_den, profile, poisson_seed)
            w.duration_ns = duration_ns
            w.timeout_ns = timeout_ns
            w.connect_timeout_ns = connect_timeout_ns if connect_timeout_ns > 0 else timeout_ns
            w.max_per_conn = max_per_conn
            w.spin_ns = spin_ns
            w.batch_sched = batch_sched and not w.open_loop
            if max_requests >= 0 and not w.open_loop:
                per = max_requests // threads
                extra = 1 if i < max_requests % threads else 0
                w.request_budget = per + extra
            else:
                w.request_budget = -1
            w.requests = self.requests
            w.n_targets = self.n_requests
            if hist_init(&w.connect_hist, HIST_HIGHEST, HIST_SIGFIGS) != 0 or \
                    hist_init(&w.tls_hist, HIST_HIGHEST, HIST_SIGFIGS) != 0:
                raise MemoryError()
            w.ssl_ctx = self.ssl_ctx
            if self.ssl_ctx != NULL:
                sni, vname, vip = self.tls_names
                w.sni = <const char *>sni if sni is not None else NULL
                w.verify_name = <const char *>vname if vname is not None else NULL
                w.verify_ip = <const char *>vip if vip is not None else NULL
            w.random_order = random_order
            w.rng = (seed + <uint64_t>i * 0x9E3779B97F4A7C15ULL) | 1
            memcpy(&w.addr, &addr, addrlen)
            w.addrlen = addrlen
            w.family = family
            w.n_conns = connections // threads + (1 if i < connections % threads else 0)
            w.stop_level = &self.stop_level
            w.go = &self.go
            w.conns = <Conn *>calloc(w.n_conns, sizeof(Conn))
            w.rbuf = <char *>malloc(RBUF_BYTES)
            w.epfd = epoll_create1(EPOLL_CLOEXEC)
            if w.conns == NULL or w.rbuf == NULL or ring_init(&w.ring, ring_capacity) != 0:
                raise MemoryError()
            if w.epfd < 0:
                raise OSError(errno, "epoll_create1 failed")

    def __dealloc__(self):
        cdef int32_t i, j
        cdef Worker *w
        if self._wake_fd >= 0:
            close(self._wake_fd)
            self._wake_fd = -1
        free(self.requests)
        self.requests = NULL
        if self.workers == NULL:
            return
        for i in range(self.n_workers):
            w = &self.workers[i]
            if w.conns != NULL:
                for j in range(w.n_conns):
                    free(w.conns[j].carry)
                free(w.conns)
            free(w.rbuf)
            ring_free(&w.ring)
            hist_free(&w.connect_hist)
            hist_free(&w.tls_hist)
            if w.session != NULL:
                SSL_SESSION_free(w.session)
            if w.epfd >= 0:
                close(w.epfd)
        free(self.workers)
        if self.ssl_ctx != NULL:
            SSL_CTX_free(self.ssl_ctx)

    def _worker_main(self, int32_t i) -> None:
        cdef Worker *w = &self.workers[i]
        with nogil:
            worker_run(w)

    def start(self) -> None:
        """Start the threads; each opens its connections, then waits for go()."""
        if self.started:
            raise RuntimeError("an engine runs once")
        self.started = True
        for i in range(self.n_workers):
            t = _threading.Thread(target=self._worker_main, args=(i,),
                                  name=f"hammer-worker-{i}", daemon=True)
            self.threads.append(t)
            t.start()

    @property
    def wake_fd(self) -> int:
        """An eventfd the workers write to when one finishes and each time a quarter of a
        ring has filled: the control loop drains when it is readable (and reads it)."""
        return self._wake_fd

    def all_ready(self) -> bool:
        cdef int32_t i
        for i in range(self.n_workers):
            if hm_load_acquire(&self.workers[i].ready) == 0:
                return False
        return True

    def go_at(self, int64_t start_ns) -> None:
        """Release the workers: slot 0 is due at start_ns (CLOCK_MONOTONIC)."""
        cdef int32_t i
        self.start_ns = start_ns
        self.aggregator.start_ns = start_ns
        if self.n_workers > 0 and self.workers[0].duration_ns > 0:
            self.aggregator.reserve_seconds(self.workers[0].duration_ns // 1000000000 + 2)
        for i in range(self.n_workers):
            self.workers[i].pacer.start_ns = start_ns
        hm_store_release(&self.go, 1)

    def stop(self, int level) -> None:
        """1: stop scheduling, let in-flight requests finish; 2: cancel them too."""
        if level > <int>hm_load_relaxed(&self.stop_level):
            hm_store_relaxed(&self.stop_level, level)

    def drain(self) -> int:
        """Move every result waiting in the rings into the aggregator."""
        cdef int32_t i
        cdef uint64_t total = 0
        cdef Aggregator agg = self.aggregator
        with nogil:
            for i in range(self.n_workers):
                total += agg.drain_ring(&self.workers[i].ring)
        return total

    def batch_sched_workers(self) -> int:
        """How many workers run as SCHED_BATCH (see Worker.batch_sched)."""
        cdef int32_t i
        cdef int n = 0
        for i in range(self.n_workers):
            n += <int>hm_load_relaxed(&self.workers[i].batch_sched_on)
        return n

    def finished(self) -> bool:
        cdef int32_t i
        for i in range(self.n_workers):
            if hm_load_acquire(&self.workers[i].finished) == 0:
                return False
        return True

    def join(self, timeout=None) -> None:
        for t in self.threads:
            t.join(timeout)

    def connection_times(self) -> dict:
        """Connect and TLS handshake times (ms summaries), exact once the run ended."""
        cdef int32_t i
        cdef Histogram connect = Histogram(), handshake = Histogram()
        cdef uint64_t handshakes = 0, resumed = 0
        for i in range(self.n_workers):
            hist_add(&connect.h, &self.workers[i].connect_hist)
            hist_add(&handshake.h, &self.workers[i].tls_hist)
            handshakes += hm_load_relaxed(&self.workers[i].tls_handshakes)
            resumed += hm_load_relaxed(&self.workers[i].tls_resumed)
        return {"connect_ms": connect.summary_ms(),
                "tls_ms": handshake.summary_ms(), "tls_handshakes": handshakes,
                "tls_resumed": resumed}

    def counters(self) -> dict:
        """Per-run totals of the worker-side counters (live; exact once finished)."""
        cdef int32_t i
        cdef Worker *w
        cdef uint64_t scheduled = 0, unsent = 0, bytes_out = 0, bytes_in = 0
        cdef uint64_t ring_full = 0, load_end = 0, v
        for i in range(self.n_workers):
            w = &self.workers[i]
            scheduled += hm_load_relaxed(&w.scheduled)
            unsent += hm_load_relaxed(&w.unsent)
            bytes_out += hm_load_relaxed(&w.bytes_out)
            bytes_in += hm_load_relaxed(&w.bytes_in)
            ring_full += hm_load_relaxed(&w.ring_full_waits)
            v = hm_load_relaxed(&w.load_end_ns)
            if v > load_end:
                load_end = v
        return {
            "scheduled": scheduled, "unsent": unsent, "bytes_sent": bytes_out,
            "bytes_received": bytes_in, "ring_full_waits": ring_full,
            "load_end_ns": load_end,
        }


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


def bench_aggregator(int64_t count) -> float:
    """Results per second through the aggregator path on one core: push each result into
    an SPSC ring, pop in batches and record it into the three histograms and counters,
    as drain() does. For bench/micro.py; not used by runs."""
    cdef Ring ring
    cdef Result res
    cdef Aggregator agg = Aggregator()
    cdef int64_t i = 0, t0, t1
    if ring_init(&ring, 1 << 16) != 0:
        raise MemoryError()
    memset(&res, 0, sizeof(Result))
    res.status = 200
    with nogil:
        t0 = clock_ns()
        while i < count:
            res.intended_ns = i * 1000
            res.write_ns = res.intended_ns + (i & 1023)
            res.done_ns = res.write_ns + 50000 + (i & 65535) * 7
            if not ring_push(&ring, &res):
                agg.drain_ring(&ring)
                continue
            i += 1
        agg.drain_ring(&ring)
        t1 = clock_ns()
    ring_free(&ring)
    if agg.results != count:
        raise AssertionError("lost results")
    return count / ((t1 - t0) / 1e9)
