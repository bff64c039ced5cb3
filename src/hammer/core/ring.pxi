# Single-producer / single-consumer ring of request results, worker -> aggregator.
# head is written only by the producer, tail only by the consumer; each publishes its
# index with a release store and reads the other's with an acquire load, and only when
# its cached copy says the ring is full (producer) or empty (consumer). Each side's
# index and cache share a cache line the other side rarely touches.

cdef enum:  # Result.flags
    RF_LATE = 1             # waited for a free connection
    RF_OK = 2               # counted ok whatever the status (the protocol decided)
    RF_NOT_OK = 4           # counted not ok (http_error) whatever the status
    RF_SEQ = 8              # target holds the message's number (low 32 bits), not a
                            # target index (MQTT --e2e: the aggregator marks it sent ok)
    RF_E2E = 16             # not a request: subscriber `status` received message number
                            # write_ns, stamped intended_ns, from connection `target`
                            # (MQTT --e2e); write_ns -1: a message without our stamp


cdef struct Result:         # 32 bytes (checked at import)
    int64_t intended_ns     # when the schedule wanted the request sent
    int64_t write_ns        # when it was written (0: never written)
    int64_t done_ns         # when the response completed or the error was seen
    int16_t status          # status of the final response (HTTP status; 0: none)
    uint8_t error           # error class (ERR_NONE: a complete response)
    uint8_t flags           # RF_*
    uint32_t target         # index of the target (request) in the run's list


if sizeof(Result) != 32:
    raise ImportError(f"hammer._core: sizeof(Result) is {sizeof(Result)}, not 32")

RESULT_LATE = RF_LATE
RESULT_OK = RF_OK
RESULT_NOT_OK = RF_NOT_OK
RESULT_SEQ = RF_SEQ
RESULT_E2E = RF_E2E


cdef struct Ring:
    uint64_t head             # next slot the producer writes; written by the producer only
    uint64_t tail_cache       # producer's last view of tail (re-read only when looking full)
    char _pad_head[48]
    uint64_t tail             # next slot the consumer reads; written by the consumer only
    uint64_t head_cache       # consumer's last view of head (re-read only when looking empty)
    char _pad_tail[48]
    uint64_t mask
    Result *slots


cdef int ring_init(Ring *r, uint64_t capacity_pow2) noexcept nogil:
    r.head = 0
    r.tail = 0
    r.tail_cache = 0
    r.head_cache = 0
    r.mask = capacity_pow2 - 1
    r.slots = <Result *>malloc(capacity_pow2 * sizeof(Result))
    if r.slots == NULL:
        return -1
    # zero and touch every page now (one pass), so the worker never takes a page fault
    # mid-run
    memset(r.slots, 0, capacity_pow2 * sizeof(Result))
    return 0


cdef void ring_free(Ring *r) noexcept nogil:
    free(r.slots)
    r.slots = NULL


cdef inline bint ring_push(Ring *r, const Result *res) noexcept nogil:
    cdef uint64_t head = r.head  # only this thread writes head
    if head - r.tail_cache > r.mask:
        # looks full: only now touch the consumer's cache line
        r.tail_cache = hm_load_acquire(&r.tail)
        if head - r.tail_cache > r.mask:
            return False
    r.slots[head & r.mask] = res[0]
    hm_store_release(&r.head, head + 1)
    return True


cdef inline uint64_t ring_pop(Ring *r, Result *out, uint64_t max_items) noexcept nogil:
    cdef uint64_t tail = r.tail  # only this thread writes tail
    if r.head_cache == tail:
        # looks empty: only now touch the producer's cache line
        r.head_cache = hm_load_acquire(&r.head)
    cdef uint64_t available = r.head_cache - tail
    cdef uint64_t n = available if available < max_items else max_items
    cdef uint64_t i
    for i in range(n):
        out[i] = r.slots[(tail + i) & r.mask]
    hm_store_release(&r.tail, tail + n)
    return n


cdef class ResultRing:
    """A ring with Python access, for tests (wrap-around, full, two threads)."""

    cdef Ring r

    def __cinit__(self, uint64_t capacity):
        if capacity == 0 or (capacity & (capacity - 1)):
            raise ValueError("ring capacity must be a power of two")
        if ring_init(&self.r, capacity) != 0:
            raise MemoryError()

    def __dealloc__(self):
        ring_free(&self.r)

    def push(self, int64_t intended_ns, int32_t status=200) -> bool:
        cdef Result res
        memset(&res, 0, sizeof(Result))
        res.intended_ns = intended_ns
        res.status = status
        return ring_push(&self.r, &res)

    def pop(self, uint64_t max_items=1 << 30) -> list:
        cdef Result buf[256]
        cdef uint64_t n, i
        out = []
        while max_items:
            n = ring_pop(&self.r, buf, 256 if max_items > 256 else max_items)
            if n == 0:
                break
            for i in range(n):
                out.append(buf[i].intended_ns)
            max_items -= n
        return out

    def produce_nogil(self, int64_t count) -> int:
        """Push 0..count-1 in order, spinning while full; returns the full-ring waits."""
        cdef int64_t i = 0, waits = 0
        cdef Result res
        memset(&res, 0, sizeof(Result))
        with nogil:
            while i < count:
                res.intended_ns = i
                if ring_push(&self.r, &res):
                    i += 1
                else:
                    waits += 1
        return waits

    def consume_nogil(self, int64_t count) -> tuple:
        """Pop count items, spinning while empty; returns (items seen, all in order)."""
        cdef int64_t seen = 0
        cdef bint in_order = True
        cdef Result buf[256]
        cdef uint64_t n, i
        with nogil:
            while seen < count:
                n = ring_pop(&self.r, buf, 256)
                for i in range(n):
                    if buf[i].intended_ns != seen:
                        in_order = False
                    seen += 1
        return seen, in_order
