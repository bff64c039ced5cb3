# The aggregator: drains the workers' result rings into histograms, outcome counters,
# status and error counts, a per-second time series and a per-target breakdown.
# Knows nothing of sockets; results made outside a worker come in through record_one.


cdef struct SecondStats:
    int64_t sent                    # sent, of the requests due during this second
    int64_t completed               # responses completed during this second
    int64_t ok                      # of which ok
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
    and with several targets, a breakdown per target. Mergeable (add), like hdr_add.

    ok policy: a result flagged RF_OK is ok and one flagged RF_NOT_OK is not, whatever
    its status; otherwise its status decides through a table over 0..STATUS_SLOTS-1
    (ok_statuses; None: 200..399), and a status outside the table is not ok.

    Error classes: codes 1..ERR_COUNT-1 are the core's (ERROR_NAMES); register_error
    gives other names codes ERR_COUNT..ERR_OTHER-1, then ERR_OTHER ("other") to all."""

    cdef readonly Histogram latency          # done - intended (coordinated-omission corrected)
    cdef readonly Histogram latency_uncorrected  # done - write
    cdef readonly Histogram send_lag         # write - intended
    cdef public int64_t results, sent, completed, ok, http_error, errors, late
    cdef int64_t status_counts[STATUS_SLOTS]
    cdef int64_t error_counts[ERROR_SLOTS]
    cdef uint8_t ok_table[STATUS_SLOTS]
    cdef list error_names                    # by code (None at 0)
    cdef dict error_codes                    # name -> code
    cdef TargetStats *targets
    cdef uint32_t n_targets                  # with a breakdown (0: a single target)
    cdef const uint32_t[::1] group_view      # keeps target_groups alive
    cdef const uint32_t *group_of            # request index -> breakdown row (NULL: same)
    cdef uint32_t n_grouped
    cdef SecondStats *seconds
    cdef int32_t n_seconds                   # allocated
    cdef readonly int64_t last_done_ns       # the latest result's end (0: none yet)
    cdef public int64_t start_ns             # second 0 starts here (set by Engine.go_at)
    cdef public int64_t end_ns               # the load phase's end (0: no duration)
    # MQTT --e2e: what the subscribers received (RF_E2E results), against what was sent
    cdef readonly bint e2e
    cdef readonly Histogram e2e_latency      # received - intended (the stamp)
    cdef uint64_t *e2e_acked                 # bit per message number: counted ok
    cdef uint64_t *e2e_seen                  # bit per message number: received
    cdef int64_t e2e_words                   # uint64 words of each bitmap
    cdef int64_t *e2e_last                   # per (connection, subscriber): its last number
    cdef int64_t e2e_keys                    # entries of e2e_last
    cdef public int64_t e2e_received, e2e_duplicates, e2e_out_of_order, e2e_foreign
    cdef public int64_t e2e_untracked

    def __cinit__(self, int n_targets=1, ok_statuses=None, target_groups=None):
        """n_targets: rows of the per-target breakdown (one per request; with
        target_groups, an array('I') mapping each request to a row, one per group)."""
        cdef int32_t i
        self.group_of = NULL
        self.n_grouped = 0
        if target_groups is not None and len(target_groups) > 0:
            self.group_view = target_groups
            self.group_of = &self.group_view[0]
            self.n_grouped = <uint32_t>self.group_view.shape[0]
        memset(self.ok_table, 0, sizeof(self.ok_table))
        if ok_statuses is None:
            for i in range(200, 400):
                self.ok_table[i] = 1
        else:
            for s in ok_statuses:
                if 0 <= s < STATUS_SLOTS:
                    self.ok_table[<int>s] = 1
        self.error_names = list(ERROR_NAMES)
        self.error_codes = {name: code for code, name in enumerate(ERROR_NAMES) if name}
        self.error_codes["other"] = ERR_OTHER
        self.latency = Histogram()
        self.latency_uncorrected = Histogram()
        self.send_lag = Histogram()
        memset(self.status_counts, 0, sizeof(self.status_counts))
        memset(self.error_counts, 0, sizeof(self.error_counts))
        self.targets = NULL
        self.n_targets = 0
        self.seconds = NULL
        self.n_seconds = 0
        self.last_done_ns = 0
        self.start_ns = 0
        self.end_ns = 0
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

    def enable_e2e(self) -> None:
        """Track MQTT --e2e receipts (RF_E2E results) and the messages counted ok."""
        self.e2e = True
        self.e2e_latency = Histogram()

    def __dealloc__(self):
        cdef int32_t i
        free(self.e2e_acked)
        free(self.e2e_seen)
        free(self.e2e_last)
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

    cdef int e2e_cover(self, int64_t seq) noexcept nogil:
        """The bitmaps reach message number seq (0), or cannot (-1: untracked)."""
        cdef int64_t words, grown
        cdef uint64_t *a
        cdef uint64_t *b
        if seq < 0 or seq >= E2E_MAX_SEQ:
            return -1
        words = seq // 64 + 1
        if words <= self.e2e_words:
            return 0
        grown = self.e2e_words * 2 if self.e2e_words else 1024
        while grown < words:
            grown *= 2
        a = <uint64_t *>realloc(self.e2e_acked, grown * sizeof(uint64_t))
        if a == NULL:
            return -1
        self.e2e_acked = a
        b = <uint64_t *>realloc(self.e2e_seen, grown * sizeof(uint64_t))
        if b == NULL:
            return -1
        self.e2e_seen = b
        memset(&a[self.e2e_words], 0, (grown - self.e2e_words) * sizeof(uint64_t))
        memset(&b[self.e2e_words], 0, (grown - self.e2e_words) * sizeof(uint64_t))
        self.e2e_words = grown
        return 0

    cdef void record_receipt(self, const Result *r) noexcept nogil:
        """Subscriber r.status received message number r.write_ns from connection
        r.target: its latency from its intended time, duplicates, and its order among
        what this subscriber received from that connection (MQTT orders a connection's
        messages per subscriber)."""
        cdef int64_t seq = r.write_ns
        cdef int64_t grown, i
        cdef int64_t key = <int64_t>r.target * 256 + (r.status & 0xFF)
        cdef int64_t *last
        cdef uint64_t bit
        if seq < 0:
            self.e2e_foreign += 1            # a message on the filter without our stamp
            return
        self.e2e_received += 1
        if self.e2e_cover(seq) == 0:
            bit = (<uint64_t>1) << (seq % 64)
            if self.e2e_seen[seq // 64] & bit:
                self.e2e_duplicates += 1
                return
            self.e2e_seen[seq // 64] |= bit
        else:
            self.e2e_untracked += 1
        hist_record(&self.e2e_latency.h, r.done_ns - r.intended_ns)
        if key >= E2E_ORDER_KEYS:
            return
        if key >= self.e2e_keys:
            grown = self.e2e_keys * 2 if self.e2e_keys else 1024
            while grown <= key:
                grown *= 2
            last = <int64_t *>realloc(self.e2e_last, grown * sizeof(int64_t))
            if last == NULL:
                return
            for i in range(self.e2e_keys, grown):
                last[i] = -1
            self.e2e_last = last
            self.e2e_keys = grown
        if seq < self.e2e_last[key]:
            self.e2e_out_of_order += 1       # after a later message of the same connection
        else:
            self.e2e_last[key] = seq

    cdef void record(self, const Result *r) noexcept nogil:
        cdef TargetStats *t = NULL
        cdef SecondStats *sec
        cdef int32_t status
        cdef bint ok
        cdef uint32_t row = r.target
        if r.flags & RF_E2E:
            self.record_receipt(r)
            return
        if r.flags & RF_SEQ:
            row = 0xFFFFFFFF                 # target holds the message number
        elif self.group_of != NULL and row < self.n_grouped:
            row = self.group_of[row]
        if row < self.n_targets:
            t = &self.targets[row]
        self.results += 1
        if r.done_ns > self.last_done_ns:
            self.last_done_ns = r.done_ns
        if r.write_ns != 0:
            self.sent += 1
            hist_record(&self.send_lag.h, r.write_ns - r.intended_ns)
            if t != NULL:
                t.sent += 1
            # by the second it was due in, so that each second's achieved rate answers its
            # target and a late last send still counts within the load phase
            # a closed-loop request started before the end but written after it (its
            # connect, a preemption) is measured from its write: count it in the last second
            sec = self.second(r.intended_ns if self.end_ns == 0 or r.intended_ns < self.end_ns
                              else self.end_ns - 1)
            if sec != NULL:
                sec.sent += 1
        if r.flags & RF_LATE:
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
        if r.flags & (RF_OK | RF_NOT_OK):
            ok = (r.flags & RF_OK) != 0
        else:
            ok = 0 <= r.status < STATUS_SLOTS and self.ok_table[r.status]
        self.completed += 1
        if ok:
            self.ok += 1
            if sec != NULL:
                sec.ok += 1
            if r.flags & RF_SEQ and self.e2e and self.e2e_cover(r.target) == 0:
                self.e2e_acked[r.target // 64] |= (<uint64_t>1) << (r.target % 64)
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
                   int status=200, int error=0, bint late=False, object ok=None,
                   uint32_t target=0) -> None:
        """Record one result made outside a worker (a Python hammer, tests, benchmarks).
        ok: None lets the status decide (the ok table), True / False overrule it.
        error: ERR_NONE (0), a core class, or a code from register_error."""
        cdef Result r
        if <unsigned int>error >= ERROR_SLOTS:
            raise ValueError(f"error code {error} out of range 0..{ERROR_SLOTS - 1}")
        r.intended_ns = intended_ns
        r.write_ns = write_ns
        r.done_ns = done_ns
        r.status = <int16_t>status
        r.error = <uint8_t>error
        r.flags = RF_LATE if late else 0
        if ok is not None:
            r.flags |= RF_OK if ok else RF_NOT_OK
        r.target = target
        self.record(&r)

    def register_error(self, str name) -> int:
        """The code for an error class by name: the core's own code for a core name, the
        same code for a name seen before, a new one (>= ERR_COUNT) otherwise, and past
        ERR_OTHER - 1 one shared code named "other"."""
        code = self.error_codes.get(name)
        if code is not None:
            return code
        if len(self.error_names) < ERR_OTHER:
            code = len(self.error_names)
            self.error_names.append(name)
        else:
            code = ERR_OTHER
        self.error_codes[name] = code
        return code

    def add(self, Aggregator other) -> None:
        """Add every count of another aggregator to this one: counters, histograms,
        status and error counts (errors matched by name), per-second rows (by index: both
        should share start_ns) and per-target rows (the targets both break down)."""
        cdef int32_t i, k
        cdef uint32_t j
        cdef SecondStats *mine
        cdef SecondStats *theirs
        if other is self:
            raise ValueError("cannot add an aggregator to itself")
        self.results += other.results
        self.sent += other.sent
        self.completed += other.completed
        self.ok += other.ok
        self.http_error += other.http_error
        self.errors += other.errors
        self.late += other.late
        hist_add(&self.latency.h, &other.latency.h)
        hist_add(&self.latency_uncorrected.h, &other.latency_uncorrected.h)
        hist_add(&self.send_lag.h, &other.send_lag.h)
        for k in range(STATUS_SLOTS):
            self.status_counts[k] += other.status_counts[k]
        for k in range(1, ERROR_SLOTS):
            if other.error_counts[k]:
                name = other.error_names[k] if k < len(other.error_names) else "other"
                self.error_counts[self.register_error(name)] += other.error_counts[k]
        if self.start_ns == 0:
            self.start_ns = other.start_ns
            self.end_ns = other.end_ns
        if other.n_seconds and self.reserve_seconds(other.n_seconds) != 0:
            raise MemoryError()
        self.last_done_ns = max(self.last_done_ns, other.last_done_ns)
        for i in range(min(other.n_seconds, self.n_seconds)):
            theirs = &other.seconds[i]
            mine = &self.seconds[i]
            mine.sent += theirs.sent
            mine.completed += theirs.completed
            mine.ok += theirs.ok
            mine.errors += theirs.errors
            if theirs.latency.counts != NULL:
                if mine.latency.counts == NULL and hist_init(
                        &mine.latency, HIST_HIGHEST, SECOND_HIST_SIGFIGS) != 0:
                    raise MemoryError()
                hist_add(&mine.latency, &theirs.latency)
        for j in range(min(self.n_targets, other.n_targets)):
            self.targets[j].sent += other.targets[j].sent
            self.targets[j].completed += other.targets[j].completed
            self.targets[j].ok += other.targets[j].ok
            self.targets[j].http_error += other.targets[j].http_error
            self.targets[j].errors += other.targets[j].errors
            for k in range(STATUS_SLOTS):
                self.targets[j].status_counts[k] += other.targets[j].status_counts[k]
            hist_add(&self.targets[j].latency, &other.targets[j].latency)

    def status(self) -> dict:
        cdef int i
        return {str(i): self.status_counts[i] for i in range(STATUS_SLOTS) if self.status_counts[i]}

    def error_classes(self) -> dict:
        """{name: count} over every error class seen (core and registered)."""
        cdef int i
        out = {self.error_names[i]: self.error_counts[i]
               for i in range(1, len(self.error_names)) if self.error_counts[i]}
        if self.error_counts[<int>ERR_OTHER]:
            out["other"] = self.error_counts[<int>ERR_OTHER]
        return out

    @property
    def seconds_used(self) -> int:
        """Seconds 0 .. seconds_used-1 of the series: to the latest result's (a day at
        most; 0 before any result past start_ns)."""
        if self.start_ns == 0 or self.last_done_ns < self.start_ns:
            return 0
        return min((self.last_done_ns - self.start_ns) // 1000000000 + 1, MAX_SECONDS)

    def second_state(self, int64_t i) -> dict | None:
        """Second i's corrected-latency histogram as Histogram.state() gives it (None
        without completions)."""
        if i < 0 or i >= self.n_seconds or self.seconds[i].latency.counts == NULL \
                or self.seconds[i].latency.total_count == 0:
            return None
        return hist_state(&self.seconds[i].latency)

    def target_latency_state(self, int32_t i) -> dict:
        """Target row i's corrected-latency histogram as Histogram.state() gives it."""
        if i < 0 or i >= self.n_targets:
            raise IndexError(i)
        return hist_state(&self.targets[i].latency)

    def second_row(self, int64_t i) -> dict:
        """Second i of the run: sent, completed, ok, errors and the corrected latency
        p50/p90/p99/max (ms) of that second's completions (None without any)."""
        cdef SecondStats *sec
        if i < 0 or i >= self.n_seconds or i >= MAX_SECONDS:
            return {"sent": 0, "completed": 0, "ok": 0, "errors": 0, "p50_ms": None,
                    "p90_ms": None, "p99_ms": None, "max_ms": None}
        sec = &self.seconds[i]
        has = sec.latency.total_count > 0
        return {
            "sent": sec.sent, "completed": sec.completed, "ok": sec.ok,
            "errors": sec.errors,
            "p50_ms": hist_value_at_percentile(&sec.latency, 50.0) / 1e6 if has else None,
            "p90_ms": hist_value_at_percentile(&sec.latency, 90.0) / 1e6 if has else None,
            "p99_ms": hist_value_at_percentile(&sec.latency, 99.0) / 1e6 if has else None,
            "max_ms": hist_value_at_percentile(&sec.latency, 100.0) / 1e6 if has else None,
        }

    def time_series(self, int64_t seconds) -> list:
        """second_row for each second of the run (0 .. seconds-1)."""
        return [self.second_row(i) for i in range(min(seconds, MAX_SECONDS))]

    def e2e_summary(self) -> dict | None:
        """MQTT --e2e: received (each receipt of a stamped message), unique, duplicates,
        out_of_order (per sending connection), lost (counted ok, never received),
        unacknowledged (received, not counted ok: its answer timed out or failed),
        foreign (without our stamp), untracked (numbers past E2E_MAX_SEQ), and the
        latency from the intended time to the receipt; None without --e2e."""
        cdef int64_t i, lost = 0, unacked = 0
        if not self.e2e:
            return None
        for i in range(self.e2e_words):
            lost += hm_popcount64(self.e2e_acked[i] & ~self.e2e_seen[i])
            unacked += hm_popcount64(self.e2e_seen[i] & ~self.e2e_acked[i])
        return {
            "received": self.e2e_received,
            "unique": self.e2e_received - self.e2e_duplicates,
            "duplicates": self.e2e_duplicates,
            "out_of_order": self.e2e_out_of_order,
            "lost": lost,
            "unacknowledged": unacked,
            "foreign": self.e2e_foreign,
            "untracked": self.e2e_untracked,
            "latency_ms": self.e2e_latency.summary_ms(),
        }

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
