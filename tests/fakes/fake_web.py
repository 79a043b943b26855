#!/usr/bin/env python3
"""Fake web server for the research page fetcher: fixture pages, huge/slow/drip pages, redirects, odd types.

Serves tests/fakes/pages/<file> at /<file>, plus generated routes (see tests/fakes/README.md).
Counts requests per path; control API under /_control. Stdout: one line ``READY <port>``.
"""

import html
import mimetypes
import os
import sys
import threading
import time
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _fakecommon import (  # noqa: E402
    FakeHandler, Log, LoopbackHTTPServer, Recorder, as_bool, as_int, base_parser, gzip_bomb, loopback_host,
    serve_until_signal, sleep_interruptible,
)

HERE = os.path.dirname(os.path.abspath(__file__))
METADATA_URL = "http://169.254.169.254/latest/meta-data/"
TYPES = {".html": "text/html; charset=utf-8", ".htm": "text/html; charset=utf-8", ".txt": "text/plain; charset=utf-8",
         ".json": "application/json", ".xml": "application/xml"}


class State:
    def __init__(self, pages, canary_port, cap):
        self.lock = threading.Lock()
        self.pages = os.path.realpath(pages)
        self.recorder = Recorder(cap)
        self.counts = Counter()
        self.config = {"canary_port": canary_port, "delay_ms": 0}

    def reset(self):
        with self.lock:
            self.counts.clear()
        self.recorder.clear()


def huge_block():
    """64 KiB of HTML paragraphs."""
    out, i = [], 0
    size = 0
    while size < 65536 - 200:
        p = "<p>Huge page filler paragraph %06d: the quick brown fox jumps over the lazy dog.</p>\n" % i
        out.append(p)
        size += len(p)
        i += 1
    s = "".join(out)
    return (s + " " * (65535 - len(s)) + "\n").encode()


HUGE_BLOCK = huge_block()


def simple_page(title, text):
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>%s</title></head>\n<body><main><h1>%s</h1>\n"
            "<p>%s</p>\n</main></body></html>\n" % (html.escape(title), html.escape(title), html.escape(text))).encode()


class WebHandler(FakeHandler):
    server_version = "fake-web"

    def do_GET(self):
        self.route()

    def do_HEAD(self):
        self.route()

    def do_POST(self):
        self.route()

    def route(self):
        path, query = self.split_path()
        st = self.server.state
        if path.startswith("/_control"):
            return self.control(path, query)
        body = self.read_body()
        self.conn_requests += 1
        with st.lock:
            st.counts[path] += 1
            delay = as_int(st.config.get("delay_ms"), 0)
        rec = st.recorder.add({
            "time": time.time(), "method": self.command, "path": self.path, "route": path,
            "conn": self.conn_id, "conn_request": self.conn_requests,
            "client": "%s:%s" % self.client_address[:2], "headers": self.header_dict(),
            "body_bytes": len(body), "status": None, "bytes_sent": 0, "finished": False, "client_gone_at": None,
        })
        self.rec = rec
        self.sent = 0
        t0 = time.time()
        status = 0
        try:
            if delay > 0:
                sleep_interruptible(delay / 1000.0, self.server.stopping)
            status = self.dispatch(path, query)
        except (ConnectionError, OSError):
            self.close_connection = True
            gone = time.time()
            st.recorder.update(rec, client_gone_at=gone)
        finally:
            st.recorder.update(rec, status=status, bytes_sent=self.sent, finished=True,
                               duration_ms=round((time.time() - t0) * 1000, 3))

    def q(self, query, name, default=None):
        v = query.get(name)
        return v[0] if v else default

    def out(self, data):
        self.wfile.write(data)
        self.sent += len(data)

    def page(self, status, body, ctype="text/html; charset=utf-8", headers=()):
        self.send_bytes(status, body, ctype, headers)
        if self.command != "HEAD":
            self.sent += len(body)
        return status

    def redirect(self, location, status=302):
        self.send_bytes(status, b"", "text/html; charset=utf-8", [("Location", location)])
        return status

    def dispatch(self, path, query):
        st = self.server.state
        if path == "/":
            names = sorted(n for n in os.listdir(st.pages) if not n.startswith("."))
            links = "".join('<li><a href="/%s">%s</a></li>' % (html.escape(n), html.escape(n)) for n in names)
            return self.page(200, ("<!DOCTYPE html><html><head><title>Fake web index</title></head><body><ul>%s"
                                   "</ul></body></html>" % links).encode())
        if path == "/huge":
            return self.huge(as_int(self.q(query, "mb"), 20), as_bool(self.q(query, "chunked")))
        if path == "/slow" or path.startswith("/slow/"):
            ms = as_int(self.q(query, "ms"), 1000)
            sleep_interruptible(ms / 1000.0, self.server.stopping)
            ident = self.q(query, "id", path[len("/slow/"):] if path.startswith("/slow/") else "")
            text = "SLOW-PAGE-MARKER %s: this page waited %d ms before answering." % (ident, ms)
            return self.page(200, simple_page("Slow page %s" % ident, text))
        if path == "/drip":
            return self.drip(as_int(self.q(query, "bytes"), 100), as_int(self.q(query, "interval_ms"), 1000))
        if path == "/redirect/canary":
            port = as_int(self.q(query, "port"), as_int(st.config.get("canary_port")))
            if not port:
                return self.page(500, b"no canary port configured (--canary-port or ?port=)", "text/plain")
            host = self.q(query, "host", "127.0.0.1")
            return self.redirect("http://%s:%d/" % ("[%s]" % host if ":" in host else host, port))
        if path == "/redirect/metadata":
            return self.redirect(METADATA_URL)
        if path == "/redirect/file":
            return self.redirect("file:///etc/passwd")
        if path == "/redirect/loop":
            return self.redirect("/redirect/loop")
        if path.startswith("/redirect/chain/"):
            n = as_int(path[len("/redirect/chain/"):], -1)
            if n < 0:
                return self.page(404, b"bad chain length", "text/plain")
            if n == 0:
                return self.page(200, simple_page("End of the redirect chain",
                                                  "CHAIN-END-MARKER: you followed every hop."))
            return self.redirect("/redirect/chain/%d" % (n - 1), as_int(self.q(query, "status"), 302))
        if path == "/redirect/to":
            url = self.q(query, "url")
            if not url:
                return self.page(400, b"give ?url=", "text/plain")
            return self.redirect(url, as_int(self.q(query, "status"), 302))
        if path == "/binary":
            data = bytes(range(256)) * 64
            return self.page(200, data, "application/octet-stream")
        if path == "/json":
            return self.page(200, b'{"title":"Not HTML","text":"JSON-BODY-MARKER"}', "application/json")
        if path == "/content-type":
            ctype = self.q(query, "type", "application/pdf")
            return self.page(200, simple_page("Typed page", "CONTENT-TYPE-MARKER %s" % ctype), ctype)
        if path == "/bomb.gz":
            length, pieces = gzip_bomb(as_int(self.q(query, "mb"), 1024))
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(length))
            self.end_headers()
            if self.command != "HEAD":
                for p in pieces:
                    self.out(p)
            return 200
        if path == "/set-cookie":
            return self.page(200, simple_page("Cookie page", "COOKIE-PAGE-MARKER"),
                             headers=[("Set-Cookie", "pe_fake_session=c00k1e; Path=/; HttpOnly")])
        if path.startswith("/status/"):
            code = as_int(path[len("/status/"):], 500)
            if code < 200 or code > 599:
                code = 500
            return self.page(code, simple_page("Status %d" % code, "STATUS-PAGE-MARKER %d" % code))
        if path == "/echo":
            lines = ["%s: %s" % (k, v) for k, v in self.headers.items()]
            return self.page(200, ("%s %s\n%s\n" % (self.command, self.path, "\n".join(lines))).encode(),
                             "text/plain; charset=utf-8")
        return self.static(path)

    def static(self, path):
        st = self.server.state
        rel = path.lstrip("/")
        full = os.path.realpath(os.path.join(st.pages, rel))
        if not rel or not full.startswith(st.pages + os.sep) or not os.path.isfile(full):
            return self.page(404, simple_page("Not found", "NOT-FOUND-MARKER %s" % path))
        with open(full, "rb") as f:
            data = f.read()
        ext = os.path.splitext(full)[1].lower()
        ctype = TYPES.get(ext) or mimetypes.guess_type(full)[0] or "application/octet-stream"
        return self.page(200, data, ctype)

    def huge(self, mib, chunked):
        mib = max(1, mib)
        total = mib << 20
        head = b"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Huge page</title></head><body>\n"
        tail = b"<p>HUGE-PAGE-END-MARKER</p></body></html>\n"
        middle = total - len(head) - len(tail)
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        if chunked and self.request_version == "HTTP/1.1":
            self.send_header("Transfer-Encoding", "chunked")
        elif chunked:
            self.send_header("Connection", "close")
            self.close_connection = True
        else:
            self.send_header("Content-Length", str(total))
        self.end_headers()
        if self.command == "HEAD":
            return 200
        use_chunks = chunked and self.request_version == "HTTP/1.1"

        def emit(data):
            if use_chunks:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.sent += len(data)
            else:
                self.out(data)

        emit(head)
        n_blocks, rest = divmod(middle, len(HUGE_BLOCK))
        batch = HUGE_BLOCK * 16
        while n_blocks >= 16:
            emit(batch)
            n_blocks -= 16
        for _ in range(n_blocks):
            emit(HUGE_BLOCK)
        if rest:
            emit(b" " * (rest - 1) + b"\n")
        emit(tail)
        if use_chunks:
            self.wfile.write(b"0\r\n\r\n")
        return 200

    def drip(self, nbytes, interval_ms):
        body = (b"<html><body><p>" + b"d" * max(0, nbytes - 30) + b"</p></body></html>")[:max(1, nbytes)]
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.flush()
        for i in range(len(body)):
            self.out(body[i:i + 1])
            if i + 1 < len(body) and not sleep_interruptible(interval_ms / 1000.0, self.server.stopping):
                self.close_abruptly()
                break
        return 200

    # ---- control API -----------------------------------------------------------------------------

    def control(self, path, query):
        st = self.server.state
        try:
            body = self.control_json() if self.command in ("POST", "PUT") else {}
        except ValueError as e:
            return self.send_json(400, {"error": "bad control body: %s" % e})
        if path == "/_control/health":
            return self.send_json(200, {"ok": True, "pid": os.getpid(), "server": "fake_web"})
        if path == "/_control/requests" and self.command == "GET":
            since = as_int(self.q(query, "since"), 0)
            limit = as_int(self.q(query, "limit"))
            pfilter = self.q(query, "path")
            where = (lambda r: r["route"] == pfilter) if pfilter else None
            return self.send_json(200, {"total": st.recorder.total, "last_seq": st.recorder.seq,
                                        "requests": st.recorder.snapshot(since, limit, where)})
        if path == "/_control/counts" and self.command == "GET":
            with st.lock:
                counts = dict(st.counts)
            return self.send_json(200, {"total": sum(counts.values()), "by_path": counts})
        if path == "/_control/reset" and self.command == "POST":
            st.reset()
            return self.send_json(200, {"ok": True})
        if path == "/_control/config":
            if self.command == "GET":
                with st.lock:
                    return self.send_json(200, dict(st.config))
            if self.command == "POST" and isinstance(body, dict):
                bad = set(body) - {"canary_port", "delay_ms"}
                if bad:
                    return self.send_json(400, {"error": "unknown keys %s; allowed: canary_port, delay_ms"
                                                         % sorted(bad)})
                with st.lock:
                    for k, v in body.items():
                        st.config[k] = as_int(v)
                    return self.send_json(200, dict(st.config))
        return self.send_json(404, {"error": "unknown control endpoint %s %s" % (self.command, path)})


def main():
    p = base_parser("Fake web server serving research fixture pages (loopback only).")
    p.add_argument("--pages", default=os.path.join(HERE, "pages"), help="fixture page directory")
    p.add_argument("--canary-port", type=int, default=None, help="port that /redirect/canary points at")
    p.add_argument("--max-records", type=int, default=20000)
    args = p.parse_args()
    host = loopback_host(args.host)
    log = Log("fake_web", args.log, args.verbose)
    state = State(args.pages, args.canary_port, args.max_records)
    srv = LoopbackHTTPServer(host, args.port, WebHandler, state, log)
    serve_until_signal([srv], "READY %d" % srv.server_address[1], log)


if __name__ == "__main__":
    main()
