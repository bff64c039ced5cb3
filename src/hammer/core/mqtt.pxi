# The MQTT exchange (3.1.1 or 5): each connection opens a session (CONNECT / CONNACK),
# then a request is one PUBLISH: QoS 0 is done once written (there is no answer), QoS 1 when its
# PUBACK comes, QoS 2 when its PUBCOMP comes (after PUBREC, answered by PUBREL). A
# message is staged in its connection's table and output (stage hook), and the packets
# staged go out together in one write (flush hook): at the end of the loop's pass, or
# once a batch (--batch, at most MQTT_BATCH_BYTES) or the table is full. Once written, a
# QoS 1/2 message waits in the table (W entries, --inflight, capped by an MQTT 5 broker's
# Receive Maximum); the connection takes more while fewer than W wait. In open loop the
# connections take turns: one that wrote goes to the back of the idle list. Packets are
# built in the connection's own buffer (allocated with the engine), never allocated per
# request. Fills MQTT_HOOKS (proto.pxi).


cdef enum:
    MQTT_CONNECT = 1
    MQTT_CONNACK = 2
    MQTT_PUBLISH = 3
    MQTT_PUBACK = 4
    MQTT_PUBREC = 5
    MQTT_PUBREL = 6
    MQTT_PUBCOMP = 7
    MQTT_SUBSCRIBE = 8
    MQTT_SUBACK = 9
    MQTT_PINGRESP = 13
    MQTT_DISCONNECT = 14
    MQTT_SLOT_DIGITS = 20            # room for a slot number in a topic
    MQTT_E2E_BYTES = 24              # --e2e: the payload starts with a magic (4 bytes), the
                                     # publishing connection (4), the message's intended
                                     # time (8, CLOCK_MONOTONIC ns) and its number (8)
    MQTT_E2E_MAGIC = 0x32456d68      # "hmE2" read as a little-endian uint32


cdef struct MqttWorker:              # a worker's MQTT settings (read-only once running)
    size_t connect_at                # where a connection's CONNECT goes in its buffer
    uint32_t batch                   # PUBLISH packets a write carries at most (>= 1)
    uint8_t qos
    uint8_t retain
    const char *topic_head           # the topic before "{slot}" (all of it without one)
    size_t topic_head_len
    const char *topic_tail           # after "{slot}"
    size_t topic_tail_len
    uint8_t topic_has_slot
    const char *payload
    size_t payload_len
    const char *client_prefix        # client ids: PREFIX-WORKER-CONN, unique in the run
    size_t client_prefix_len
    const char *username             # NULL: none
    size_t username_len
    const char *password             # NULL: none
    size_t password_len
    uint16_t keepalive_s
    uint32_t worker_index
    uint8_t version                  # 4: 3.1.1, 5: MQTT 5 (properties, reason codes)
    uint32_t inflight                # W: messages awaiting answers per connection
    uint8_t storm                    # a request is a session: connect, CONNECT, done at
                                     # CONNACK (its return code the status), DISCONNECT
    uint64_t limit_min               # the lowest limit a broker set (relaxed; W if none)
    uint64_t writes                  # relaxed, read after the run: the writes made, and
    uint64_t packets                 # the packets they carried
    # --e2e: stamped payloads, and a subscriber (the worker's service connection)
    uint8_t e2e
    uint32_t conn_base               # this worker's first connection in the run's count
    uint32_t n_workers               # closed loop: message k of worker i is k*n + i
    const char *sub_filter           # the subscription ($share/... with several workers)
    size_t sub_filter_len
    int64_t linger_max_ns            # after the last request, read at most this long
    int64_t linger_start_ns
    int64_t last_receipt_ns          # when the subscriber last received a message
    uint64_t subscribed              # relaxed: 1 once its SUBACK came, 2 if refused
    uint64_t sub_open_at_end         # relaxed: its session was still open at the end


cdef struct MqttHeld:                # a staged or written message awaiting its answer
    int64_t intended_ns              # 0 (closed loop) until written: then its write
    int64_t write_ns                 # 0: staged, not yet written
    int64_t seq                      # its number (--e2e)
    size_t payload_at                # where its payload is in the output (--e2e stamp)
    int64_t deadline_ns
    uint16_t packet_id
    uint8_t late
    uint8_t released                 # QoS 2: its PUBREC came (PUBREL sent), PUBCOMP next


cdef struct MqttConn:                # a connection's MQTT state
    char *buf                        # its output (out_cap bytes), then its CONNECT (owned
                                     # by the engine)
    MqttHeld *held                   # table entries (owned by the engine); c.held used
    uint32_t limit                   # entries it may use: W, or less if the broker's
                                     # Receive Maximum says so; QoS 0: the batch
    uint16_t packet_id               # the last one given
    uint8_t parked                   # cannot take more (table full, or write blocked):
                                     # off the idle list
    uint8_t blocked                  # a write went out in part: the rest awaits EPOLLOUT
    uint8_t in_flush
    uint32_t staged                  # table entries not yet written
    uint32_t out_packets             # packets in buf[:out_len]
    size_t out_len                   # bytes staged for the next write
    size_t out_pos                   # of them, already written (a partial write)
    int64_t active_ns                # when it last wrote a packet (keep-alive pings)
    int64_t seq                      # the request prepared: its number (a storm's client
                                     # id; --e2e: in its payload)
    size_t payload_at                # the request prepared: its payload's offset
    size_t out_cap                   # its output's room (a subscriber's is larger)
    uint8_t subscriber               # the --e2e subscriber (a service connection)
    uint8_t sub_stage                # 0: CONNACK awaited, 1: SUBACK awaited


cdef size_t mqtt_publish_bytes(size_t topic_len, size_t payload_len) noexcept nogil:
    """The largest PUBLISH: the first part of a connection's buffer."""
    return 5 + 2 + topic_len + MQTT_SLOT_DIGITS + 2 + 1 + payload_len


cdef size_t mqtt_batch_packets(size_t publish_bytes, size_t asked) noexcept nogil:
    """PUBLISH packets a write carries: as asked (0: as many as fit), within
    MQTT_BATCH_BYTES, at least one."""
    cdef size_t fit = MQTT_BATCH_BYTES // publish_bytes
    if fit < 1:
        fit = 1
    return fit if asked == 0 or asked > fit else asked


cdef size_t mqtt_out_bytes(size_t publish_bytes, size_t batch, size_t entries) noexcept nogil:
    """A connection's output: a batch of PUBLISH packets, and room for a PUBREL per
    table entry (twice: a blocked write may hold one set while another is made) and a
    PINGREQ."""
    return batch * publish_bytes + 8 * entries + 16


cdef size_t mqtt_connect_bytes(size_t prefix_len, size_t username_len,
                               size_t password_len) noexcept nogil:
    """The largest CONNECT: after the output in a connection's buffer (apart: a request
    prepared before its connection was opened must survive the CONNECT)."""
    return 5 + 11 + 2 + prefix_len + 3 + 2 * MQTT_SLOT_DIGITS + 2 + 4 + username_len + \
        password_len


cdef inline size_t mqtt_put_length(char *p, size_t n) noexcept nogil:
    """MQTT's remaining length (7 bits a byte, low first); the bytes it took."""
    cdef size_t i = 0
    cdef uint8_t b
    while True:
        b = <uint8_t>(n & 0x7F)
        n >>= 7
        if n:
            b |= 0x80
        p[i] = <char>b
        i += 1
        if not n:
            return i


cdef inline size_t mqtt_put_u16(char *p, size_t v) noexcept nogil:
    p[0] = <char>((v >> 8) & 0xFF)
    p[1] = <char>(v & 0xFF)
    return 2


cdef inline size_t mqtt_put_decimal(char *p, uint64_t v) noexcept nogil:
    cdef char digits[MQTT_SLOT_DIGITS]
    cdef size_t n = 0, i
    while True:
        digits[n] = <char>(48 + v % 10)
        v //= 10
        n += 1
        if not v:
            break
    for i in range(n):
        p[i] = digits[n - 1 - i]
    return n


cdef size_t mqtt_build_connect(Worker *w, Conn *c) noexcept nogil:
    """CONNECT (3.1.1, clean session) with this connection's client id, into c's buffer."""
    cdef MqttWorker *m = &w.proto.mqtt
    cdef char body[64]
    cdef char *out = c.proto.mqtt.buf + m.connect_at
    cdef size_t id_len, rem, n = 0
    cdef uint8_t flags = 0x02
    if m.username != NULL:
        flags |= 0x80
    if m.password != NULL:
        flags |= 0x40
    # the client id: PREFIX-WORKER-CONN, in a storm PREFIX-s-SEQ (a new one a session),
    # the --e2e subscriber's PREFIX-e-WORKER
    cdef uint64_t tagged = <uint64_t>(m.worker_index if c.proto.mqtt.subscriber
                                      else c.proto.mqtt.seq)
    cdef bint is_tagged = m.storm or c.proto.mqtt.subscriber
    if is_tagged:
        id_len = m.client_prefix_len + 3 + mqtt_put_decimal(body, tagged)
    else:
        id_len = m.client_prefix_len + 1 + mqtt_put_decimal(body, m.worker_index) + 1 + \
            mqtt_put_decimal(body, <uint64_t>(c - w.conns))
    rem = 10 + 2 + id_len + (1 if m.version == 5 else 0)
    if m.username != NULL:
        rem += 2 + m.username_len
    if m.password != NULL:
        rem += 2 + m.password_len
    out[0] = <char>(MQTT_CONNECT << 4)
    n = 1 + mqtt_put_length(out + 1, rem)
    n += mqtt_put_u16(out + n, 4)
    memcpy(out + n, b"MQTT", 4)
    n += 4
    out[n] = <char>m.version             # protocol level: 4 (3.1.1) or 5
    out[n + 1] = <char>flags
    n += 2
    n += mqtt_put_u16(out + n, m.keepalive_s)
    if m.version == 5:
        out[n] = 0                       # no properties
        n += 1
    n += mqtt_put_u16(out + n, id_len)
    memcpy(out + n, m.client_prefix, m.client_prefix_len)
    n += m.client_prefix_len
    if is_tagged:
        memcpy(out + n, b"-e-" if c.proto.mqtt.subscriber else b"-s-", 3)
        n += 3
        n += mqtt_put_decimal(out + n, tagged)
    else:
        out[n] = 45                      # '-'
        n += 1
        n += mqtt_put_decimal(out + n, m.worker_index)
        out[n] = 45
        n += 1
        n += mqtt_put_decimal(out + n, <uint64_t>(c - w.conns))
    if m.username != NULL:
        n += mqtt_put_u16(out + n, m.username_len)
        memcpy(out + n, m.username, m.username_len)
        n += m.username_len
    if m.password != NULL:
        n += mqtt_put_u16(out + n, m.password_len)
        memcpy(out + n, m.password, m.password_len)
        n += m.password_len
    return n


cdef void mqtt_prepare(Worker *w, Conn *c, int64_t seq) noexcept nogil:
    """PUBLISH number `seq` (its slot in open loop): the topic's {slot} becomes seq. In
    a storm the request is the session itself: nothing to publish."""
    cdef MqttWorker *m = &w.proto.mqtt
    if m.storm:
        c.proto.mqtt.seq = seq
        c.target = 0
        c.wreq = c.proto.mqtt.buf
        c.wlen = 0
        return
    cdef MqttConn *mc = &c.proto.mqtt
    cdef char digits[MQTT_SLOT_DIGITS]
    if c.state == CS_CLOSED:
        mqtt_reset_output(mc)            # a new socket: nothing of the old one's goes out
    cdef char *out = mc.buf + mc.out_len  # after the packets staged for the next write
    cdef size_t slot_len = 0, topic_len, rem, n
    if m.topic_has_slot:
        slot_len = mqtt_put_decimal(digits, <uint64_t>seq)
    topic_len = m.topic_head_len + slot_len + m.topic_tail_len
    rem = 2 + topic_len + (2 if m.qos else 0) + (1 if m.version == 5 else 0) + m.payload_len
    out[0] = <char>((MQTT_PUBLISH << 4) | (m.qos << 1) | m.retain)
    n = 1 + mqtt_put_length(out + 1, rem)
    n += mqtt_put_u16(out + n, topic_len)
    memcpy(out + n, m.topic_head, m.topic_head_len)
    n += m.topic_head_len
    if slot_len:
        memcpy(out + n, digits, slot_len)
        n += slot_len
    memcpy(out + n, m.topic_tail, m.topic_tail_len)
    n += m.topic_tail_len
    if m.qos:
        # ids cycle through 1..65535; W < 65535 entries, so the one given is free
        mc.packet_id = <uint16_t>(mc.packet_id % 65535 + 1)
        n += mqtt_put_u16(out + n, mc.packet_id)
    if m.version == 5:
        out[n] = 0                       # no properties
        n += 1
    memcpy(out + n, m.payload, m.payload_len)
    mc.payload_at = mc.out_len + n       # --e2e: stamped when written
    mc.seq = seq if w.open_loop else seq * m.n_workers + m.worker_index
    n += m.payload_len
    c.target = 0
    c.wreq = out
    c.wlen = n


cdef void mqtt_begin(Worker *w, Conn *c) noexcept nogil:
    pass


cdef inline void mqtt_reset_output(MqttConn *mc) noexcept nogil:
    mc.out_len = 0
    mc.out_pos = 0
    mc.out_packets = 0
    mc.staged = 0
    mc.blocked = 0
    mc.parked = 0
    mc.in_flush = 0


cdef int mqtt_out_append(Worker *w, Conn *c, const char *packet, size_t n) noexcept nogil:
    """A control packet (PUBREL, PINGREQ) joins the next write: 0, or -(error class)."""
    cdef MqttConn *mc = &c.proto.mqtt
    if mc.out_len + n > mc.out_cap:
        if not mc.subscriber or mqtt_write_out(w, c) != 1:
            return -ERR_SOCKET_ERROR     # a subscriber whose acknowledgements cannot go
                                         # (out_cap has room for a publisher's entries)
    memcpy(mc.buf + mc.out_len, packet, n)
    mc.out_len += n
    mc.out_packets += 1
    queue_flush(w, c)
    return 0


cdef inline int mqtt_append_ack(Worker *w, Conn *c, uint8_t head, uint16_t pid) noexcept nogil:
    """A 4-byte acknowledgement (PUBACK, PUBREC, PUBREL, PUBCOMP) of packet pid joins the
    next write: 0, or -(error class)."""
    cdef char ack[4]
    ack[0] = <char>head
    ack[1] = 2
    mqtt_put_u16(ack + 2, pid)
    return mqtt_out_append(w, c, ack, 4)


cdef void mqtt_refresh_deadline(Worker *w, Conn *c) noexcept nogil:
    """With no request being written, the connection's deadline is its oldest waiting
    message's (sweep_timeouts reads c.deadline_ns)."""
    cdef uint32_t i
    cdef int64_t d
    if c.has_request or not c.held:
        return
    d = c.proto.mqtt.held[0].deadline_ns
    for i in range(1, c.held):
        if c.proto.mqtt.held[i].deadline_ns < d:
            d = c.proto.mqtt.held[i].deadline_ns
    c.deadline_ns = d


cdef void mqtt_finish(Worker *w, Conn *c, uint32_t i, int32_t reason,
                      int64_t now) noexcept nogil:
    """Waiting message i got its last answer: record it, free its entry, and take the
    connection back into use if it was full."""
    cdef MqttConn *mc = &c.proto.mqtt
    cdef MqttHeld *e = &mc.held[i]
    mqtt_emit(w, e, reason, ERR_NONE, now)
    c.served += 1
    c.held -= 1
    if i != c.held:
        mc.held[i] = mc.held[c.held]
    mqtt_refresh_deadline(w, c)
    if not w.open_loop:
        queue_flush(w, c)      # closed loop: its flush tops the table up and writes
    elif mc.parked and not mc.blocked:
        mc.parked = 0
        mqtt_take_turn(w, c, now)


cdef inline void mqtt_take_turn(Worker *w, Conn *c, int64_t now) noexcept nogil:
    """Open loop: c can take more; its turn comes after the other idle connections'."""
    push_idle_back(w, c)
    if w.starved:
        dispatch_open(w, now)


cdef int mqtt_get_length(const char *buf, size_t end, size_t *at,
                         size_t *value) noexcept nogil:
    """The variable byte integer at buf[at[0]:end] (a remaining length, a properties
    length) into value, at[0] moved past it. 1: read; 0: more bytes needed; -1: longer
    than 4 bytes (malformed)."""
    cdef size_t i = at[0], v = 0, shift = 0
    cdef uint8_t b
    while True:
        if i >= end:
            return 0
        b = <uint8_t>buf[i]
        v |= <size_t>(b & 0x7F) << shift
        i += 1
        if not (b & 0x80):
            break
        shift += 7
        if shift > 21:
            return -1
    at[0] = i
    value[0] = v
    return 1


cdef int mqtt_next_packet(const char *buf, size_t n, size_t at, uint8_t *ptype,
                          size_t *body, size_t *end) noexcept nogil:
    """The packet at buf[at:]: its type, where its body starts and where it ends.
    1: whole; 0: more bytes needed; -1: malformed."""
    cdef size_t i = at + 1, rem = 0
    cdef int r
    if n - at < 2:
        return 0
    ptype[0] = (<uint8_t>buf[at]) >> 4
    r = mqtt_get_length(buf, n, &i, &rem)
    if r != 1:
        return r
    body[0] = i
    end[0] = i + rem
    return 1 if end[0] <= n else 0


cdef inline uint16_t mqtt_u16(const char *p) noexcept nogil:
    return <uint16_t>(((<uint8_t>p[0]) << 8) | (<uint8_t>p[1]))


cdef inline int32_t mqtt_reason(const char *buf, size_t body, size_t end) noexcept nogil:
    """An acknowledgement's reason code (MQTT 5; 0, success, when it has none)."""
    return <uint8_t>buf[body + 2] if end - body > 2 else 0


cdef int mqtt_on_bytes(Worker *w, Conn *c, const char *buf, size_t n, size_t *used,
                       int64_t now) noexcept nogil:
    """Answers to the waiting messages, in any order. A reason code of 0x80 or more
    (MQTT 5) ends a message as the status the report shows (not ok)."""
    cdef size_t at = 0, body = 0, end = 0
    cdef uint8_t ptype = 0
    cdef int r
    cdef uint32_t i
    cdef uint16_t pid
    cdef int32_t reason
    cdef MqttConn *mc = &c.proto.mqtt
    cdef MqttHeld *e
    cdef uint8_t qos = w.proto.mqtt.qos
    if mc.subscriber:
        return mqtt_sub_on_bytes(w, c, buf, n, used, now)
    while at < n:
        r = mqtt_next_packet(buf, n, at, &ptype, &body, &end)
        if r == 0:
            break
        if r < 0:
            return -ERR_PROTOCOL_ERROR
        at = end
        if ptype == MQTT_PINGRESP:
            c.expecting = 0
            continue
        if end - body < 2:
            return -ERR_PROTOCOL_ERROR
        pid = mqtt_u16(buf + body)
        reason = mqtt_reason(buf, body, end)
        i = 0
        while i < c.held and mc.held[i].packet_id != pid:
            i += 1
        if i == c.held:
            return -ERR_PROTOCOL_ERROR       # an answer to nothing we sent
        e = &mc.held[i]
        if ptype == MQTT_PUBACK and qos == 1:
            mqtt_finish(w, c, i, reason, now)
        elif ptype == MQTT_PUBREC and qos == 2 and not e.released:
            if reason >= 0x80:               # refused at PUBREC: no PUBREL follows
                mqtt_finish(w, c, i, reason, now)
                continue
            r = mqtt_append_ack(w, c, (MQTT_PUBREL << 4) | 0x02, pid)  # at the pass's end
            if r < 0:
                return r
            e.released = 1
        elif ptype == MQTT_PUBCOMP and qos == 2 and e.released:
            mqtt_finish(w, c, i, reason, now)
        else:
            return -ERR_PROTOCOL_ERROR
        if c.state == CS_CLOSED:
            return PROTO_DONE                # a request it went on to send failed
    used[0] = at
    return PROTO_MORE


cdef void mqtt_fail_held(Worker *w, Conn *c, uint8_t error, int64_t now) noexcept nogil:
    cdef uint32_t i
    cdef MqttHeld *e
    for i in range(c.held):
        e = &c.proto.mqtt.held[i]
        mqtt_emit(w, e, 0, error, now)
    c.held = 0
    mqtt_reset_output(&c.proto.mqtt)


cdef int mqtt_on_eof(Worker *w, Conn *c, int64_t now) noexcept nogil:
    """The broker closed the connection with messages unanswered."""
    return -ERR_CLOSED_BEFORE_RESPONSE


cdef int mqtt_receive_maximum(const char *buf, size_t at, size_t end) noexcept nogil:
    """An MQTT 5 CONNACK's properties (from `at`): its Receive Maximum, 0 without one,
    -1 when they are malformed."""
    cdef size_t plen = 0, stop
    cdef uint8_t prop
    cdef int found = 0
    if mqtt_get_length(buf, end, &at, &plen) != 1:
        return -1
    stop = at + plen
    if stop > end:
        return -1
    while at < stop:
        prop = <uint8_t>buf[at]
        at += 1
        if prop in (0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2A):
            at += 1
        elif prop in (0x13, 0x21, 0x22, 0x23):
            if at + 2 > stop:
                return -1
            if prop == 0x21:
                found = mqtt_u16(buf + at)
            at += 2
        elif prop in (0x02, 0x11, 0x18, 0x27):
            at += 4
        elif prop in (0x03, 0x08, 0x09, 0x12, 0x15, 0x16, 0x1A, 0x1C, 0x1F):
            if at + 2 > stop:
                return -1
            at += 2 + mqtt_u16(buf + at)
        elif prop == 0x26:                   # a user property: two strings
            if at + 2 > stop:
                return -1
            at += 2 + mqtt_u16(buf + at)
            if at + 2 > stop:
                return -1
            at += 2 + mqtt_u16(buf + at)
        elif prop == 0x0B:                   # subscription identifier: a varint
            while at < stop and (<uint8_t>buf[at]) & 0x80:
                at += 1
            at += 1
        else:
            return -1
    return found if at == stop else -1


cdef int mqtt_disconnect(Worker *w, Conn *c) noexcept nogil:
    """DISCONNECT (MQTT 5: reason 0, normal disconnection): 0, or -(error class)."""
    cdef char packet[3]
    packet[0] = <char>(MQTT_DISCONNECT << 4)
    packet[1] = 1 if w.proto.mqtt.version == 5 else 0
    packet[2] = 0
    return conn_write_all(w, c, packet, 3 if w.proto.mqtt.version == 5 else 2)


cdef int mqtt_storm_done(Worker *w, Conn *c, uint8_t code, int64_t now) noexcept nogil:
    """A storm's session answered: the request is done, with the CONNACK's return code
    as its status (0 accepted, else refused and not ok); then DISCONNECT and close."""
    if c.has_request:
        emit_result(w, c, code, ERR_NONE, now)
    if code == 0:
        if mqtt_disconnect(w, c) == 0:
            # the broker closes after a DISCONNECT: wait for its FIN, so that the
            # TIME_WAIT is the broker's, not one of our ports
            c.state = CS_AWAIT_FIN
            c.deadline_ns = now + FIN_WAIT_NS
            return PROTO_CLOSED
    conn_close(w, c)
    return PROTO_CLOSED


cdef int mqtt_session_start(Worker *w, Conn *c, int64_t now) noexcept nogil:
    """Send CONNECT: 1 (wait for CONNACK), or -(error class)."""
    cdef size_t n = mqtt_build_connect(w, c)
    cdef const char *packet = c.proto.mqtt.buf + w.proto.mqtt.connect_at
    if w.proto.mqtt.storm and c.has_request:
        # a storm's request went out when its connection was begun: the uncorrected
        # latency is connect + CONNECT + CONNACK, the send lag the generator's own delay
        c.write_ns = c.setup_start_ns
    cdef int r = conn_write_all(w, c, packet, n)
    c.proto.mqtt.active_ns = now
    return r if r < 0 else 1


cdef int mqtt_session_bytes(Worker *w, Conn *c, const char *buf, size_t n, size_t *used,
                            int64_t now) noexcept nogil:
    """CONNACK: PROTO_DONE when the broker accepted the session."""
    cdef size_t body = 0, end = 0
    cdef uint8_t ptype = 0
    cdef int r = mqtt_next_packet(buf, n, 0, &ptype, &body, &end)
    if r == 0:
        used[0] = 0
        return PROTO_MORE
    if c.proto.mqtt.subscriber:
        return mqtt_sub_session_bytes(w, c, buf, n, used, r, ptype, body, end)
    if r < 0 or ptype != MQTT_CONNACK or end - body < 2 or end != n:
        return -ERR_PROTOCOL_ERROR
    used[0] = end
    # 3.1.1: flags, return code; 5: flags, reason code, properties
    if w.proto.mqtt.storm:
        return mqtt_storm_done(w, c, <uint8_t>buf[body + 1], now)
    if buf[body + 1] != 0:
        return -ERR_REFUSED          # the broker refused: bad credentials, client id, ...
    c.proto.mqtt.limit = w.proto.mqtt.inflight if w.proto.mqtt.qos else w.proto.mqtt.batch
    if w.proto.mqtt.version == 5 and end - body > 2 and w.proto.mqtt.qos:
        r = mqtt_receive_maximum(buf, body + 2, end)
        if r < 0:
            return -ERR_PROTOCOL_ERROR
        if 0 < r < <int>c.proto.mqtt.limit:
            c.proto.mqtt.limit = <uint32_t>r
    if c.proto.mqtt.limit < hm_load_relaxed(&w.proto.mqtt.limit_min):
        hm_store_relaxed(&w.proto.mqtt.limit_min, c.proto.mqtt.limit)
    return PROTO_DONE


cdef void mqtt_stage(Worker *w, Conn *c, int64_t now) noexcept nogil:
    """The PUBLISH prepared at buf[out_len:] joins the connection's next write: a table
    entry for it, unwritten. A full batch or table goes at once; otherwise at the end of
    this pass, and meanwhile (open loop) the connection takes the next message due."""
    cdef MqttConn *mc = &c.proto.mqtt
    cdef MqttHeld *e = &mc.held[c.held]
    e.intended_ns = c.intended_ns
    e.write_ns = 0
    e.deadline_ns = now + w.timeout_ns
    e.packet_id = mc.packet_id
    e.late = c.late
    e.released = 0
    e.seq = mc.seq
    e.payload_at = mc.payload_at
    if c.held == 0 or e.deadline_ns < c.deadline_ns:
        c.deadline_ns = e.deadline_ns
    c.held += 1
    c.has_request = 0          # in flight (w.inflight) until written (QoS 0) or answered
    mc.staged += 1
    mc.out_len += c.wlen
    mc.out_packets += 1
    if mc.in_flush:
        return                 # a closed loop's flush topping up: it writes next
    if mc.staged >= w.proto.mqtt.batch or c.held >= mc.limit:
        mqtt_flush(w, c, now)
        return
    queue_flush(w, c)
    if w.open_loop:
        push_idle(w, c)        # on top: the next message due joins this write


cdef int mqtt_write_out(Worker *w, Conn *c) noexcept nogil:
    """Write the staged packets in one write: 1 all out, 0 the rest awaits EPOLLOUT,
    < 0 -(error class). The messages staged are stamped with this write's time; QoS 0
    messages are done once their bytes are all out."""
    cdef MqttConn *mc = &c.proto.mqtt
    cdef int64_t t = clock_ns()
    cdef uint32_t i
    cdef ssize_t n
    cdef MqttHeld *e
    if mc.staged:
        for i in range(c.held):
            e = &mc.held[i]
            if e.write_ns == 0:
                e.write_ns = t
                if e.intended_ns == 0:
                    e.intended_ns = t  # closed loop: measured from its write
                e.deadline_ns = t + w.timeout_ns
                if w.proto.mqtt.e2e:
                    mqtt_put_stamp(w, c, e)
        mc.staged = 0
        mqtt_refresh_deadline(w, c)
    c.wreq = mc.buf
    c.wpos = mc.out_pos
    c.wlen = mc.out_len
    n = conn_write_pending(w, c)
    c.wpos = 0                 # conn_send's own state stays clear
    c.wlen = 0
    if n < 0:
        return <int>n
    if n > 0:
        if not mc.subscriber:          # the figures are the publishers'
            if mc.out_pos == 0:
                counter_add(&w.proto.mqtt.packets, mc.out_packets)
            counter_add(&w.proto.mqtt.writes, 1)
        mc.out_pos += <size_t>n
        mc.active_ns = t
    if mc.out_pos < mc.out_len:
        mc.blocked = 1
        set_mask(w, c, EPOLLIN | EPOLLOUT)
        return 0
    mc.out_pos = 0
    mc.out_len = 0
    mc.out_packets = 0
    mc.blocked = 0
    set_mask(w, c, EPOLLIN)
    if w.proto.mqtt.qos == 0:
        t = clock_ns()
        for i in range(c.held):
            e = &mc.held[i]
            mqtt_emit(w, e, 0, ERR_NONE, t)
        c.served += c.held
        c.held = 0
    return 1


cdef void mqtt_flush(Worker *w, Conn *c, int64_t now) noexcept nogil:
    """Write what is staged. Closed loop: first top the table up (a batch at most), and
    again after each write while the loop wants more. Then the connection goes where it
    belongs: open loop, to the back of the idle list if it can take more."""
    cdef MqttConn *mc = &c.proto.mqtt
    cdef uint32_t before
    cdef int r
    if mc.in_flush or conn_setting_up(c):
        return                 # (closed and reopened since it was queued: not yet)
    if mc.subscriber:
        if mc.out_len and mqtt_write_out(w, c) < 0:
            conn_close(w, c)           # its acknowledgements cannot go: it ends
        return
    mc.in_flush = 1
    while True:
        if not w.open_loop and not mc.blocked:
            while c.held < mc.limit and mc.staged < w.proto.mqtt.batch:
                before = mc.staged
                closed_loop_next(w, c, now)
                if mc.staged == before:
                    break      # the loop wants no more (its end, its budget)
        if mc.out_len == 0:
            break
        r = mqtt_write_out(w, c)
        if r < 0:
            mc.in_flush = 0
            conn_fail(w, c, <uint8_t>(-r), clock_ns())
            return
        if r == 0 or w.open_loop:
            break
    mc.in_flush = 0
    if c.held >= mc.limit or mc.blocked:
        if c.state == CS_IDLE:
            unlink_idle(w, c)
        c.state = CS_BUSY
        mc.parked = 1
        return
    mc.parked = 0
    if w.open_loop:
        if c.state == CS_IDLE:
            unlink_idle(w, c)
        mqtt_take_turn(w, c, now)      # it wrote: the other idle connections go first
    elif c.held == 0 and c.state != CS_IDLE:
        push_idle(w, c)        # closed loop done with it: idle, for the DISCONNECT


cdef void mqtt_session_end(Worker *w, Conn *c) noexcept nogil:
    """The run is over: DISCONNECT, so the broker ends the session cleanly."""
    if c.proto.mqtt.subscriber:
        hm_store_relaxed(&w.proto.mqtt.sub_open_at_end, 1)
    mqtt_disconnect(w, c)


cdef void mqtt_idle_tick(Worker *w, Conn *c, int64_t now) noexcept nogil:
    """Keep an idle session alive: a PINGREQ once half the keep-alive passed without a
    packet from us (the broker drops a session silent for 1.5 keep-alives)."""
    cdef char ping[2]
    cdef int64_t every_ns = <int64_t>w.proto.mqtt.keepalive_s * 500000000
    if every_ns == 0 or c.expecting or c.proto.mqtt.out_len \
            or now - c.proto.mqtt.active_ns < every_ns:
        return
    ping[0] = <char>0xC0
    ping[1] = 0
    if mqtt_out_append(w, c, ping, 2) == 0:  # written at the end of this pass
        c.proto.mqtt.active_ns = now
        c.expecting = 1


cdef inline void mqtt_emit(Worker *w, MqttHeld *e, int32_t status, uint8_t error,
                           int64_t now) noexcept nogil:
    """A message's outcome; with --e2e its number rides along (RF_SEQ)."""
    if w.proto.mqtt.e2e:
        emit_held(w, e.intended_ns, e.write_ns, e.late, <uint32_t>e.seq, status, error, now,
                  RF_SEQ)
    else:
        emit_held(w, e.intended_ns, e.write_ns, e.late, 0, status, error, now)


cdef inline void mqtt_put_stamp(Worker *w, Conn *c, MqttHeld *e) noexcept nogil:
    """--e2e: the payload's first bytes say who sent the message, when it was due, and
    its number (native byte order: the subscriber is this process)."""
    cdef char *p = c.proto.mqtt.buf + e.payload_at
    cdef uint32_t magic = MQTT_E2E_MAGIC
    cdef uint32_t sender = w.proto.mqtt.conn_base + <uint32_t>(c - w.conns)
    memcpy(p, &magic, 4)
    memcpy(p + 4, &sender, 4)
    memcpy(p + 8, &e.intended_ns, 8)
    memcpy(p + 16, &e.seq, 8)


cdef int mqtt_sub_session_bytes(Worker *w, Conn *c, const char *buf, size_t n, size_t *used,
                                int r, uint8_t ptype, size_t body, size_t end) noexcept nogil:
    """The --e2e subscriber's session: CONNACK, then SUBSCRIBE (its filter, at the
    run's QoS), then SUBACK: PROTO_OWN, the connection is the protocol's own."""
    cdef MqttWorker *m = &w.proto.mqtt
    cdef MqttConn *mc = &c.proto.mqtt
    cdef char *out = mc.buf
    cdef size_t k = 0, rem
    cdef uint8_t code
    if r < 0:
        return -ERR_PROTOCOL_ERROR
    used[0] = end
    if mc.sub_stage == 0:
        if ptype != MQTT_CONNACK or end - body < 2:
            return -ERR_PROTOCOL_ERROR
        if buf[body + 1] != 0:
            hm_store_relaxed(&m.subscribed, 2)
            return -ERR_REFUSED
        rem = 2 + (1 if m.version == 5 else 0) + 2 + m.sub_filter_len + 1
        out[0] = <char>((MQTT_SUBSCRIBE << 4) | 0x02)
        k = 1 + mqtt_put_length(out + 1, rem)
        k += mqtt_put_u16(out + k, 1)            # packet id
        if m.version == 5:
            out[k] = 0                           # no properties
            k += 1
        k += mqtt_put_u16(out + k, m.sub_filter_len)
        memcpy(out + k, m.sub_filter, m.sub_filter_len)
        k += m.sub_filter_len
        out[k] = <char>m.qos                     # its maximum QoS: the run's
        k += 1
        r = conn_write_all(w, c, out, k)
        if r < 0:
            return r
        mc.sub_stage = 1
        return PROTO_MORE
    if ptype != MQTT_SUBACK or end - body < 3:
        return -ERR_PROTOCOL_ERROR
    code = <uint8_t>buf[end - 1]                 # the one filter's granted QoS or failure
    if code >= 0x80:
        hm_store_relaxed(&m.subscribed, 2)
        return -ERR_REFUSED
    hm_store_relaxed(&m.subscribed, 1)
    c.state = CS_BUSY
    mc.active_ns = clock_ns()
    return PROTO_OWN


cdef int mqtt_sub_on_bytes(Worker *w, Conn *c, const char *buf, size_t n, size_t *used,
                           int64_t now) noexcept nogil:
    """What the --e2e subscriber received: each PUBLISH becomes a receipt for the
    aggregator (RF_E2E) and is acknowledged at its QoS (PUBACK; PUBREC, then PUBCOMP
    for the broker's PUBREL), all acknowledgements of a read in one write."""
    cdef size_t at = 0, body = 0, end = 0, p, tlen
    cdef uint8_t ptype = 0, qos
    cdef uint16_t pid
    cdef uint32_t magic, sender
    cdef Result res
    cdef int r
    cdef size_t plen
    while at < n:
        r = mqtt_next_packet(buf, n, at, &ptype, &body, &end)
        if r == 0:
            break
        if r < 0:
            return -ERR_PROTOCOL_ERROR
        qos = ((<uint8_t>buf[at]) >> 1) & 0x03
        at = end
        if ptype == MQTT_PINGRESP:
            c.expecting = 0
            continue
        if ptype == MQTT_PUBREL:
            if end - body < 2:
                return -ERR_PROTOCOL_ERROR
            r = mqtt_append_ack(w, c, MQTT_PUBCOMP << 4, mqtt_u16(buf + body))
            if r < 0:
                return r
            continue
        if ptype != MQTT_PUBLISH or end - body < 2:
            return -ERR_PROTOCOL_ERROR
        tlen = mqtt_u16(buf + body)
        p = body + 2 + tlen
        pid = 0
        if qos:
            if p + 2 > end:
                return -ERR_PROTOCOL_ERROR
            pid = mqtt_u16(buf + p)
            p += 2
        if w.proto.mqtt.version == 5:          # skip the properties
            if mqtt_get_length(buf, end, &p, &plen) != 1:
                return -ERR_PROTOCOL_ERROR
            p += plen
        if p > end:
            return -ERR_PROTOCOL_ERROR
        res.done_ns = now
        res.status = <int16_t>w.proto.mqtt.worker_index   # the subscriber: order is per one
        res.error = ERR_NONE
        res.flags = RF_E2E
        res.intended_ns = 0
        res.write_ns = -1                      # not one of ours, unless stamped
        res.target = 0
        if end - p >= MQTT_E2E_BYTES:
            memcpy(&magic, buf + p, 4)
            if magic == MQTT_E2E_MAGIC:
                memcpy(&sender, buf + p + 4, 4)
                memcpy(&res.intended_ns, buf + p + 8, 8)
                memcpy(&res.write_ns, buf + p + 16, 8)
                res.target = sender
        push_result(w, &res)
        w.proto.mqtt.last_receipt_ns = now
        if qos:
            r = mqtt_append_ack(w, c, (MQTT_PUBACK if qos == 1 else MQTT_PUBREC) << 4, pid)
            if r < 0:
                return r
    used[0] = at
    return PROTO_MORE


cdef int64_t mqtt_linger(Worker *w, int64_t now) noexcept nogil:
    """--e2e: after the last request, the subscriber reads on until MQTT_E2E_QUIET_NS
    pass without a message (or linger_max_ns in all): what the broker still delivers
    counts, what it never delivers is lost."""
    cdef MqttWorker *m = &w.proto.mqtt
    cdef int64_t quiet_from
    if w.n_service == 0 or w.conns[w.n_conns].fd < 0 \
            or hm_load_relaxed(w.stop_level) == STOP_NOW:
        return 0
    if m.linger_start_ns == 0:
        m.linger_start_ns = now
    quiet_from = m.last_receipt_ns if m.last_receipt_ns > m.linger_start_ns \
        else m.linger_start_ns
    if now - quiet_from >= MQTT_E2E_QUIET_NS or now - m.linger_start_ns >= m.linger_max_ns:
        return 0
    return now + MQTT_E2E_LOOK_NS


cdef ProtoHooks MQTT_HOOKS
MQTT_HOOKS.prepare = mqtt_prepare
MQTT_HOOKS.begin = mqtt_begin
MQTT_HOOKS.on_bytes = mqtt_on_bytes
MQTT_HOOKS.on_eof = mqtt_on_eof
MQTT_HOOKS.session_start = mqtt_session_start
MQTT_HOOKS.session_bytes = mqtt_session_bytes
MQTT_HOOKS.stage = mqtt_stage
MQTT_HOOKS.flush = mqtt_flush
MQTT_HOOKS.session_end = mqtt_session_end
MQTT_HOOKS.fail_held = mqtt_fail_held
MQTT_HOOKS.idle_tick = mqtt_idle_tick
MQTT_HOOKS.linger = mqtt_linger
