"""A real MQTT broker for the tests (mosquitto, started on a free 127.0.0.1 port with a
private config) and a subscriber that counts what the broker delivered: the server side
that every MQTT test compares with hammer's own counts."""

from __future__ import annotations

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
                 max_inflight: int = 0) -> None:
        self.port = free_port()
        self.url = f"mqtt://127.0.0.1:{self.port}"
        conf = directory / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            f"allow_anonymous {'true' if anonymous else 'false'}\n"
            "set_tcp_nodelay true\n"
            f"max_inflight_messages {max_inflight}\n"
            "max_queued_messages 0\n"
            "persistence false\n")
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
