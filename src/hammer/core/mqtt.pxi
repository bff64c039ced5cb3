# The MQTT exchange (3.1.1 or 5): each connection opens a session (CONNECT / CONNACK),
# then a request is one PUBLISH: QoS 0 is done once written (there is no answer), QoS 1 when its
# PUBACK comes, QoS 2 when its PUBCOMP comes (after PUBREC, answered by PUBREL). One
# message in flight per connection. Packets are built in the connection's own buffer
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


cdef struct MqttConn:                # a connection's MQTT state
    char *buf                        # its CONNECT, then each PUBLISH (owned by the engine)
    uint16_t packet_id               # of the PUBLISH in flight
    uint8_t stage                    # QoS 2: 0 until PUBREC, 1 until PUBCOMP
    char pubrel[4]


cdef size_t mqtt_buf_bytes(size_t topic_len, size_t payload_len, size_t prefix_len,
                           size_t username_len, size_t password_len) noexcept nogil:
    """What a connection's buffer must hold: its largest PUBLISH or its CONNECT."""
    cdef size_t publish = 5 + 2 + topic_len + MQTT_SLOT_DIGITS + 2 + payload_len
    cdef size_t connect = 5 + 10 + 2 + prefix_len + 2 * MQTT_SLOT_DIGITS + 2 + 4 + \
        username_len + password_len
    return publish if publish > connect else connect


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
    cdef char *out = c.proto.mqtt.buf
    cdef size_t id_len, rem, n = 0
    cdef uint8_t flags = 0x02
    if m.username != NULL:
        flags |= 0x80
    if m.password != NULL:
        flags |= 0x40
    # the client id: PREFIX-WORKER-CONN
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
    out[n] = 45                          # '-'
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
    """PUBLISH number `seq` (its slot in open loop): the topic's {slot} becomes seq."""
    cdef MqttWorker *m = &w.proto.mqtt
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
    c.proto.mqtt.stage = 0


cdef inline void mqtt_complete(Worker *w, Conn *c, int32_t reason,
                               int64_t now) noexcept nogil:
    emit_result(w, c, reason, ERR_NONE, now)
    c.served += 1
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


cdef int mqtt_done(Worker *w, Conn *c, int32_t reason, size_t at, size_t n,
                   size_t *used, int64_t now) noexcept nogil:
    used[0] = at
    if at < n:
        # a packet we did not ask for follows: the stream cannot be trusted
        emit_result(w, c, reason, ERR_NONE, now)
        conn_close(w, c)
        return PROTO_DONE
    mqtt_complete(w, c, reason, now)
    return PROTO_DONE


cdef int mqtt_on_bytes(Worker *w, Conn *c, const char *buf, size_t n, size_t *used,
                       int64_t now) noexcept nogil:
    """The answers to the PUBLISH in flight. A reason code of 0x80 or more (MQTT 5) ends
    it as the status the report shows (not ok)."""
    cdef size_t at = 0, body = 0, end = 0
    cdef uint8_t ptype = 0
    cdef int r
    cdef int32_t reason
    cdef MqttConn *mc = &c.proto.mqtt
    cdef uint8_t qos = w.proto.mqtt.qos
    while at < n:
        r = mqtt_next_packet(buf, n, at, &ptype, &body, &end)
        if r == 0:
            used[0] = at
            return PROTO_MORE
        if r < 0:
            return -ERR_PROTOCOL_ERROR
        if ptype == MQTT_PINGRESP:
            at = end
            continue
        if end - body < 2 or mqtt_u16(buf + body) != mc.packet_id:
            return -ERR_PROTOCOL_ERROR
        reason = mqtt_reason(buf, body, end)
        at = end
        if ptype == MQTT_PUBACK and qos == 1:
            return mqtt_done(w, c, reason, at, n, used, now)
        if ptype == MQTT_PUBREC and qos == 2 and mc.stage == 0:
            if reason >= 0x80:           # refused at PUBREC: no PUBREL follows
                return mqtt_done(w, c, reason, at, n, used, now)
            mc.pubrel[0] = <char>((MQTT_PUBREL << 4) | 0x02)
            mc.pubrel[1] = 2
            mqtt_put_u16(mc.pubrel + 2, mc.packet_id)
            r = conn_write_all(w, c, mc.pubrel, 4)
            if r < 0:
                return r
            mc.stage = 1
            continue
        if ptype == MQTT_PUBCOMP and qos == 2 and mc.stage == 1:
            return mqtt_done(w, c, reason, at, n, used, now)
        return -ERR_PROTOCOL_ERROR
    used[0] = at
    return PROTO_MORE


cdef int mqtt_on_eof(Worker *w, Conn *c, int64_t now) noexcept nogil:
    if not c.got_bytes:
        return -(ERR_KEEPALIVE_CLOSED if c.served > 0 else ERR_CLOSED_BEFORE_RESPONSE)
    return -ERR_TRUNCATED_BODY


cdef int mqtt_session_start(Worker *w, Conn *c, int64_t now) noexcept nogil:
    """Send CONNECT: 1 (wait for CONNACK), or -(error class)."""
    cdef size_t n = mqtt_build_connect(w, c)
    cdef int r = conn_write_all(w, c, c.proto.mqtt.buf, n)
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
    # 3.1.1: flags, return code; 5: flags, reason code, properties (Receive Maximum, ...:
    # one message in flight needs none of them)
    if buf[body + 1] != 0:
        return -ERR_REFUSED          # the broker refused: bad credentials, client id, ...
    return PROTO_DONE


cdef int mqtt_written(Worker *w, Conn *c, int64_t now) noexcept nogil:
    """QoS 0: a PUBLISH is done once written (nothing answers it)."""
    if w.proto.mqtt.qos != 0:
        return PROTO_MORE
    emit_result(w, c, 0, ERR_NONE, now)
    c.served += 1
    set_mask(w, c, EPOLLIN)
    # back on the idle stack; the dispatch loop under way (or the next) takes it
    push_idle(w, c)
    return PROTO_DONE


cdef void mqtt_session_end(Worker *w, Conn *c) noexcept nogil:
    """The run is over: DISCONNECT, so the broker ends the session cleanly."""
    cdef char packet[3]
    packet[0] = <char>(MQTT_DISCONNECT << 4)
    packet[1] = 1 if w.proto.mqtt.version == 5 else 0
    packet[2] = 0                        # 5: reason code 0, normal disconnection
    conn_write_all(w, c, packet, 3 if w.proto.mqtt.version == 5 else 2)


cdef ProtoHooks MQTT_HOOKS
MQTT_HOOKS.prepare = mqtt_prepare
MQTT_HOOKS.begin = mqtt_begin
MQTT_HOOKS.on_bytes = mqtt_on_bytes
MQTT_HOOKS.on_eof = mqtt_on_eof
MQTT_HOOKS.session_start = mqtt_session_start
MQTT_HOOKS.session_bytes = mqtt_session_bytes
MQTT_HOOKS.written = mqtt_written
MQTT_HOOKS.session_end = mqtt_session_end
