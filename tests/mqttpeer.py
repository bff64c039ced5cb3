"""A real MQTT broker for the tests (mosquitto, started on a free 127.0.0.1 port with a
private config) and a subscriber that counts what the broker delivered: the server side
that every MQTT test compares with hammer's own counts."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

from servers import free_port


def find_mosquitto() -> str | None:
    found = shutil.which("mosquitto")
    if found:
        return found
    return "/usr/sbin/mosquitto" if os.access("/usr/sbin/mosquitto", os.X_OK) else None


class Broker:
    """mosquitto on 127.0.0.1:port, Nagle off (its default would put PUBACKs behind it)."""

    def __init__(self, binary: str, directory: Path, *, anonymous: bool = True,
                 max_inflight: int = 0, tls: tuple[str, str] | None = None) -> None:
        """tls: (certificate, key) PEM files for a second, TLS listener on tls_port."""
        self.port = free_port()
        self.url = f"mqtt://127.0.0.1:{self.port}"
        conf = directory / "mosquitto.conf"
        tls_listener = ""
        self.tls_port = 0
        if tls is not None:
            self.tls_port = free_port()
            tls_listener = (f"listener {self.tls_port} 127.0.0.1\n"
                            f"certfile {tls[0]}\nkeyfile {tls[1]}\n")
        conf.write_text(
            # started as root, mosquitto would run as its own user, which cannot read
            # the tests' private directories (the TLS files); as anyone else, no change
            "user root\n"
            "per_listener_settings false\n"
            f"allow_anonymous {'true' if anonymous else 'false'}\n"
            "set_tcp_nodelay true\n"
            f"max_inflight_messages {max_inflight}\n"
            "max_queued_messages 0\n"
            "persistence false\n"
            "sys_interval 1\n"
            f"listener {self.port} 127.0.0.1\n"
            + tls_listener)
        self.log = directory / "mosquitto.log"
        self._command = [binary, "-c", str(conf)]
        self._start()

    def _start(self) -> None:
        self._log_file = open(self.log, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(self._command, stdout=self._log_file,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"mosquitto did not start: {self.log.read_text(errors='replace')}")

    def restart(self, pause_s: float = 0.2) -> None:
        """Stop the broker (every session drops) and start it again on the same port."""
        self.stop()
        time.sleep(pause_s)
        self._start()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log_file.close()


def _packet(ptype: int, flags: int, body: bytes) -> bytes:
    n, length = len(body), b""
    while True:
        b = n & 0x7F
        n >>= 7
        length += bytes([b | (0x80 if n else 0)])
        if not n:
            return bytes([(ptype << 4) | flags]) + length + body


def _str(s: str) -> bytes:
    return struct.pack(">H", len(s.encode())) + s.encode()


class Subscriber:
    """Subscribes to a topic filter at QoS 1 and counts every PUBLISH the broker delivers
    (acknowledging each), by topic."""

    def __init__(self, port: int, topic_filter: str) -> None:
        self.topics: Counter[str] = Counter()
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.sendall(_packet(1, 0, _str("MQTT") + bytes([4, 2]) + struct.pack(">H", 0)
                                  + _str(f"counter-{os.getpid()}-{id(self)}")))
        self._buf = b""
        ptype, _, _ = self._read_packet()
        assert ptype == 2, "no CONNACK"
        self.sock.sendall(_packet(8, 2, struct.pack(">H", 1) + _str(topic_filter) + b"\x01"))
        ptype, _, _ = self._read_packet()
        assert ptype == 9, "no SUBACK"
        self.sock.settimeout(0.2)
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @property
    def count(self) -> int:
        return sum(self.topics.values())

    def _read_packet(self) -> tuple[int, int, bytes]:
        while True:
            if len(self._buf) >= 2:
                n, shift, i = 0, 0, 1
                while i < len(self._buf):
                    b = self._buf[i]
                    n |= (b & 0x7F) << shift
                    i += 1
                    if not b & 0x80:
                        break
                    shift += 7
                else:
                    i = -1
                if i > 0 and len(self._buf) >= i + n:
                    head, body = self._buf[0], self._buf[i:i + n]
                    self._buf = self._buf[i + n:]
                    return head >> 4, head & 0x0F, body
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("broker closed")
            self._buf += chunk

    def _run(self) -> None:
        while not self._stop:
            try:
                ptype, flags, body = self._read_packet()
            except TimeoutError:
                continue
            except OSError:
                return
            if ptype != 3:
                continue
            (tlen,) = struct.unpack(">H", body[:2])
            self.topics[body[2:2 + tlen].decode()] += 1
            if (flags >> 1) & 0x03:
                (pid,) = struct.unpack(">H", body[2 + tlen:4 + tlen])
                self.sock.sendall(_packet(4, 0, struct.pack(">H", pid)))

    def wait_for(self, n: int, timeout: float = 10.0) -> int:
        """The count once it reaches n (or the timeout passes), after a settling pause
        that would show any message beyond n."""
        deadline = time.monotonic() + timeout
        while self.count < n and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)
        return self.count

    def close(self) -> None:
        self._stop = True
        self._thread.join(5)
        self.sock.close()

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def sys_counter(port: int, topic: str, expected: int, timeout_s: float = 10.0) -> int:
    """The broker's own counter `topic` ($SYS/..., published every sys_interval) once
    it reads `expected`, or its last value when timeout_s passes first (mosquitto's lag
    by up to a sys_interval and more)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout_s)
    with sock:
        sock.sendall(_packet(1, 0, _str("MQTT") + bytes([4, 2]) + struct.pack(">H", 0)
                             + _str(f"sys-{os.getpid()}-{time.monotonic_ns()}")))
        sock.sendall(_packet(8, 2, struct.pack(">H", 1) + _str(topic) + b"\x00"))
        buf, value = b"", -1
        deadline = time.monotonic() + timeout_s
        while value != expected and time.monotonic() < deadline:
            sock.settimeout(max(deadline - time.monotonic(), 0.01))
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            buf += chunk
            at = 0
            while (parsed := _split_packet(buf, at)) is not None:
                head, body, at = parsed
                if head >> 4 == 3:
                    (tlen,) = struct.unpack(">H", body[:2])
                    value = int(body[2 + tlen:])
            buf = buf[at:]
        return value


class CountingBroker:
    """A minimal MQTT 3.1.1 broker of our own on 127.0.0.1, port 0: it accepts every
    session and acknowledges every PUBLISH (PUBACK; PUBREC, then PUBCOMP for PUBREL), and
    counts the PUBLISH packets of each connection, parsing every byte (anything malformed
    is recorded in `errors`). `stall_s` makes each connection stop reading for that long
    after its CONNACK, so a fast publisher fills the socket buffers: its writes go out in
    part and must resume when the socket drains.

    A SUBSCRIBE (any filter) makes a connection a subscriber: every PUBLISH is delivered
    to it at QoS 0, with faults on purpose, per publishing connection: `drop_every` N
    drops each Nth message, `duplicate_every` N delivers each Nth twice, `swap` delivers
    each pair of messages in reverse order (a lone last one at its DISCONNECT).
    `refuse_subscribe` answers every SUBSCRIBE with the failure code 0x80."""

    def __init__(self, *, stall_s: float = 0.0, drop_every: int = 0,
                 duplicate_every: int = 0, swap: bool = False,
                 refuse_subscribe: bool = False) -> None:
        self.stall_s = stall_s
        self.refuse_subscribe = refuse_subscribe
        self.drop_every = drop_every
        self.duplicate_every = duplicate_every
        self.swap = swap
        self.subscribers: list[socket.socket] = []
        self.per_connection: list[int] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self.port = self._listener.getsockname()[1]
        self.url = f"mqtt://127.0.0.1:{self.port}"
        self._threads: list[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.per_connection)

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                index = len(self.per_connection)
                self.per_connection.append(0)
            t = threading.Thread(target=self._serve, args=(conn, index), daemon=True)
            self._threads.append(t)
            t.start()

    def _serve(self, conn: socket.socket, index: int) -> None:
        buf = b""
        connected = False
        seen = 0                      # PUBLISH packets from this connection
        held: list[bytes] = []        # swap: the first of a pair
        with conn:
            while True:
                try:
                    chunk = conn.recv(1 << 20)
                except OSError:
                    return
                if not chunk:
                    return
                buf += chunk
                replies, published, at = [], 0, 0
                while True:
                    parsed = _split_packet(buf, at)
                    if parsed is None:
                        break
                    head, body, at = parsed
                    ptype, qos = head >> 4, (head >> 1) & 0x03
                    if ptype == 1 and not connected:
                        connected = True
                        replies.append(bytes([0x20, 2, 0, 0]))
                    elif ptype == 3 and connected:
                        published += 1
                        seen += 1
                        (tlen,) = struct.unpack(">H", body[:2])
                        if qos:
                            pid = body[2 + tlen:4 + tlen]
                            replies.append(bytes([0x40 if qos == 1 else 0x50, 2]) + pid)
                        self._deliver(body[:2 + tlen] + body[2 + tlen + (2 if qos else 0):],
                                      seen, held)
                    elif ptype == 8 and connected:
                        if not self.refuse_subscribe:
                            with self._lock:
                                self.subscribers.append(conn)
                        replies.append(bytes([0x90, 3]) + body[:2]
                                       + (b"\x80" if self.refuse_subscribe else b"\x00"))
                    elif ptype == 6 and connected:
                        replies.append(bytes([0x70, 2]) + body[:2])
                    elif ptype == 12:
                        replies.append(bytes([0xD0, 0]))
                    elif ptype == 14:
                        with self._lock:
                            self.per_connection[index] += published
                        for packet in held:
                            self._send_to_subscribers(packet)
                        return
                    else:
                        with self._lock:
                            self.errors.append(f"connection {index}: packet type {ptype}")
                        return
                buf = buf[at:]
                with self._lock:
                    self.per_connection[index] += published
                if replies:
                    with self._lock:
                        conn.sendall(b"".join(replies))
                if self.stall_s and connected and published == 0 and replies:
                    time.sleep(self.stall_s)   # the CONNACK went: stop reading a while

    def _deliver(self, body: bytes, seen: int, held: list[bytes]) -> None:
        """Deliver a PUBLISH (topic and payload, as QoS 0) to the subscribers, with the
        faults asked for."""
        packet = _packet(3, 0, body)
        if self.drop_every and seen % self.drop_every == 0:
            return
        if self.swap:
            if not held:
                held.append(packet)
                return
            packet += held.pop()
        if self.duplicate_every and seen % self.duplicate_every == 0:
            packet += packet
        self._send_to_subscribers(packet)

    def _send_to_subscribers(self, data: bytes) -> None:
        with self._lock:
            for sub in self.subscribers:
                with contextlib.suppress(OSError):
                    sub.sendall(data)

    def close(self) -> None:
        self._listener.close()
        for t in self._threads:
            t.join(5)

    def __enter__(self) -> CountingBroker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _split_packet(buf: bytes, at: int) -> tuple[int, bytes, int] | None:
    """(first byte, body, end) of the packet at buf[at:], or None for more bytes."""
    n, shift, i = 0, 0, at + 1
    while True:
        if i >= len(buf):
            return None
        b = buf[i]
        n |= (b & 0x7F) << shift
        i += 1
        if not b & 0x80:
            break
        shift += 7
    if len(buf) < i + n:
        return None
    return buf[at], buf[i:i + n], i + n
