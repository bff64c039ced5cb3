# Every tunable and limit of the core, in one place, with its unit in the name.
# (uvloop keeps its includes/consts.pxi the same way.) Enum members are C ints:
# anything over 2**31 - 1 is a typed module constant below instead.

cdef enum:
    # worker I/O
    RBUF_BYTES = 262144             # one worker's read buffer, shared by its connections
    MAX_EVENTS = 512                # epoll events taken per wait
    CARRY_MIN_BYTES = 1024          # first size of a connection's carry buffer (then doubles)
    MQTT_BATCH_BYTES = 16384        # MQTT: the PUBLISH packets one write carries, at most
                                    # (one packet when a single one is larger)
    MQTT_SUB_OUT_BYTES = 65536      # MQTT --e2e: the subscriber's acknowledgements per write
    MQTT_E2E_QUIET_NS = 500000000   # MQTT --e2e: after the last request, the subscriber
                                    # reads on until this long passes without a message
    MQTT_E2E_LOOK_NS = 50000000     # ... looking this often

    # waits and polls
    FIN_WAIT_NS = 1000000000        # how long a connection that asked the server to close
                                    # waits for its FIN (then closes from our side)
    FINAL_FIN_WAIT_NS = 200000000   # at the end of the run, the same wait for all of them
    RING_FULL_BACKOFF_NS = 50000    # a worker whose result ring is full sleeps this long
    CONNECT_POLL_NS = 10000000      # epoll wait while opening the connections and in the
                                    # final FIN wait
    RECONNECT_BACKOFF_NS = 5000000  # closed loop: pause after a connect error

    START_WAIT_POLL_NS = 50000000   # closed loop waiting for its start: checks stops this often
    END_GUARD_NS = 50000000         # closed loop: in its last 50 ms, a clock read before each
                                    # request keeps every send within the load phase
    MAX_DEFER_NS = 2000000          # open loop: the loop sleeps through response arrivals
                                    # (taking the kernel's receive stamps) when its next
                                    # wake is at most this far off

    # timeouts are swept every 1 % of the shortest timeout, within these bounds
    MIN_SWEEP_INTERVAL_NS = 5000000
    MAX_SWEEP_INTERVAL_NS = 100000000
    SWEEP_DIVISOR = 100

    # the aggregator
    AGG_BATCH = 64                  # results popped from a ring per batch
    STATUS_SLOTS = 1000             # statuses 0..999 are counted one by one
    ERROR_SLOTS = 256               # error codes: Result.error is a uint8_t
    MAX_TARGET_BREAKDOWN = 1024     # targets with their own status counts and histogram
    MAX_SECONDS = 86400             # the per-second time series covers a day at most
    SECOND_HIST_SIGFIGS = 2         # precision of each second's latency histogram
    RING_CAPACITY_DEFAULT = 131072  # results a worker's ring holds (a power of two)
    E2E_ORDER_KEYS = 4194304        # MQTT --e2e: (connection, subscriber) pairs whose
                                    # order is checked: connection * 256 + subscriber

    # HTTP/1.1 response framing
    MAX_HEAD_BYTES = 65536          # a response's status line and header block
    MAX_LINE_BYTES = 4096           # a chunk-size line or a trailer line

    # the pacer
    MAX_SEGMENTS = 256              # segments of a rate profile

    # Python hammers (hits.pxi)
    PY_HITS_BEFORE_YIELD = 64       # closed loop: hits a worker task finishes in a row
                                    # (none of them waiting) before it lets the loop run


cdef int64_t NO_END_NS = 9223372036854775807LL  # a load phase without an end
cdef int64_t HIST_HIGHEST = 3600000000000LL  # histograms track up to one hour, in ns
cdef int HIST_SIGFIGS = 3                    # significant figures of every histogram but seconds'
cdef int64_t E2E_MAX_SEQ = 4294967296LL      # MQTT --e2e: message numbers tracked one by one
                                             # (two bitmaps of up to 512 MiB; beyond, counted
                                             # as untracked)

# for tests and tools that build matching hdrh histograms
HIST_HIGHEST_NS = HIST_HIGHEST
HIST_SIGNIFICANT_FIGURES = HIST_SIGFIGS
SECOND_HIST_SIGNIFICANT_FIGURES = SECOND_HIST_SIGFIGS
TARGET_BREAKDOWN_ROWS = MAX_TARGET_BREAKDOWN
