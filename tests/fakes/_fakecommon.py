"""Shared plumbing for the mod_promptenchanter test doubles (Python 3 standard library only).

Every fake server:
  * binds a loopback address only (``--host``; anything that is not loopback is refused),
  * takes ``--port`` (0 picks a free port),
  * prints exactly one line ``READY <port> [key=value ...]`` on stdout once it listens, and nothing else,
  * stops cleanly on SIGTERM (and SIGINT),
  * logs to ``--log FILE`` or stderr only.
"""

import argparse
import collections
import io
import ipaddress
import itertools
import json
import re
import signal
import socket
import socketserver
import struct
import sys
import threading
import time
import traceback
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

LISTEN_BACKLOG = 1024

# Client-side disconnects are normal in these servers (fault injection, aborted streams); they are not errors.
QUIET_ERRORS = (ConnectionError, TimeoutError, socket.timeout, BrokenPipeError)


class Log:
    """Thread-safe line logger to a file (append) or stderr."""

    def __init__(self, name, path=None, verbose=False):
        self.name = name
        self.verbose = verbose
        self.lock = threading.Lock()
        self.fh = open(path, "a", encoding="utf-8", buffering=1) if path else sys.stderr

    def write(self, level, msg):
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime()) + ".%03d" % (int(time.time() * 1000) % 1000)
        with self.lock:
            try:
                self.fh.write("%s [%s] %s: %s\n" % (stamp, self.name, level, msg))
                self.fh.flush()
            except (OSError, ValueError):
                pass

    def info(self, msg):
        self.write("info", msg)

    def debug(self, msg):
        if self.verbose:
            self.write("debug", msg)

    def error(self, msg):
        self.write("error", msg)


def loopback_host(host):
    """Return the loopback address to bind, or exit with a message if `host` is not loopback."""
    h = (host or "").strip()
    if h.lower() == "localhost":
        return "127.0.0.1"
    if h.startswith("[") and h.endswith("]"):
        h = h[1:-1]
    try:
        ip = ipaddress.ip_address(h)
    except ValueError:
        raise SystemExit("refusing host %r: give a loopback IP address (127.0.0.0/8 or ::1)" % host)
    if not ip.is_loopback:
        raise SystemExit("refusing non-loopback host %r: the fakes listen on loopback only" % host)
    return str(ip)


def base_parser(description):
    """Argument parser with the options every fake shares."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free port (default 0)")
    p.add_argument("--log", default=None, help="append log lines to this file (default: stderr)")
    p.add_argument("--verbose", action="store_true", help="log every request")
    return p


def url_host(host):
    """Host part for a URL (brackets around IPv6)."""
    return "[%s]" % host if ":" in host else host


def as_int(value, default=None):
    """Integer from a JSON value or a header/directive string; `default` when absent or unparsable."""
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return int(value)
    try:
        return int(value)
    except (TypeError, ValueError):
        try:
            return int(float(value))
        except (TypeError, ValueError):
            return default


def as_bool(value, default=False):
    """Boolean from a JSON value or a string such as 1/0/true/false/yes/no."""
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0
    return str(value).strip().lower() in ("1", "true", "yes", "on")


DIRECTIVE_RE = re.compile(r"\[\[fake:([^\]]*)\]\]")


def parse_directives(text):
    """Steering directives embedded in text: ``[[fake:key=value;key=value]]`` (later ones win).

    Keys are lower-cased with '-' turned into '_'; a bare ``key`` means ``key=1``. Values stay strings.
    """
    out = {}
    if not isinstance(text, str) or "[[fake:" not in text:
        return out
    for m in DIRECTIVE_RE.finditer(text):
        for part in m.group(1).split(";"):
            part = part.strip()
            if not part:
                continue
            if "=" in part:
                k, v = part.split("=", 1)
            else:
                k, v = part, "1"
            out[k.strip().lower().replace("-", "_")] = v.strip()
    return out


def header_steering(headers):
    """Steering from ``X-Fake-<Key>`` request headers: X-Fake-Delay-Ms -> delay_ms (values stay strings)."""
    out = {}
    for k, v in headers.items():
        lk = k.lower()
        if lk.startswith("x-fake-") and len(lk) > 7:
            out[lk[7:].replace("-", "_")] = v.strip()
    return out


def sleep_interruptible(seconds, stop_event):
    """Sleep up to `seconds`, returning early (False) when the server is stopping."""
    if seconds <= 0:
        return True
    return not stop_event.wait(seconds)


class Recorder:
    """Bounded, thread-safe list of request records. `seq` grows monotonically across resets."""

    def __init__(self, cap=20000):
        self.lock = threading.Lock()
        self.items = collections.deque(maxlen=cap)
        self.seq = 0
        self.total = 0

    def add(self, rec):
        with self.lock:
            self.seq += 1
            self.total += 1
            rec["seq"] = self.seq
            self.items.append(rec)
            return rec

    def update(self, rec, **fields):
        with self.lock:
            rec.update(fields)

    def mutate(self, fn):
        with self.lock:
            return fn()

    def snapshot(self, since=0, limit=None, where=None):
        """JSON-safe deep copy of the records with seq > since (optionally filtered, newest `limit`)."""
        with self.lock:
            out = [r for r in self.items if r["seq"] > since and (where is None or where(r))]
            if limit is not None and limit >= 0:
                out = out[-limit:] if limit else []
            return json.loads(json.dumps(out, default=str))

    def clear(self):
        with self.lock:
            self.items.clear()
            self.total = 0


class LoopbackHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer on a loopback address with a large backlog and daemon handler threads."""

    request_queue_size = LISTEN_BACKLOG
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, host, port, handler, state=None, log=None):
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.state = state
        self.log = log or Log("fake")
        self.stopping = threading.Event()
        self.conn_seq = itertools.count(1)
        self.connections = 0
        self.conn_lock = threading.Lock()
        super().__init__((host, port), handler)

    def server_bind(self):
        # NB: skip HTTPServer.server_bind's reverse DNS lookup (getfqdn); loopback needs no name.
        socketserver.TCPServer.server_bind(self)
        self.server_name = self.server_address[0]
        self.server_port = self.server_address[1]

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, QUIET_ERRORS):
            return
        self.log.error("unhandled error for %s:\n%s" % (client_address, traceback.format_exc()))


class FakeHandler(BaseHTTPRequestHandler):
    """Request handler base: HTTP/1.1 keep-alive, body reading, JSON replies, control helpers."""

    protocol_version = "HTTP/1.1"
    server_version = "pe-fake"
    sys_version = ""
    timeout = 600  # idle keep-alive connections are dropped after this many seconds

    def version_string(self):
        return self.server_version

    def setup(self):
        super().setup()
        self.conn_id = next(self.server.conn_seq)
        self.conn_requests = 0
        with self.server.conn_lock:
            self.server.connections += 1

    def log_message(self, fmt, *args):
        self.server.log.debug("%s %s" % (self.address_string(), fmt % args))

    def log_error(self, fmt, *args):
        self.server.log.info("%s %s" % (self.address_string(), fmt % args))

    # ---- request helpers -------------------------------------------------------------------------

    def split_path(self):
        """(path, query dict of lists) of the request target."""
        u = urlsplit(self.path)
        return u.path, parse_qs(u.query, keep_blank_values=True)

    def read_body(self):
        """Read the request body (Content-Length or chunked); b'' when there is none."""
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            parts = []
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise ConnectionError("eof in chunked body")
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while True:  # trailers
                        t = self.rfile.readline(65537)
                        if t in (b"\r\n", b"\n", b""):
                            break
                    break
                parts.append(self.rfile.read(size))
                self.rfile.readline(3)
            return b"".join(parts)
        n = as_int(self.headers.get("Content-Length"), 0) or 0
        if n <= 0:
            return b""
        return self.rfile.read(n)

    def header_dict(self):
        """Request headers as {lower-case name: value}; repeated headers joined with ', '."""
        out = {}
        for k, v in self.headers.items():
            lk = k.lower()
            out[lk] = out[lk] + ", " + v if lk in out else v
        return out

    def header_list(self):
        return [[k, v] for k, v in self.headers.items()]

    def control_json(self):
        """Parsed JSON object body of a control request ({} when empty). Raises ValueError when bad."""
        raw = self.read_body()
        if not raw.strip():
            return {}
        obj = json.loads(raw.decode("utf-8"))
        if not isinstance(obj, (dict, list)):
            raise ValueError("control body must be a JSON object or array")
        return obj

    # ---- response helpers ------------------------------------------------------------------------

    def send_bytes(self, status, body, ctype="application/octet-stream", headers=(), close=False):
        """Send a complete response with Content-Length (no body for HEAD)."""
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def send_json(self, status, obj, headers=(), close=False):
        body = json.dumps(obj, ensure_ascii=False).encode("utf-8")
        self.send_bytes(status, body, "application/json", headers, close)

    def send_text(self, status, text, ctype="text/plain; charset=utf-8", headers=()):
        self.send_bytes(status, text.encode("utf-8"), ctype, headers)

    def reset_connection(self):
        """Abort the connection with a TCP RST (SO_LINGER 0 then close); nothing more is sent."""
        self.close_connection = True
        try:
            self.wfile.flush()
        except OSError:
            pass
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        for f in (self.rfile, self.wfile):
            try:
                f.close()
            except OSError:
                pass
        # NB: the socket fd is only released once its makefile() objects are closed; dummies keep the
        # http.server request loop (which flushes wfile after every request) from touching a closed file.
        self.rfile = io.BytesIO()
        self.wfile = io.BytesIO()
        try:
            self.connection.close()
        except OSError:
            pass

    def close_abruptly(self):
        """Close the connection with a FIN without finishing the response (truncation)."""
        self.close_connection = True
        try:
            self.wfile.flush()
        except OSError:
            pass
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def write_chunk(self, data):
        """Write one HTTP/1.1 chunk (chunked transfer encoding)."""
        if data:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def end_chunks(self):
        self.wfile.write(b"0\r\n\r\n")


def serve_until_signal(servers, ready_line, log, on_stop=None):
    """Run servers in threads, print the READY line, and block until SIGTERM/SIGINT; then stop cleanly."""
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    threads = []
    for s in servers:
        t = threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
        t.start()
        threads.append(t)
    sys.stdout.write(ready_line + "\n")
    sys.stdout.flush()
    log.info("listening: %s" % ready_line)
    while not stop.wait(0.5):
        pass
    log.info("stopping")
    for s in servers:
        ev = getattr(s, "stopping", None)
        if ev is not None:
            ev.set()
    for s in servers:
        s.shutdown()
        s.server_close()
    if on_stop is not None:
        on_stop()
    log.info("stopped")


# ---- gzip bomb (shared by the web and upstream fakes) ---------------------------------------------

_BOMB_LOCK = threading.Lock()
_BOMB_CACHE = {}
_MIB = 1 << 20


def _bomb_parts():
    """(head, block, tail) raw-deflate pieces: head+block*(n-1)+tail inflates to n MiB of zero bytes."""
    with _BOMB_LOCK:
        if "parts" in _BOMB_CACHE:
            return _BOMB_CACHE["parts"]
        zeros = bytes(_MIB)
        c = zlib.compressobj(9, zlib.DEFLATED, -15)
        first = c.compress(zeros) + c.flush(zlib.Z_FULL_FLUSH)
        second = c.compress(zeros) + c.flush(zlib.Z_FULL_FLUSH)
        third = c.compress(zeros) + c.flush(zlib.Z_FULL_FLUSH)
        # NB: a full flush resets the window, so every block after the first compresses identically.
        if second != third:
            raise RuntimeError("deflate blocks are not repeatable")
        tail = c.flush(zlib.Z_FINISH)
        _BOMB_CACHE["parts"] = (first, second, tail)
        return _BOMB_CACHE["parts"]


def _bomb_crc(mib):
    with _BOMB_LOCK:
        crc = _BOMB_CACHE.get(("crc", mib))
        if crc is not None:
            return crc
    zeros = bytes(_MIB)
    crc = 0
    for _ in range(mib):
        crc = zlib.crc32(zeros, crc)
    with _BOMB_LOCK:
        _BOMB_CACHE[("crc", mib)] = crc
    return crc


def gzip_bomb(mib):
    """(length, iterator of byte pieces) of a gzip member inflating to `mib` MiB of zeros."""
    mib = max(1, int(mib))
    first, block, tail = _bomb_parts()
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\x03"
    trailer = struct.pack("<II", _bomb_crc(mib), (mib * _MIB) & 0xFFFFFFFF)
    length = len(header) + len(first) + len(block) * (mib - 1) + len(tail) + len(trailer)

    def pieces():
        yield header + first
        batch = block * 64
        left = mib - 1
        while left >= 64:
            yield batch
            left -= 64
        if left:
            yield block * left
        yield tail + trailer

    return length, pieces()
