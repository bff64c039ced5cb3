# HTTP/1.1 response framing: where a response ends, never what it means beyond that.
# Handles Content-Length, chunked (extensions, trailers), close-delimited bodies,
# HEAD / 1xx / 204 / 304 without body. Fed any segmentation of the byte stream; a
# partial header block or chunk-size line is left unconsumed for the caller to carry.

cdef enum:
    FS_HEAD = 0
    FS_BODY_LEN = 1
    FS_CHUNK_SIZE = 2
    FS_CHUNK_DATA = 3
    FS_CHUNK_CRLF = 4
    FS_TRAILERS = 5
    FS_BODY_EOF = 6
    FS_DONE = 7

cdef enum:
    FR_MORE = 0             # consumed what it could; needs more bytes
    FR_DONE = 1             # a final response is complete
    FR_PROTOCOL = -1        # malformed response
    FR_TOO_LARGE = -2       # header block over MAX_HEAD_BYTES


cdef struct Framer:
    int32_t state
    int32_t status
    uint8_t is_head_request
    uint8_t keep_alive
    int64_t remaining
    int64_t trailer_bytes
    # header block parsed so far (lines are parsed as they complete, once each)
    size_t head_off           # bytes of complete lines parsed (0: status line not yet)
    int64_t content_length    # -1: none seen
    int32_t minor            # HTTP minor version (HTTP/1.minor)
    uint8_t has_te
    uint8_t chunked
    uint8_t conn_close
    uint8_t conn_keep


cdef inline void framer_reset(Framer *f, int is_head_request) noexcept nogil:
    f.state = FS_HEAD
    f.status = 0
    f.is_head_request = is_head_request
    f.keep_alive = 1
    f.remaining = 0
    f.trailer_bytes = 0
    head_reset(f)


cdef inline void head_reset(Framer *f) noexcept nogil:
    f.head_off = 0
    f.content_length = -1
    f.minor = 1
    f.has_te = 0
    f.chunked = 0
    f.conn_close = 0
    f.conn_keep = 0


cdef inline int lower(int c) noexcept nogil:
    if c >= 65 and c <= 90:
        return c + 32
    return c


cdef unsigned char TCHAR[256]  # RFC 9110 token characters (header names)


cdef void init_tchar() noexcept:
    cdef int c
    memset(TCHAR, 0, sizeof(TCHAR))
    for c in range(256):
        if (48 <= c <= 57) or (65 <= c <= 90) or (97 <= c <= 122):
            TCHAR[c] = 1
    for c in b"!#$%&'*+-.^_`|~":
        TCHAR[c] = 1


init_tchar()


cdef inline bint value_has_token(const char *p, size_t n, const char *tok, size_t tok_n) noexcept nogil:
    """Comma-separated list membership, case-insensitive, whitespace-trimmed."""
    cdef size_t i = 0, start, end
    while i < n:
        while i < n and (p[i] == 32 or p[i] == 9 or p[i] == 44):
            i += 1
        start = i
        while i < n and p[i] != 44:
            i += 1
        end = i
        while end > start and (p[end - 1] == 32 or p[end - 1] == 9):
            end -= 1
        if name_is(p + start, end - start, tok, tok_n):
            return True
    return False


cdef inline bint value_ends_with_chunked(const char *p, size_t n) noexcept nogil:
    """Is "chunked" the last of the comma-separated transfer codings?"""
    cdef size_t end = n, start
    while end > 0 and (p[end - 1] == 32 or p[end - 1] == 9):
        end -= 1
    start = end
    while start > 0 and p[start - 1] != 44:
        start -= 1
    while start < end and (p[start] == 32 or p[start] == 9):
        start += 1
    return name_is(p + start, end - start, b"chunked", 7)


cdef inline bint name_is(const char *p, size_t n, const char *lit, size_t lit_n) noexcept nogil:
    # lit is lowercase letters and '-': OR-ing 0x20 folds case and keeps '-'
    cdef size_t i
    if n != lit_n:
        return False
    for i in range(n):
        if (p[i] | 0x20) != lit[i]:
            return False
    return True


cdef int parse_status_line(Framer *f, const char *p, size_t line_end) noexcept nogil:
    """p[0:line_end+1] is the status line: HTTP/1.x SP 3DIGIT [SP reason] CRLF."""
    if line_end < 13 or memcmp(p, b"HTTP/1.", 7) != 0:
        return FR_PROTOCOL
    if p[7] < 48 or p[7] > 57 or p[8] != 32:
        return FR_PROTOCOL
    if not (48 <= p[9] <= 57 and 48 <= p[10] <= 57 and 48 <= p[11] <= 57):
        return FR_PROTOCOL
    f.minor = p[7] - 48
    f.status = (p[9] - 48) * 100 + (p[10] - 48) * 10 + (p[11] - 48)
    if f.status < 100 or (p[12] != 32 and p[12] != 13):
        return FR_PROTOCOL
    # the reason phrase: no CR but the last, no NUL
    if memchr(p + 12, 13, line_end - 12) != p + line_end - 1:
        return FR_PROTOCOL
    if memchr(p + 12, 0, line_end - 12) != NULL:
        return FR_PROTOCOL
    return 0


cdef int parse_field_line(Framer *f, const char *p, size_t line_end) noexcept nogil:
    """p[0:line_end+1] is one header field line ending in CRLF."""
    cdef size_t colon = 0, vs, ve
    cdef int64_t v
    while colon < line_end - 1 and p[colon] != 58:
        if not TCHAR[<unsigned char>p[colon]]:
            return FR_PROTOCOL
        colon += 1
    if colon == 0 or p[colon] != 58:
        return FR_PROTOCOL
    vs = colon + 1
    ve = line_end - 1
    # no bare CR and no NUL in the value
    if memchr(p + vs, 13, line_end - vs) != p + ve or memchr(p + vs, 0, ve - vs) != NULL:
        return FR_PROTOCOL
    while vs < ve and (p[vs] == 32 or p[vs] == 9):
        vs += 1
    while ve > vs and (p[ve - 1] == 32 or p[ve - 1] == 9):
        ve -= 1
    # only three names matter for framing; name_is checks the length first
    if name_is(p, colon, b"content-length", 14):
        if f.content_length >= 0 or ve == vs:
            return FR_PROTOCOL  # duplicate or empty Content-Length
        f.content_length = 0
        for v in range(<int64_t>vs, <int64_t>ve):
            if p[v] < 48 or p[v] > 57 or f.content_length > 100000000000000LL:
                return FR_PROTOCOL
            f.content_length = f.content_length * 10 + (p[v] - 48)
    elif name_is(p, colon, b"transfer-encoding", 17):
        f.has_te = 1
        f.chunked = value_ends_with_chunked(p + vs, ve - vs)
    elif name_is(p, colon, b"connection", 10):
        if value_has_token(p + vs, ve - vs, b"close", 5):
            f.conn_close = 1
        if value_has_token(p + vs, ve - vs, b"keep-alive", 10):
            f.conn_keep = 1
    return 0


cdef int framer_parse_head(Framer *f, const char *p, size_t n, size_t *take) noexcept nogil:
    """Parse the header block at p[0:n], resuming after the lines parsed by earlier
    calls. FR_DONE with *take = block length when complete, FR_MORE, or FR_PROTOCOL."""
    cdef size_t i = f.head_off, line_end
    cdef const char *lf
    cdef int r
    while i < n:
        lf = <const char *>memchr(p + i, 10, n - i)
        if lf == NULL:
            return FR_MORE
        line_end = <size_t>(lf - p)
        if line_end >= MAX_HEAD_BYTES:
            return FR_TOO_LARGE  # judged by size first, whatever the segmentation
        if line_end == i or p[line_end - 1] != 13:
            return FR_PROTOCOL  # a bare LF line ending
        if i == 0:
            r = parse_status_line(f, p, line_end)
        elif line_end == i + 1:  # the empty line: the block is complete
            take[0] = line_end + 1
            r = framer_end_head(f)
            return FR_DONE if r == 0 else r
        else:
            r = parse_field_line(f, p + i, line_end - i)
        if r != 0:
            return r
        i = line_end + 1
        f.head_off = i
    return FR_MORE


cdef int framer_end_head(Framer *f) noexcept nogil:
    """A complete header block: decide how the body (if any) is framed."""
    if f.has_te and f.content_length >= 0:
        return FR_PROTOCOL  # both framings: a request-smuggling hazard, refused
    if f.minor == 0:
        f.keep_alive = 1 if (f.conn_keep and not f.conn_close) else 0
    else:
        f.keep_alive = 0 if f.conn_close else 1
    if f.status < 200 and f.status != 101:
        f.state = FS_HEAD  # interim response: the final one follows
        head_reset(f)
        return 0
    if f.status == 101:
        f.keep_alive = 0
        f.state = FS_DONE
    elif f.is_head_request or f.status == 204 or f.status == 304:
        f.state = FS_DONE
    elif f.has_te:
        if f.chunked:
            f.state = FS_CHUNK_SIZE
        else:
            f.state = FS_BODY_EOF
            f.keep_alive = 0
    elif f.content_length >= 0:
        f.remaining = f.content_length
        f.state = FS_BODY_LEN if f.content_length > 0 else FS_DONE
    else:
        f.state = FS_BODY_EOF
        f.keep_alive = 0
    return 0


cdef inline int hexval(int c) noexcept nogil:
    if c >= 48 and c <= 57:
        return c - 48
    c = lower(c)
    if c >= 97 and c <= 102:
        return c - 87
    return -1


cdef int framer_feed(Framer *f, const char *buf, size_t n, size_t *used) noexcept nogil:
    """Consume bytes of one response from buf[0:n]. Sets *used; returns FR_*."""
    cdef size_t pos = 0, take, i, start
    cdef const char *hit
    cdef int r, d
    cdef int64_t size
    while True:
        if f.state == FS_HEAD:
            r = framer_parse_head(f, buf + pos, n - pos, &take)
            if r == FR_MORE:
                used[0] = pos
                return FR_TOO_LARGE if n - pos > MAX_HEAD_BYTES else FR_MORE
            if r != FR_DONE:
                used[0] = pos
                return r
            pos += take
            if f.state == FS_DONE:
                used[0] = pos
                return FR_DONE
        elif f.state == FS_BODY_LEN or f.state == FS_CHUNK_DATA:
            take = n - pos
            if <int64_t>take > f.remaining:
                take = <size_t>f.remaining
            pos += take
            f.remaining -= take
            if f.remaining > 0:
                used[0] = pos
                return FR_MORE
            if f.state == FS_BODY_LEN:
                f.state = FS_DONE
                used[0] = pos
                return FR_DONE
            f.state = FS_CHUNK_CRLF
        elif f.state == FS_CHUNK_CRLF:
            if n - pos < 2:
                used[0] = pos
                return FR_MORE
            if buf[pos] != 13 or buf[pos + 1] != 10:
                used[0] = pos
                return FR_PROTOCOL
            pos += 2
            f.state = FS_CHUNK_SIZE
        elif f.state == FS_CHUNK_SIZE:
            hit = <const char *>memchr(buf + pos, 10, n - pos)
            if hit == NULL:
                used[0] = pos
                return FR_PROTOCOL if n - pos > MAX_LINE_BYTES else FR_MORE
            take = <size_t>(hit - (buf + pos)) + 1
            if take < 3 or buf[pos + take - 2] != 13 or take > MAX_LINE_BYTES:
                used[0] = pos
                return FR_PROTOCOL
            size = 0
            i = pos
            d = hexval(<unsigned char>buf[i])
            if d < 0:
                used[0] = pos
                return FR_PROTOCOL
            while d >= 0:
                if size > (<int64_t>1 << 56):
                    used[0] = pos
                    return FR_PROTOCOL
                size = size * 16 + d
                i += 1
                d = hexval(<unsigned char>buf[i])
            # after the digits: optional whitespace, then ';' extensions, or the CRLF
            while buf[i] == 32 or buf[i] == 9:
                i += 1
            if buf[i] != 59 and i != pos + take - 2:
                used[0] = pos
                return FR_PROTOCOL
            pos += take
            if size == 0:
                f.state = FS_TRAILERS
            else:
                f.remaining = size
                f.state = FS_CHUNK_DATA
        elif f.state == FS_TRAILERS:
            hit = <const char *>memchr(buf + pos, 10, n - pos)
            if hit == NULL:
                used[0] = pos
                return FR_PROTOCOL if n - pos > MAX_LINE_BYTES else FR_MORE
            take = <size_t>(hit - (buf + pos)) + 1
            if take < 2 or buf[pos + take - 2] != 13 or take > MAX_LINE_BYTES:
                used[0] = pos
                return FR_PROTOCOL
            pos += take
            if take == 2:
                f.state = FS_DONE
                used[0] = pos
                return FR_DONE
            f.trailer_bytes += take
            if f.trailer_bytes > MAX_HEAD_BYTES:
                used[0] = pos
                return FR_TOO_LARGE
        elif f.state == FS_BODY_EOF:
            used[0] = n
            return FR_MORE
        else:  # FS_DONE: nothing more belongs to this response
            used[0] = pos
            return FR_DONE


cdef inline int framer_eof(Framer *f) noexcept nogil:
    """The peer closed: FR_DONE if that ends a close-delimited body, else 0."""
    if f.state == FS_BODY_EOF:
        f.state = FS_DONE
        return FR_DONE
    return 0


cdef class ResponseScanner:
    """Python face of the core framer, for tests: feed bytes, get the verdict.

    feed() returns ("more", used), ("done", used), ("protocol_error", used) or
    ("headers_too_large", used); the caller keeps buf[used:] for the next feed when the
    answer is "more", exactly as the core does.
    """

    cdef Framer f

    def __cinit__(self, bint head_request=False):
        framer_reset(&self.f, head_request)

    def reset(self, bint head_request=False) -> None:
        framer_reset(&self.f, head_request)

    def feed(self, bytes data) -> tuple:
        cdef size_t used = 0
        cdef int r = framer_feed(&self.f, data, len(data), &used)
        if r == FR_MORE:
            return "more", used
        if r == FR_DONE:
            return "done", used
        if r == FR_TOO_LARGE:
            return "headers_too_large", used
        return "protocol_error", used

    def eof(self) -> bool:
        return framer_eof(&self.f) == FR_DONE

    @property
    def status(self) -> int:
        return self.f.status

    @property
    def keep_alive(self) -> bool:
        return bool(self.f.keep_alive)

    @property
    def in_head(self) -> bool:
        return self.f.state == FS_HEAD


def bench_framing(bytes response, int64_t count) -> float:
    """Nanoseconds per response to frame `response` (whole, one read) `count` times,
    without Python in the loop. For bench/micro.py."""
    cdef Framer f
    cdef size_t used
    cdef int64_t i, t0, t1
    cdef const char *p = response
    cdef size_t n = len(response)
    with nogil:
        t0 = clock_ns()
        for i in range(count):
            framer_reset(&f, 0)
            if framer_feed(&f, p, n, &used) != FR_DONE:
                break
        t1 = clock_ns()
    if f.state != FS_DONE:
        raise ValueError("not a complete response")
    return (t1 - t0) / count
