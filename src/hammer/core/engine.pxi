# The engine: builds the workers (one OS thread each, GIL released once around the whole
# loop), starts, stops and drains them into its aggregator (aggregator.pxi).

import threading as _threading


cdef class Engine:
    """Runs one load phase. Python drives it: start(), drain() when wake_fd is readable
    or every so often, stop(), join(); nothing here is called per request."""

    cdef Worker *workers
    cdef int32_t n_workers
    cdef uint64_t stop_level
    cdef uint64_t go_flag
    cdef Request *requests
    cdef uint32_t n_requests
    cdef SSL_CTX *ssl_ctx
    cdef list tls_names           # keeps the bytes behind the workers' name pointers alive
    cdef list request_objects     # keeps the bytes behind `requests` alive
    cdef object trace             # keeps a trace's offsets alive (the workers' pacers)
    cdef const uint32_t[::1] slot_targets  # keeps an access log's request order alive
    cdef object threads
    cdef readonly Aggregator aggregator
    cdef readonly int64_t start_ns
    cdef bint started
    cdef int _wake_fd
    cdef bint is_mqtt             # the MQTT kind (else HTTP)
    cdef list mqtt_objects        # keeps the bytes behind the workers' MQTT pointers alive
    cdef size_t mqtt_batch        # PUBLISH packets a write carries at most
    cdef size_t mqtt_entries      # a connection's table entries
    cdef size_t mqtt_out_cap      # a connection's output room
    cdef bytes mqtt_e2e_filter    # --e2e: the subscriber's filter (None: no --e2e)
    cdef int64_t mqtt_e2e_linger_ns

    def __cinit__(self):
        self._wake_fd = -1
        self.workers = NULL
        self.n_workers = 0
        self.requests = NULL
        self.ssl_ctx = NULL

    def __init__(self, *, dict schedule, dict target, dict http=None, dict mqtt=None,
                 int ring_capacity=RING_CAPACITY_DEFAULT):
        """When, where and what, apart (Plan.core_schedule(), RunConfig.core_target()
        and .core_http() build them):

        schedule: rate_num/rate_den (req/s as a fraction; None: closed loop), profile
        (rate segments [(kind, duration_s, r0, r1, period_s)] instead), poisson_seed
        (Poisson arrivals at rate_num/rate_den), n_slots (slots the open-loop schedule
        holds), duration_ns and max_requests (-1: none), timeout_ns, spin_ns,
        quantum_ns (a timer wake for slots at most this often; 0: one per slot), seed,
        threads, connections, batch_sched (closed loop: workers run as SCHED_BATCH),
        shard_index/shard_count (this engine sends slots shard_index + k*shard_count of
        the schedule; absent: all of them).
        target: host, port, unix_path (connect there instead), connect_timeout_ns (-1:
        the timeout), tls (None for plain TCP, else {"insecure", "cafile", "certfile",
        "keyfile", "server_name", "verify_name", "verify_ip"}).
        http: requests [(keep_alive_bytes, close_bytes, is_head)], one per target;
        random_order; max_per_conn (requests per connection, the last asking the server
        to close; 1: a new connection per request; 0: no cap); ok_statuses (None:
        200..399; see Aggregator).
        mqtt (instead of http): ok_statuses (the done-at packet's reason codes counted
        ok), qos, retain, topic (bytes; b"{slot}" in it becomes the
        slot), payload, client_prefix, username and password (None: none), keepalive_s,
        version (4: MQTT 3.1.1, 5: MQTT 5), inflight (messages awaiting answers per
        connection, capped by an MQTT 5 broker's Receive Maximum), storm (a request is a
        new connection and session, done at its CONNACK), batch (PUBLISH packets a write
        carries at most; 0: as many as are staged, within MQTT_BATCH_BYTES)."""
        rate_num, rate_den = schedule["rate_num"], schedule["rate_den"]
        profile, poisson_seed = schedule["profile"], schedule["poisson_seed"]
        self.trace = schedule.get("trace")
        cdef int64_t n_slots = schedule["n_slots"]
        cdef int64_t duration_ns = schedule["duration_ns"]
        cdef int64_t max_requests = schedule["max_requests"]
        cdef int64_t timeout_ns = schedule["timeout_ns"]
        cdef int64_t spin_ns = schedule["spin_ns"]
        cdef int64_t quantum_ns = schedule["quantum_ns"]
        cdef uint64_t seed = schedule["seed"]
        cdef int threads = schedule["threads"]
        cdef int connections = schedule["connections"]
        cdef bint batch_sched = schedule["batch_sched"]
        cdef int64_t shard_index = schedule.get("shard_index", 0)
        cdef int64_t shard_count = schedule.get("shard_count", 1)
        cdef int64_t first_slot, slot_stride
        if shard_count < 1 or not 0 <= shard_index < shard_count:
            raise ValueError(f"shard {shard_index} of {shard_count}")
        cdef str host = target["host"]
        cdef int port = target["port"]
        cdef str unix_path = target["unix_path"]
        cdef int64_t connect_timeout_ns = target["connect_timeout_ns"]
        cdef dict tls = target["tls"]
        if (http is None) == (mqtt is None):
            raise ValueError("give one request kind: http= or mqtt=")
        self.is_mqtt = mqtt is not None
        http = http or {"requests": [(b"", b"", False)], "random_order": False,
                        "max_per_conn": 0, "ok_statuses": None}
        cdef list requests = http["requests"]
        cdef bint random_order = http["random_order"]
        cdef int64_t max_per_conn = http["max_per_conn"]
        ok_statuses = (http if mqtt is None else mqtt)["ok_statuses"]
        slot_targets = http.get("slot_targets")
        if slot_targets is not None:
            self.slot_targets = slot_targets
        cdef size_t mqtt_buf = 0, mqtt_entries = 0
        if mqtt is not None:
            mqtt_buf = self._mqtt_setup(mqtt)
            mqtt_entries = self.mqtt_entries
        cdef int32_t i, j
        cdef Worker *w
        cdef int64_t per, extra
        cdef sockaddr_storage addr
        cdef socklen_t addrlen
        cdef int family
        if threads < 1 or connections < threads:
            raise ValueError("need 1 <= threads <= connections")
        if not 1 <= len(requests) <= 0xFFFFFFFF:
            raise ValueError("need 1 to 4,294,967,295 requests")
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
            self.requests[i].is_head = 1 if is_head else 0
        groups = http.get("target_groups")
        self.aggregator = Aggregator(http.get("n_groups") or self.n_requests, ok_statuses,
                                     groups)
        if self.mqtt_e2e_filter is not None:
            self.aggregator.enable_e2e()
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
            w.epfd = -1
            w.wake_fd = self._wake_fd
            w.open_loop = rate_num is not None or profile is not None or self.trace is not None
            if w.open_loop:
                # slots are dealt round-robin: worker i of T (in shard k of N) sends
                # k + iN, k + iN + TN, ... so the merged stream stays evenly spaced
                first_slot = shard_index + i * shard_count
                slot_stride = <int64_t>threads * shard_count
                w.first_slot = first_slot
                w.slot_stride = slot_stride
                w.n_local_slots = ((n_slots - first_slot + slot_stride - 1) // slot_stride
                                   if n_slots > first_slot else 0)
                pacer_setup(&w.pacer, rate_num, rate_den, profile, poisson_seed, self.trace)
            w.duration_ns = duration_ns
            w.timeout_ns = timeout_ns
            w.connect_timeout_ns = connect_timeout_ns if connect_timeout_ns > 0 else timeout_ns
            w.spin_ns = spin_ns
            w.quantum_ns = quantum_ns
            # plain TCP (stamps need a socket read, not TLS or a Unix socket), open loop
            # with a quantum
            w.defer_reads = (w.open_loop and quantum_ns > 0 and tls is None
                             and unix_path is None
                             # MQTT QoS 2 answers PUBREC, a storm its connects, at once:
                             # their reads cannot wait
                             and not (self.is_mqtt and (mqtt["qos"] == 2
                                                        or mqtt.get("storm"))))
            w.batch_sched = batch_sched and not w.open_loop
            if max_requests >= 0 and not w.open_loop:
                per = max_requests // threads
                extra = 1 if i < max_requests % threads else 0
                w.request_budget = per + extra
            else:
                w.request_budget = -1
            if self.is_mqtt:
                self._mqtt_worker(w, i)
            w.proto_hooks = MQTT_HOOKS if self.is_mqtt else HTTP_HOOKS
            if not self.is_mqtt:
                w.proto.http.requests = self.requests
                w.proto.http.n_requests = self.n_requests
                w.proto.http.random_order = random_order
                w.proto.http.rng = (seed + <uint64_t>i * 0x9E3779B97F4A7C15ULL) | 1
                w.proto.http.max_per_conn = max_per_conn
                if slot_targets is not None and self.slot_targets.shape[0] > 0:
                    w.proto.http.slot_targets = &self.slot_targets[0]
                    w.proto.http.n_slot_targets = self.slot_targets.shape[0]
            if hist_init(&w.connect_hist, HIST_HIGHEST, HIST_SIGFIGS) != 0 or \
                    hist_init(&w.tls.handshake_hist, HIST_HIGHEST, HIST_SIGFIGS) != 0:
                raise MemoryError()
            w.tls.ctx = self.ssl_ctx
            if self.ssl_ctx != NULL:
                sni, vname, vip = self.tls_names
                w.tls.sni = <const char *>sni if sni is not None else NULL
                w.tls.verify_name = <const char *>vname if vname is not None else NULL
                w.tls.verify_ip = <const char *>vip if vip is not None else NULL
            memcpy(&w.addr, &addr, addrlen)
            w.addrlen = addrlen
            w.family = family
            w.n_conns = connections // threads + (1 if i < connections % threads else 0)
            w.n_service = 1 if self.is_mqtt and w.proto.mqtt.e2e else 0
            if self.is_mqtt:
                w.proto.mqtt.conn_base = <uint32_t>(
                    i * (connections // threads) + min(i, connections % threads))
            w.stop_level = &self.stop_level
            w.go_flag = &self.go_flag
            w.conns = <Conn *>calloc(w.n_conns + w.n_service, sizeof(Conn))
            w.flush_list = <int32_t *>malloc((w.n_conns + w.n_service) * sizeof(int32_t))
            w.rbuf = <char *>malloc(RBUF_BYTES)
            w.epfd = epoll_create1(EPOLL_CLOEXEC)
            if w.conns == NULL or w.flush_list == NULL or w.rbuf == NULL or \
                    ring_init(&w.ring, ring_capacity) != 0:
                raise MemoryError()
            if self.is_mqtt:
                for j in range(w.n_conns):
                    w.conns[j].proto.mqtt.buf = <char *>malloc(mqtt_buf)
                    w.conns[j].proto.mqtt.held = <MqttHeld *>calloc(mqtt_entries,
                                                                   sizeof(MqttHeld))
                    w.conns[j].proto.mqtt.limit = w.proto.mqtt.inflight
                    w.conns[j].proto.mqtt.out_cap = self.mqtt_out_cap
                    if w.conns[j].proto.mqtt.buf == NULL or \
                            w.conns[j].proto.mqtt.held == NULL:
                        raise MemoryError()
                for j in range(w.n_conns, w.n_conns + w.n_service):
                    # the --e2e subscriber: room for a read's acknowledgements; its
                    # CONNECT goes at connect_at, before any of them
                    w.conns[j].proto.mqtt.subscriber = 1
                    w.conns[j].proto.mqtt.out_cap = MQTT_SUB_OUT_BYTES
                    w.conns[j].proto.mqtt.buf = <char *>malloc(
                        max(<size_t>MQTT_SUB_OUT_BYTES, mqtt_buf))
                    if w.conns[j].proto.mqtt.buf == NULL:   # (no table: it holds nothing)
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
                for j in range(w.n_conns + w.n_service):
                    free(w.conns[j].carry)
                    if self.is_mqtt:
                        free(w.conns[j].proto.mqtt.buf)
                        free(w.conns[j].proto.mqtt.held)
                free(w.conns)
            free(w.flush_list)
            free(w.rbuf)
            ring_free(&w.ring)
            hist_free(&w.connect_hist)
            hist_free(&w.tls.handshake_hist)
            if w.tls.session != NULL:
                SSL_SESSION_free(w.tls.session)
            if w.epfd >= 0:
                close(w.epfd)
        free(self.workers)
        if self.ssl_ctx != NULL:
            SSL_CTX_free(self.ssl_ctx)

    cdef size_t _mqtt_setup(self, dict mqtt) except 0:
        """Keep the MQTT settings' bytes alive; the size of a connection's buffer (its
        output, then its CONNECT). Sets the batch, the output's room and the table's
        entries (W; QoS 0: the batch)."""
        topic = bytes(mqtt["topic"])
        head, sep, tail = topic.partition(b"{slot}")
        payload = bytes(mqtt["payload"])
        prefix = bytes(mqtt["client_prefix"])
        username, password = mqtt.get("username"), mqtt.get("password")
        if not topic or len(topic) > 65000 or len(payload) > 256 * 1024 * 1024:
            raise ValueError("MQTT topic of 1 to 65,000 bytes, payload up to 256 MiB")
        if mqtt["qos"] not in (0, 1, 2):
            raise ValueError("MQTT QoS is 0, 1 or 2")
        if mqtt.get("version", 4) not in (4, 5):
            raise ValueError("MQTT version 4 (3.1.1) or 5")
        inflight = int(mqtt.get("inflight", 1))
        self.mqtt_objects = [mqtt["qos"], bool(mqtt.get("retain")), head, tail, bool(sep),
                             payload, prefix,
                             bytes(username) if username is not None else None,
                             bytes(password) if password is not None else None,
                             int(mqtt.get("keepalive_s", 0)), int(mqtt.get("version", 4)),
                             inflight, bool(mqtt.get("storm"))]
        if not 1 <= inflight <= 65534:
            raise ValueError("MQTT in-flight messages per connection: 1 to 65,534")
        if not 0 <= int(mqtt.get("batch", 0)) <= 65534:
            raise ValueError("MQTT packets per write: 0 (as many as fit) to 65,534")
        cdef size_t publish = mqtt_publish_bytes(len(head) + len(tail), len(payload))
        self.mqtt_batch = mqtt_batch_packets(publish, int(mqtt.get("batch", 0)))
        self.mqtt_entries = inflight if mqtt["qos"] else self.mqtt_batch
        self.mqtt_out_cap = mqtt_out_bytes(publish, self.mqtt_batch, self.mqtt_entries)
        e2e = mqtt.get("e2e")
        if e2e is not None:
            if mqtt.get("storm") or len(payload) < MQTT_E2E_BYTES:
                raise ValueError(f"MQTT e2e: a payload of {MQTT_E2E_BYTES} bytes or more, "
                                 "no storm")
            self.mqtt_e2e_filter = bytes(e2e["filter"])
            self.mqtt_e2e_linger_ns = int(e2e["linger_max_ns"])
        return self.mqtt_out_cap + mqtt_connect_bytes(len(prefix), len(username or b""),
                                                      len(password or b""))

    cdef void _mqtt_worker(self, Worker *w, int32_t index):
        cdef MqttWorker *m = &w.proto.mqtt
        (qos, retain, head, tail, has_slot, payload, prefix, username, password, keepalive,
         version, inflight, storm) = self.mqtt_objects
        m.qos = qos
        m.retain = retain
        m.topic_head = <const char *>head
        m.topic_head_len = len(head)
        m.topic_tail = <const char *>tail
        m.topic_tail_len = len(tail)
        m.topic_has_slot = has_slot
        m.payload = <const char *>payload
        m.payload_len = len(payload)
        m.client_prefix = <const char *>prefix
        m.client_prefix_len = len(prefix)
        m.username = <const char *>username if username is not None else NULL
        m.username_len = len(username) if username is not None else 0
        m.password = <const char *>password if password is not None else NULL
        m.password_len = len(password) if password is not None else 0
        m.keepalive_s = keepalive
        m.worker_index = index
        m.version = version
        m.inflight = inflight
        m.limit_min = inflight
        m.storm = storm
        w.no_preconnect = storm
        m.batch = <uint32_t>self.mqtt_batch
        m.connect_at = self.mqtt_out_cap
        m.n_workers = <uint32_t>self.n_workers
        if self.mqtt_e2e_filter is not None:
            m.e2e = 1
            m.sub_filter = <const char *>self.mqtt_e2e_filter
            m.sub_filter_len = len(self.mqtt_e2e_filter)
            m.linger_max_ns = self.mqtt_e2e_linger_ns

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
            self.aggregator.end_ns = start_ns + self.workers[0].duration_ns
            self.aggregator.reserve_seconds(self.workers[0].duration_ns // 1000000000 + 2)
        for i in range(self.n_workers):
            self.workers[i].pacer.start_ns = start_ns
        hm_store_release(&self.go_flag, 1)

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
        """Connect and TLS handshake times: ms summaries and the histograms' states (for
        saved reports and merges), exact once the run ended."""
        cdef int32_t i
        cdef Histogram connect = Histogram(), handshake = Histogram()
        cdef uint64_t handshakes = 0, resumed = 0
        for i in range(self.n_workers):
            hist_add(&connect.h, &self.workers[i].connect_hist)
            hist_add(&handshake.h, &self.workers[i].tls.handshake_hist)
            handshakes += hm_load_relaxed(&self.workers[i].tls.handshakes)
            resumed += hm_load_relaxed(&self.workers[i].tls.resumed)
        return {"connect_ms": connect.summary_ms(), "connect_state": connect.state(),
                "tls_ms": handshake.summary_ms(), "tls_state": handshake.state(),
                "tls_handshakes": handshakes, "tls_resumed": resumed}

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
        out = {
            "scheduled": scheduled, "unsent": unsent, "bytes_sent": bytes_out,
            "bytes_received": bytes_in, "ring_full_waits": ring_full,
            "load_end_ns": load_end,
        }
        if self.is_mqtt:
            # the lowest in-flight limit any connection got (W unless a broker's
            # Receive Maximum lowered it)
            out["mqtt_inflight_limit"] = min(
                hm_load_relaxed(&self.workers[i].proto.mqtt.limit_min)
                for i in range(self.n_workers))
            out["mqtt_batch"] = self.mqtt_batch
            if self.mqtt_e2e_filter is not None:
                # 1 once every worker's subscriber has its SUBACK, 2 if one was refused
                states = [hm_load_relaxed(&self.workers[i].proto.mqtt.subscribed)
                          for i in range(self.n_workers)]
                out["e2e_subscribed"] = 2 if 2 in states else min(states)
                out["e2e_open_at_end"] = all(
                    hm_load_relaxed(&self.workers[i].proto.mqtt.sub_open_at_end)
                    for i in range(self.n_workers))
            out["mqtt_writes"] = sum(hm_load_relaxed(&self.workers[i].proto.mqtt.writes)
                                     for i in range(self.n_workers))
            out["mqtt_packets"] = sum(hm_load_relaxed(&self.workers[i].proto.mqtt.packets)
                                      for i in range(self.n_workers))
        return out
