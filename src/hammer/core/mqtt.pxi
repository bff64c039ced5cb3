# The MQTT exchange (3.1.1 or 5): each connection opens a session (CONNECT / CONNACK),
# then a request is one PUBLISH: QoS 0 is done once written (there is no answer), QoS 1 when its
# PUBACK comes, QoS 2 when its PUBCOMP comes (after PUBREC, answered by PUBREL). Once
# written, a QoS 1/2 message waits in its connection's in-flight table (W entries,
# --inflight, capped by an MQTT 5 broker's Receive Maximum), and the connection takes the
# next request while fewer than W wait. Packets are built in the connection's own buffer
# (allocated with the engine), never allocated per request. Fills MQTT_HOOKS (proto.pxi).


cdef enum:
    MQTT_CONNECT = 1
    MQTT_CONNACK = 2
    MQTT_PUBLISH = 3
    MQTT_PUBACK = 4
    MQTT_PUBREC = 5
    MQTT_PUBREL = 6
    MQTT_PUBCOMP = 7
    MQTT_PINGRESP = 13
    MQTT_DISCONNECT = 14
    MQTT_SLOT_DIGITS = 20            # room for a slot number in a topic


cdef struct MqttWorker:              # a worker's MQTT settings (read-only once running)
    size_t connect_at                # where a connection's CONNECT goes in its buffer
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


cdef struct MqttHeld:                # a written message awaiting its answer
    int64_t intended_ns
    int64_t write_ns
    int64_t deadline_ns
    uint16_t packet_id
    uint8_t late
    uint8_t stage                    # QoS 2: 0 until PUBREC, 1 until PUBCOMP


cdef struct MqttConn:                # a connection's MQTT state
    char *buf                        # its CONNECT, then each PUBLISH (owned by the engine)
    MqttHeld *held                   # inflight entries (owned by the engine); c.held used
    uint32_t limit                   # W, or less if the broker's Receive Maximum says so
    uint16_t packet_id               # the last one given
    uint8_t parked                   # all `limit` entries used: off the idle stack
    int64_t active_ns                # when it last wrote a packet (keep-alive pings)
    int64_t seq                      # storm: the request's number (its client id)
    char pubrel[4]


cdef size_t mqtt_publish_bytes(size_t topic_len, size_t payload_len) noexcept nogil:
    """The largest PUBLISH: the first part of a connection's buffer."""
    return 5 + 2 + topic_len + MQTT_SLOT_DIGITS + 2 + 1 + payload_len


cdef size_t mqtt_buf_bytes(size_t topic_len, size_t payload_len, size_t prefix_len,
                           size_t username_len, size_t password_len) noexcept nogil:
    """A connection's buffer: its largest PUBLISH, then its CONNECT (apart: a request
    prepared before its connection was opened must survive the CONNECT)."""
    return mqtt_publish_bytes(topic_len, payload_len) + 5 + 11 + 2 + prefix_len + \
        3 + 2 * MQTT_SLOT_DIGITS + 2 + 4 + username_len + password_len


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
    # the client id: PREFIX-WORKER-CONN, or in a storm PREFIX-s-SEQ (a new one a session)
    if m.storm:
        id_len = m.client_prefix_len + 3 + mqtt_put_decimal(body, <uint64_t>c.proto.mqtt.seq)
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
    if m.storm:
        memcpy(out + n, b"-s-", 3)
        n += 3
        n += mqtt_put_decimal(out + n, <uint64_t>c.proto.mqtt.seq)
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
    cdef char *out = c.proto.mqtt.buf
    cdef char digits[MQTT_SLOT_DIGITS]
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
        c.proto.mqtt.packet_id = <uint16_t>(c.proto.mqtt.packet_id % 65535 + 1)
        n += mqtt_put_u16(out + n, c.proto.mqtt.packet_id)
    if m.version == 5:
        out[n] = 0                       # no properties
        n += 1
    memcpy(out + n, m.payload, m.payload_len)
    n += m.payload_len
    c.target = 0
    c.wreq = out
    c.wlen = n


cdef void mqtt_begin(Worker *w, Conn *c) noexcept nogil:
    pass


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
    emit_held(w, e.intended_ns, e.write_ns, e.late, 0, reason, ERR_NONE, now)
    c.served += 1
    c.held -= 1
    if i != c.held:
        mc.held[i] = mc.held[c.held]
    mqtt_refresh_deadline(w, c)
    if mc.parked:
        mc.parked = 0
        c.state = CS_IDLE
        on_idle(w, c, now)


cdef int mqtt_next_packet(const char *buf, size_t n, size_t at, uint8_t *ptype,
                          size_t *body, size_t *end) noexcept nogil:
    """The packet at buf[at:]: its type, where its body starts and where it ends.
    1: whole; 0: more bytes needed; -1: malformed."""
    cdef size_t i = at + 1, rem = 0, shift = 0
    cdef uint8_t b
    if n - at < 2:
        return 0
    ptype[0] = (<uint8_t>buf[at]) >> 4
    while True:
        if i >= n:
            return 0
        b = <uint8_t>buf[i]
        rem |= <size_t>(b & 0x7F) << shift
        i += 1
        if not (b & 0x80):
            break
        shift += 7
        if shift > 21:
            return -1
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
        elif ptype == MQTT_PUBREC and qos == 2 and e.stage == 0:
            if reason >= 0x80:               # refused at PUBREC: no PUBREL follows
                mqtt_finish(w, c, i, reason, now)
                continue
            mc.pubrel[0] = <char>((MQTT_PUBREL << 4) | 0x02)
            mc.pubrel[1] = 2
            mqtt_put_u16(mc.pubrel + 2, pid)
            r = conn_write_all(w, c, mc.pubrel, 4)
            if r < 0:
                return r
            e.stage = 1
        elif ptype == MQTT_PUBCOMP and qos == 2 and e.stage == 1:
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
        emit_held(w, e.intended_ns, e.write_ns, e.late, 0, 0, error, now)
    c.held = 0
    c.proto.mqtt.parked = 0


cdef int mqtt_on_eof(Worker *w, Conn *c, int64_t now) noexcept nogil:
    """The broker closed the connection with messages unanswered."""
    return -ERR_CLOSED_BEFORE_RESPONSE


cdef int mqtt_receive_maximum(const char *buf, size_t at, size_t end) noexcept nogil:
    """An MQTT 5 CONNACK's properties (from `at`): its Receive Maximum, 0 without one,
    -1 when they are malformed."""
    cdef size_t plen = 0, shift = 0, stop
    cdef uint8_t b, prop
    cdef int found = 0
    while True:
        if at >= end:
            return -1
        b = <uint8_t>buf[at]
        plen |= <size_t>(b & 0x7F) << shift
        at += 1
        if not (b & 0x80):
            break
        shift += 7
        if shift > 21:
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


cdef int mqtt_storm_done(Worker *w, Conn *c, uint8_t code, int64_t now) noexcept nogil:
    """A storm's session answered: the request is done, with the CONNACK's return code
    as its status (0 accepted, else refused and not ok); then DISCONNECT and close."""
    cdef char packet[3]
    if c.has_request:
        emit_result(w, c, code, ERR_NONE, now)
    if code == 0:
        packet[0] = <char>(MQTT_DISCONNECT << 4)
        packet[1] = 1 if w.proto.mqtt.version == 5 else 0
        packet[2] = 0
        if conn_write_all(w, c, packet, 3 if w.proto.mqtt.version == 5 else 2) == 0:
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
    if r < 0 or ptype != MQTT_CONNACK or end - body < 2 or end != n:
        return -ERR_PROTOCOL_ERROR
    used[0] = end
    # 3.1.1: flags, return code; 5: flags, reason code, properties
    if w.proto.mqtt.storm:
        return mqtt_storm_done(w, c, <uint8_t>buf[body + 1], now)
    if buf[body + 1] != 0:
        return -ERR_REFUSED          # the broker refused: bad credentials, client id, ...
    c.proto.mqtt.limit = w.proto.mqtt.inflight
    c.proto.mqtt.parked = 0
    if w.proto.mqtt.version == 5 and end - body > 2:
        r = mqtt_receive_maximum(buf, body + 2, end)
        if r < 0:
            return -ERR_PROTOCOL_ERROR
        if 0 < r < <int>c.proto.mqtt.limit:
            c.proto.mqtt.limit = <uint32_t>r
    if c.proto.mqtt.limit < hm_load_relaxed(&w.proto.mqtt.limit_min):
        hm_store_relaxed(&w.proto.mqtt.limit_min, c.proto.mqtt.limit)
    return PROTO_DONE


cdef int mqtt_written(Worker *w, Conn *c, int64_t now) noexcept nogil:
    """A PUBLISH went out whole. QoS 0: done (nothing answers it). QoS 1/2: it waits in
    the in-flight table, and the connection takes the next request unless the table is
    full (then it is parked until an answer frees an entry)."""
    cdef MqttConn *mc = &c.proto.mqtt
    cdef MqttHeld *e
    mc.active_ns = c.write_ns
    set_mask(w, c, EPOLLIN)
    if w.proto.mqtt.qos == 0:
        emit_result(w, c, 0, ERR_NONE, now)
        c.served += 1
        push_idle(w, c)        # the dispatch loop under way (or the next) takes it
        return PROTO_DONE
    e = &mc.held[c.held]
    e.intended_ns = c.intended_ns
    e.write_ns = c.write_ns
    e.deadline_ns = c.write_ns + w.timeout_ns
    e.packet_id = mc.packet_id
    e.late = c.late
    e.stage = 0
    c.held += 1
    c.has_request = 0          # still in flight (w.inflight) until its answer
    mqtt_refresh_deadline(w, c)
    if c.held >= mc.limit:
        mc.parked = 1          # CS_BUSY with no request: reads go to its answers
        return PROTO_DONE
    if w.open_loop:
        push_idle(w, c)        # no dispatch from here: the loop under way takes it
    else:
        c.state = CS_IDLE
        on_idle(w, c, now)     # closed loop: the next message, at most W deep
    return PROTO_DONE


cdef void mqtt_session_end(Worker *w, Conn *c) noexcept nogil:
    """The run is over: DISCONNECT, so the broker ends the session cleanly."""
    cdef char packet[3]
    packet[0] = <char>(MQTT_DISCONNECT << 4)
    packet[1] = 1 if w.proto.mqtt.version == 5 else 0
    packet[2] = 0                        # 5: reason code 0, normal disconnection
    conn_write_all(w, c, packet, 3 if w.proto.mqtt.version == 5 else 2)


cdef void mqtt_idle_tick(Worker *w, Conn *c, int64_t now) noexcept nogil:
    """Keep an idle session alive: a PINGREQ once half the keep-alive passed without a
    packet from us (the broker drops a session silent for 1.5 keep-alives)."""
    cdef char ping[2]
    cdef int64_t every_ns = <int64_t>w.proto.mqtt.keepalive_s * 500000000
    if every_ns == 0 or c.expecting or now - c.proto.mqtt.active_ns < every_ns:
        return
    ping[0] = <char>0xC0
    ping[1] = 0
    if conn_write_all(w, c, ping, 2) < 0:
        if c.held:
            conn_fail(w, c, ERR_SOCKET_ERROR, now)
        else:
            conn_close(w, c)
        return
    c.proto.mqtt.active_ns = now
    c.expecting = 1


cdef ProtoHooks MQTT_HOOKS
MQTT_HOOKS.prepare = mqtt_prepare
MQTT_HOOKS.begin = mqtt_begin
MQTT_HOOKS.on_bytes = mqtt_on_bytes
MQTT_HOOKS.on_eof = mqtt_on_eof
MQTT_HOOKS.session_start = mqtt_session_start
MQTT_HOOKS.session_bytes = mqtt_session_bytes
MQTT_HOOKS.written = mqtt_written
MQTT_HOOKS.session_end = mqtt_session_end
MQTT_HOOKS.fail_held = mqtt_fail_held
MQTT_HOOKS.idle_tick = mqtt_idle_tick
