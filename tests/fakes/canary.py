#!/usr/bin/env python3
"""Canary TCP listener: counts every accepted connection (the SSRF tests expect zero).

Listens on one or more ports (``--port`` may be repeated) of one loopback host, counts each accepted
connection before reading anything, records the peer and the first bytes it sent, optionally answers with a
small HTTP 200 whose body carries a marker, and closes. The count is reported on an HTTP control port and,
with ``--count-file``, written to a file (the total, as text) after every accept.

Stdout: one line ``READY <first port> control=<control port> ports=<p1>,<p2>,...``.
"""

import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _fakecommon import (  # noqa: E402
    LISTEN_BACKLOG, FakeHandler, Log, LoopbackHTTPServer, as_int, loopback_host, serve_until_signal, url_host,
)
import argparse  # noqa: E402


class State:
    def __init__(self, count_file, reply, keep):
        self.lock = threading.Lock()
        self.total = 0
        self.by_listener = {}
        self.connections = []
        self.keep = keep
        self.count_file = count_file
        self.reply = reply

    def accepted(self, listener, peer):
        with self.lock:
            self.total += 1
            self.by_listener[listener] = self.by_listener.get(listener, 0) + 1
            rec = {"n": self.total, "time": time.time(), "listener": listener, "peer": peer, "first_bytes": ""}
            self.connections.append(rec)
            if len(self.connections) > self.keep:
                del self.connections[0]
            total = self.total
        self.write_count(total)
        return rec

    def write_count(self, total):
        if not self.count_file:
            return
        tmp = self.count_file + ".tmp"
        try:
            with open(tmp, "w") as f:
                f.write("%d\n" % total)
            os.replace(tmp, self.count_file)
        except OSError:
            pass

    def reset(self):
        with self.lock:
            self.total = 0
            self.by_listener = {k: 0 for k in self.by_listener}
            self.connections = []
        self.write_count(0)


class Listener(threading.Thread):
    """Accept loop on one port; every connection is handled on its own short-lived thread."""

    def __init__(self, host, port, state, log, stopping):
        super().__init__(daemon=True)
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(LISTEN_BACKLOG)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.name_ = "%s:%d" % (url_host(host), self.port)
        self.state, self.log, self.stopping = state, log, stopping

    def run(self):
        while not self.stopping.is_set():
            try:
                conn, addr = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                if self.stopping.is_set():
                    break
                continue
            rec = self.state.accepted(self.name_, "%s:%s" % (addr[0], addr[1]))
            self.log.info("connection %d on %s from %s:%s" % (rec["n"], self.name_, addr[0], addr[1]))
            threading.Thread(target=self.serve_one, args=(conn, rec), daemon=True).start()
        try:
            self.sock.close()
        except OSError:
            pass

    def serve_one(self, conn, rec):
        try:
            conn.settimeout(1.0)
            data = b""
            deadline = time.time() + 1.0
            while len(data) < 4096 and b"\r\n\r\n" not in data and time.time() < deadline:
                try:
                    part = conn.recv(4096)
                except socket.timeout:
                    break
                if not part:
                    break
                data += part
            with self.state.lock:
                rec["first_bytes"] = data[:512].decode("latin-1")
            if self.state.reply == "http":
                body = ("pe-canary %s connection %d\n" % (self.name_, rec["n"])).encode()
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        except OSError:
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass


class ControlHandler(FakeHandler):
    server_version = "canary-control"

    def do_GET(self):
        self.route()

    def do_POST(self):
        self.route()

    def route(self):
        path, query = self.split_path()
        self.read_body()
        st = self.server.state
        if path == "/_control/health":
            return self.send_json(200, {"ok": True, "pid": os.getpid(), "server": "canary"})
        if path == "/_control/count" and self.command == "GET":
            with st.lock:
                return self.send_json(200, {"total": st.total, "by_listener": dict(st.by_listener)})
        if path == "/_control/connections" and self.command == "GET":
            since = as_int((query.get("since") or ["0"])[0], 0)
            with st.lock:
                conns = [dict(c) for c in st.connections if c["n"] > since]
                return self.send_json(200, {"total": st.total, "connections": conns})
        if path == "/_control/reset" and self.command == "POST":
            st.reset()
            return self.send_json(200, {"ok": True})
        return self.send_json(404, {"error": "unknown control endpoint %s %s" % (self.command, path)})


def main():
    p = argparse.ArgumentParser(description="Canary TCP listener counting accepted connections (loopback only).")
    p.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, action="append", default=None,
                   help="port to listen on; repeat for several; 0 picks a free port (default one free port)")
    p.add_argument("--control-port", type=int, default=0, help="HTTP control port (default: a free port)")
    p.add_argument("--count-file", default=None, help="write the total count to this file after each accept")
    p.add_argument("--reply", choices=("http", "none"), default="http",
                   help="answer each connection with a small HTTP 200 (default) or just close it")
    p.add_argument("--keep", type=int, default=1000, help="connection records kept (default 1000)")
    p.add_argument("--log", default=None)
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args()
    host = loopback_host(args.host)
    ports = args.port or [0]
    log = Log("canary", args.log, args.verbose)
    state = State(args.count_file, args.reply, args.keep)
    state.write_count(0)
    stopping = threading.Event()
    listeners = []
    for port in ports:
        lst = Listener(host, port, state, log, stopping)
        state.by_listener[lst.name_] = 0
        listeners.append(lst)
    ctl = LoopbackHTTPServer(host, args.control_port, ControlHandler, state, log)
    for lst in listeners:
        lst.start()
    ready = "READY %d control=%d ports=%s" % (listeners[0].port, ctl.server_address[1],
                                              ",".join(str(lst.port) for lst in listeners))

    def on_stop():
        stopping.set()
        for lst in listeners:
            lst.join(2)

    serve_until_signal([ctl], ready, log, on_stop)


if __name__ == "__main__":
    main()
