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

cdef enum:
    MAX_HEAD_BYTES = 65536
    MAX_LINE_BYTES = 4096


cdef struct Framer:
    int32_t state
    int32_t status
    int32_t is_head_request
    int32_t keep_alive
    int64_t remaining
    int64_t trailer_bytes
    size_t scan_from          # resume point of the header-end search


cdef inline void framer_reset(Framer *f, int is_head_request) noexcept nogil:
    f.state = FS_HEAD
    f.status = 0
    f.is_head_request = is_head_request
    f.keep_alive = 1
    f.remaining = 0
    f.trailer_bytes = 0
    f.scan_from = 0


cdef inline int lower(int c) noexcept nogil:
    if c >= 65 and c <= 90:
        return c + 32
    return c


cdef inline bint name_is(const char *p, size_t n, const char *lit, size_t lit_n) noexcept nogil:
    cdef size_t i
    if n != lit_n:
        return False
    for i in range(n):
        if lower(<unsigned char>p[i]) != lit[i]:
            return False
    return True


cdef inline bint is_tchar(int c) noexcept nogil:
    # RFC 9110 token characters
    if (c >= 48 and c <= 57) or (c >= 65 and c <= 90) or (c >= 97 and c <= 122):
        return True
    return c in b"!#$%&'*+-.^_`|~"


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


cdef int framer_parse_head(Framer *f, const char *p, size_t n) noexcept nogil:
    """Parse a complete header block p[0:n] (ending in CRLF CRLF). 0 or FR_PROTOCOL."""
    cdef size_t i, line_end, colon, vs, ve
    cdef int minor
    cdef int64_t content_length = -1, v
    cdef bint chunked = False, has_te = False, conn_close = False, conn_keep = False
    # status line: HTTP/1.x SP 3DIGIT [SP reason] CRLF
    if n < 14 or memcmp(p, b"HTTP/1.", 7) != 0:
        return FR_PROTOCOL
    if p[7] < 48 or p[7] > 57 or p[8] != 32:
        return FR_PROTOCOL
    minor = p[7] - 48
    for i in range(9, 12):
        if p[i] < 48 or p[i] > 57:
            return FR_PROTOCOL
    f.status = (p[9] - 48) * 100 + (p[10] - 48) * 10 + (p[11] - 48)
    if f.status < 100:
        return FR_PROTOCOL
    if p[12] != 32 and p[12] != 13:
        return FR_PROTOCOL
    i = 12
    while i < n and p[i] != 10:
        if p[i] == 0 or (p[i] == 13 and p[i + 1] != 10):
            return FR_PROTOCOL
        i += 1
    if i == 0 or p[i - 1] != 13:
        return FR_PROTOCOL
    i += 1
    # header fields until the empty line
    while i < n:
        line_end = i
        while line_end < n and p[line_end] != 10:
            line_end += 1
        if line_end >= n or line_end == i or p[line_end - 1] != 13:
            return FR_PROTOCOL
        if line_end == i + 1:  # the empty line: end of the block
            break
        colon = i
        while colon < line_end - 1 and p[colon] != 58:
            if not is_tchar(<unsigned char>p[colon]):
                return FR_PROTOCOL
            colon += 1
        if colon == i or p[colon] != 58:
            return FR_PROTOCOL
        vs = colon + 1
        ve = line_end - 1
        while vs < ve and (p[vs] == 32 or p[vs] == 9):
            vs += 1
        while ve > vs and (p[ve - 1] == 32 or p[ve - 1] == 9):
            ve -= 1
        for v in range(<int64_t>vs, <int64_t>ve):
            if p[v] == 13 or p[v] == 0:
                return FR_PROTOCOL
        if name_is(p + i, colon - i, b"content-length", 14):
            if content_length >= 0 or ve == vs:
                return FR_PROTOCOL  # duplicate or empty Content-Length
            content_length = 0
            for v in range(<int64_t>vs, <int64_t>ve):
                if p[v] < 48 or p[v] > 57 or content_length > 100000000000000LL:
                    return FR_PROTOCOL
                content_length = content_length * 10 + (p[v] - 48)
        elif name_is(p + i, colon - i, b"transfer-encoding", 17):
            has_te = True
            chunked = value_ends_with_chunked(p + vs, ve - vs)
        elif name_is(p + i, colon - i, b"connection", 10):
            if value_has_token(p + vs, ve - vs, b"close", 5):
                conn_close = True
            if value_has_token(p + vs, ve - vs, b"keep-alive", 10):
                conn_keep = True
        i = line_end + 1
    if has_te and content_length >= 0:
        return FR_PROTOCOL  # both framings: a request-smuggling hazard, refused
    if minor == 0:
        f.keep_alive = 1 if (conn_keep and not conn_close) else 0
    else:
        f.keep_alive = 0 if conn_close else 1
    if f.status < 200 and f.status != 101:
        f.state = FS_HEAD  # interim response: the final one follows
        return 0
    if f.status == 101:
        f.keep_alive = 0
        f.state = FS_DONE
    elif f.is_head_request or f.status == 204 or f.status == 304:
        f.state = FS_DONE
    elif has_te:
        if chunked:
            f.state = FS_CHUNK_SIZE
        else:
            f.state = FS_BODY_EOF
            f.keep_alive = 0
    elif content_length >= 0:
        f.remaining = content_length
        f.state = FS_BODY_LEN if content_length > 0 else FS_DONE
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
            start = f.scan_from
            hit = NULL
            if n - pos >= 4:
                hit = <const char *>memmem(buf + pos + start, n - pos - start, b"\r\n\r\n", 4)
            if hit == NULL:
                if n - pos > MAX_HEAD_BYTES:
                    used[0] = pos
                    return FR_TOO_LARGE
                if n - pos >= 2 and memmem(buf + pos, n - pos, b"\n\n", 2) != NULL:
                    used[0] = pos
                    return FR_PROTOCOL  # bare-LF line endings: the block would never end
                f.scan_from = (n - pos - 3) if n - pos > 3 else 0
                used[0] = pos
                return FR_MORE
            take = <size_t>(hit - (buf + pos)) + 4
            if take > MAX_HEAD_BYTES:
                used[0] = pos
                return FR_TOO_LARGE
            f.scan_from = 0
            r = framer_parse_head(f, buf + pos, take)
            pos += take
            if r != 0:
                used[0] = pos
                return r
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
