# The seam between the protocol-independent layers (sched.pxi says when a request goes,
# conn.pxi and tls.pxi carry its bytes) and a protocol (http.pxi says what a request is
# and where its response ends). As wrk swaps its `struct sock` for ssl_*, a protocol
# fills a small table of function pointers; sched.pxi and conn.pxi call only those and
# never touch a protocol's structs. Adding a protocol: its own *.pxi with its hooks and
# per-worker / per-connection structs, one member in each union at the top of conn.pxi.

cdef struct Worker      # core/sched.pxi
cdef struct Conn        # core/conn.pxi


cpdef enum ErrorClass:  # error classes; ERROR_NAMES[code] is the member's name without
                        # ERR_, lower case, and README.md lists them (tests/unit check it)
    ERR_NONE = 0
    # the transport's (any protocol)
    ERR_CONNECT_REFUSED = 1
    ERR_CONNECT_ERROR = 2
    ERR_CONNECT_TIMEOUT = 3
    ERR_TIMEOUT = 4
    ERR_RESET = 5
    ERR_CLOSED_BEFORE_RESPONSE = 6
    ERR_KEEPALIVE_CLOSED = 7
    # HTTP's
    ERR_TRUNCATED_HEADERS = 8
    ERR_TRUNCATED_BODY = 9
    ERR_PROTOCOL_ERROR = 10
    ERR_HEADERS_TOO_LARGE = 11
    # the transport's again
    ERR_SOCKET_ERROR = 12
    ERR_CANCELLED = 13
    ERR_TLS = 14
    # a session protocol's (MQTT)
    ERR_REFUSED = 15      # the server refused the session (MQTT CONNACK return code)
    ERR_COUNT = 16        # the core's classes; Aggregator.register_error adds others
    ERR_OTHER = 255       # the shared code of registered names past the 255th: "other"

ERROR_NAMES = (
    None, "connect_refused", "connect_error", "connect_timeout", "timeout", "reset",
    "closed_before_response", "keepalive_closed", "truncated_headers", "truncated_body",
    "protocol_error", "headers_too_large", "socket_error", "cancelled", "tls", "refused",
)


cdef enum:  # what on_bytes and on_eof return; a negative value is -(error class)
    PROTO_MORE = 0      # the response needs more bytes: those past *used are carried
    PROTO_DONE = 1      # the exchange is over and handled (the connection was reused,
                        # idled or closed by the protocol)
    PROTO_CLOSED = 2    # session_bytes: the request ended with the session and the
                        # protocol closed the connection (an MQTT connection storm)
    PROTO_OWN = 3       # session_bytes: the session is open and the protocol keeps the
                        # connection for itself (a service connection: MQTT's --e2e
                        # subscriber), never for requests


# prepare: choose what to send as request number `seq` (the slot, or the worker's count
#   in closed loop): set c.target, c.wreq and c.wlen. Never allocates.
ctypedef void (*proto_prepare_fn)(Worker *w, Conn *c, int64_t seq) noexcept nogil
# begin: the request's first byte is about to be written: reset the response parser.
ctypedef void (*proto_begin_fn)(Worker *w, Conn *c) noexcept nogil
# on_bytes: buf[:n] arrived for the request in flight (after any carried bytes).
ctypedef int (*proto_on_bytes_fn)(Worker *w, Conn *c, const char *buf, size_t n,
                                  size_t *used, int64_t now) noexcept nogil
# on_eof: the peer closed the stream while the request was in flight.
ctypedef int (*proto_on_eof_fn)(Worker *w, Conn *c, int64_t now) noexcept nogil
# Optional (NULL: none). session_start: a connection is up (and through TLS): open the
#   protocol's session (MQTT CONNECT); 1 when an answer is awaited (the connection waits
#   in CS_SESSION), 0 when none is needed, < 0 -(error class).
ctypedef int (*proto_session_start_fn)(Worker *w, Conn *c, int64_t now) noexcept nogil
# session_bytes: bytes arrived in CS_SESSION: PROTO_DONE once the session is open.
ctypedef int (*proto_session_bytes_fn)(Worker *w, Conn *c, const char *buf, size_t n,
                                       size_t *used, int64_t now) noexcept nogil
# stage: a protocol that writes several requests at once takes the prepared request
#   into its own output instead of its being written now (conn_send calls it for a new
#   request); it records the request, queues c for its flush (queue_flush) and decides
#   whether c takes more (idle) or not. Its writes happen in flush.
ctypedef void (*proto_stage_fn)(Worker *w, Conn *c, int64_t now) noexcept nogil
# flush: write what c's protocol has staged (called once per loop pass for each queued
#   connection, and when its socket turns writable after a partial write).
ctypedef void (*proto_flush_fn)(Worker *w, Conn *c, int64_t now) noexcept nogil
# session_end: the run is over and c is idle with its session open: end it (DISCONNECT).
ctypedef void (*proto_session_end_fn)(Worker *w, Conn *c) noexcept nogil
# fail_held: c fails while the protocol holds c.held written requests awaiting answers
#   (MQTT with several messages in flight): end each in `error`, and set c.held to 0.
ctypedef void (*proto_fail_held_fn)(Worker *w, Conn *c, uint8_t error,
                                    int64_t now) noexcept nogil
# linger: the last request is done: 0 to end the loop, or a time (ns) to look again
#   while the protocol still wants its connections (MQTT --e2e: the subscriber drains).
ctypedef int64_t (*proto_linger_fn)(Worker *w, int64_t now) noexcept nogil
# idle_tick: the timeouts sweep found c idle with its session open (MQTT: a PINGREQ when
#   the keep-alive is due; the answer is awaited with c.expecting set).
ctypedef void (*proto_idle_tick_fn)(Worker *w, Conn *c, int64_t now) noexcept nogil


cdef struct ProtoHooks:
    proto_prepare_fn prepare
    proto_begin_fn begin
    proto_on_bytes_fn on_bytes
    proto_on_eof_fn on_eof
    proto_session_start_fn session_start
    proto_session_bytes_fn session_bytes
    proto_stage_fn stage
    proto_flush_fn flush
    proto_session_end_fn session_end
    proto_fail_held_fn fail_held
    proto_idle_tick_fn idle_tick
    proto_linger_fn linger
