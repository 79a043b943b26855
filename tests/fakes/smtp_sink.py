#!/usr/bin/env python3
"""SMTP sink: accepts every message and stores it (memory, HTTP control port, optional JSON-lines file).

Protocol: greeting, EHLO/HELO, optional STARTTLS (with --tls-cert/--tls-key) or implicit TLS (--implicit-tls),
AUTH PLAIN/LOGIN (any credentials accepted unless a failure is queued), MAIL FROM, RCPT TO, DATA
(dot-unstuffing), RSET, NOOP, VRFY, HELP, QUIT. Failures per stage can be queued through the control API.

Stdout: one line ``READY <smtp port> control=<control port>``.
"""

import base64
import binascii
import email
import email.policy
import json
import os
import socket
import socketserver
import ssl
import sys
import threading
import time
from collections import deque

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _fakecommon import (  # noqa: E402
    LISTEN_BACKLOG, QUIET_ERRORS, FakeHandler, Log, LoopbackHTTPServer, as_int, base_parser, loopback_host,
    serve_until_signal,
)

STAGES = ("connect", "ehlo", "helo", "starttls", "auth", "mail", "rcpt", "data", "data_end")
MAX_LINE = 4096


class Drop(Exception):
    """Close the session now."""


class State:
    def __init__(self, jsonl, hostname, max_size, require_auth, cap):
        self.lock = threading.Lock()
        self.jsonl = jsonl
        self.hostname = hostname
        self.max_size = max_size
        self.require_auth = require_auth
        self.cap = cap
        self.messages = deque(maxlen=cap)
        self.sessions = deque(maxlen=cap)
        self.seq = 0
        self.total = 0
        self.connections = 0
        self.fails = []  # each {"stage", "code", "message", "remaining"}
        self.config = {"greeting_delay_ms": 0, "reply_delay_ms": 0}

    def take_fail(self, stage):
        with self.lock:
            for f in self.fails:
                if f["stage"] == stage and f["remaining"] > 0:
                    f["remaining"] -= 1
                    if f["remaining"] <= 0:
                        self.fails.remove(f)
                    return dict(f)
        return None

    def store(self, msg):
        with self.lock:
            self.seq += 1
            self.total += 1
            msg["seq"] = self.seq
            self.messages.append(msg)
            line = json.dumps(msg, ensure_ascii=False)
        if self.jsonl:
            with self.lock:
                with open(self.jsonl, "a", encoding="utf-8") as f:
                    f.write(line + "\n")
        return msg

    def reset(self):
        with self.lock:
            self.messages.clear()
            self.sessions.clear()
            self.total = 0
            self.fails = []
            self.config = {"greeting_delay_ms": 0, "reply_delay_ms": 0}


def parse_message(raw):
    """Subject, text and html parts of a raw message (best effort; None where absent)."""
    out = {"subject": None, "text": None, "html": None, "headers": {}}
    try:
        m = email.message_from_bytes(raw, policy=email.policy.default)
        out["subject"] = str(m["subject"]) if m["subject"] is not None else None
        out["headers"] = {k: str(v) for k, v in m.items()}
        for kind in ("plain", "html"):
            part = m.get_body(preferencelist=(kind,))
            if part is not None:
                out["text" if kind == "plain" else "html"] = part.get_content()
    except Exception as e:  # the sink must store even malformed mail
        out["parse_error"] = str(e)
    return out


def angle_addr(arg, keyword):
    """Address from 'FROM:<a@b> SIZE=1' style arguments; None when malformed."""
    if not arg.upper().startswith(keyword + ":"):
        return None, []
    rest = arg[len(keyword) + 1:].strip()
    if rest.startswith("<"):
        end = rest.find(">")
        if end < 0:
            return None, []
        return rest[1:end], rest[end + 1:].split()
    parts = rest.split()
    return (parts[0] if parts else None), parts[1:]


class SMTPHandler(socketserver.StreamRequestHandler):
    timeout = 120

    def setup(self):
        srv = self.server
        self.tls = False
        if srv.implicit_tls is not None:
            self.request.settimeout(self.timeout)
            self.request = srv.implicit_tls.wrap_socket(self.request, server_side=True)
            self.connection = self.request
            self.tls = True
        super().setup()

    def finish(self):
        try:
            super().finish()
        finally:
            if self.tls:
                try:
                    self.request.close()
                except OSError:
                    pass

    def reply(self, code, text, more=()):
        delay = as_int(self.server.state.config.get("reply_delay_ms"), 0)
        if delay > 0:
            time.sleep(delay / 1000.0)
        lines = list(more)
        out = []
        for line in lines:
            out.append("%d-%s\r\n" % (code, line))
        out.append("%d %s\r\n" % (code, text))
        self.wfile.write("".join(out).encode("utf-8"))
        self.wfile.flush()

    def readline(self):
        line = self.rfile.readline(MAX_LINE + 2)
        if not line:
            raise Drop()
        return line

    def failed(self, stage):
        """Send a queued failure for `stage` if there is one; True when the command must stop here."""
        f = self.server.state.take_fail(stage)
        if f is None:
            return False
        self.session["transcript"].append("<fail %s %s>" % (stage, f["code"]))
        if f["code"] == 0:
            raise Drop()
        self.reply(f["code"], f.get("message") or "Failure injected at %s" % stage)
        if f["code"] == 421:
            raise Drop()
        return True

    def handle(self):
        st = self.server.state
        with st.lock:
            st.connections += 1
        self.session = {"time": time.time(), "peer": "%s:%s" % self.client_address[:2], "transcript": [],
                        "messages": 0, "tls": self.tls}
        with st.lock:
            st.sessions.append(self.session)
        self.helo = None
        self.esmtp = False
        self.auth = None
        self.reset_txn()
        try:
            delay = as_int(st.config.get("greeting_delay_ms"), 0)
            if delay > 0:
                time.sleep(delay / 1000.0)
            if self.failed("connect"):
                return
            self.reply(220, "%s ESMTP fake smtp sink ready" % st.hostname)
            while True:
                line = self.readline()
                if len(line) > MAX_LINE:
                    self.reply(500, "5.5.2 Line too long")
                    continue
                text = line.decode("utf-8", "replace").rstrip("\r\n")
                verb, _, arg = text.partition(" ")
                verb = verb.upper()
                shown = text if verb != "AUTH" else "AUTH " + arg.split(" ", 1)[0]
                with st.lock:
                    self.session["transcript"].append(shown)
                if self.command(verb, arg.strip()):
                    return
        except (Drop, *QUIET_ERRORS, ssl.SSLError):
            return

    def reset_txn(self):
        self.mail_from = None
        self.rcpt_to = []

    def command(self, verb, arg):
        """Handle one command; True ends the session."""
        st = self.server.state
        if verb == "EHLO" or verb == "HELO":
            if not arg:
                self.reply(501, "5.5.4 %s needs a domain" % verb)
                return False
            if self.failed(verb.lower()):
                return False
            self.helo = arg
            self.esmtp = verb == "EHLO"
            self.reset_txn()
            if verb == "HELO":
                self.reply(250, st.hostname)
                return False
            more = ["%s Hello %s" % (st.hostname, arg), "SIZE %d" % st.max_size, "8BITMIME", "AUTH PLAIN LOGIN"]
            if self.server.starttls is not None and not self.tls:
                more.append("STARTTLS")
            self.reply(250, "HELP", more)
            return False
        if verb == "STARTTLS":
            if self.server.starttls is None or self.tls:
                self.reply(502, "5.5.1 STARTTLS not available")
                return False
            if self.failed("starttls"):
                return False
            self.reply(220, "2.0.0 Ready to start TLS")
            # NB: drop any plaintext the client pipelined after STARTTLS (command injection defence).
            self.rfile.close()
            self.wfile.close()
            self.request = self.server.starttls.wrap_socket(self.request, server_side=True)
            self.connection = self.request
            self.rfile = self.request.makefile("rb")
            self.wfile = self.request.makefile("wb")
            self.tls = True
            self.session["tls"] = True
            self.helo = None
            self.auth = None
            self.reset_txn()
            return False
        if verb == "QUIT":
            self.reply(221, "2.0.0 Bye")
            return True
        if verb == "NOOP":
            self.reply(250, "2.0.0 OK")
            return False
        if verb == "RSET":
            self.reset_txn()
            self.reply(250, "2.0.0 OK")
            return False
        if verb == "VRFY":
            self.reply(252, "2.1.5 Cannot VRFY user, but will accept message")
            return False
        if verb == "HELP":
            self.reply(214, "2.0.0 EHLO HELO STARTTLS AUTH MAIL RCPT DATA RSET NOOP VRFY QUIT")
            return False
        if self.helo is None and verb in ("AUTH", "MAIL", "RCPT", "DATA"):
            self.reply(503, "5.5.1 Send EHLO/HELO first")
            return False
        if verb == "AUTH":
            return self.do_auth(arg)
        if verb == "MAIL":
            if st.require_auth and self.auth is None:
                self.reply(530, "5.7.0 Authentication required")
                return False
            if self.mail_from is not None:
                self.reply(503, "5.5.1 Nested MAIL command")
                return False
            addr, params = angle_addr(arg, "FROM")
            if addr is None:
                self.reply(501, "5.5.4 Syntax: MAIL FROM:<address>")
                return False
            for prm in params:
                if prm.upper().startswith("SIZE=") and as_int(prm[5:], 0) > st.max_size:
                    self.reply(552, "5.3.4 Message size exceeds fixed limit")
                    return False
            if self.failed("mail"):
                return False
            self.mail_from = addr
            self.reply(250, "2.1.0 OK")
            return False
        if verb == "RCPT":
            if self.mail_from is None:
                self.reply(503, "5.5.1 Need MAIL before RCPT")
                return False
            addr, _ = angle_addr(arg, "TO")
            if not addr:
                self.reply(501, "5.5.4 Syntax: RCPT TO:<address>")
                return False
            if self.failed("rcpt"):
                return False
            self.rcpt_to.append(addr)
            self.reply(250, "2.1.5 OK")
            return False
        if verb == "DATA":
            if not self.rcpt_to:
                self.reply(503, "5.5.1 Need RCPT before DATA")
                return False
            if self.failed("data"):
                return False
            self.reply(354, "End data with <CR><LF>.<CR><LF>")
            return self.read_data()
        self.reply(500, "5.5.2 Command not recognized")
        return False

    def read_data(self):
        st = self.server.state
        lines = []
        size = 0
        too_big = False
        while True:
            line = self.rfile.readline(1 << 20)
            if not line:
                raise Drop()
            if line in (b".\r\n", b".\n"):
                break
            if line.startswith(b"."):
                line = line[1:]
            size += len(line)
            if size > st.max_size:
                too_big = True
            else:
                lines.append(line)
        if too_big:
            self.reset_txn()
            self.reply(552, "5.3.4 Message size exceeds fixed limit")
            return False
        if self.failed("data_end"):
            self.reset_txn()
            return False
        raw = b"".join(lines)
        msg = {"time": time.time(), "peer": self.session["peer"], "helo": self.helo, "esmtp": self.esmtp,
               "tls": self.tls, "auth": self.auth, "mail_from": self.mail_from, "rcpt_to": list(self.rcpt_to),
               "size": len(raw), "data": raw.decode("utf-8", "replace")}
        msg.update(parse_message(raw))
        st.store(msg)
        with st.lock:
            self.session["messages"] += 1
        self.reset_txn()
        self.reply(250, "2.0.0 OK queued as fake%d" % msg["seq"])
        return False

    def do_auth(self, arg):
        if self.auth is not None:
            self.reply(503, "5.5.1 Already authenticated")
            return False
        parts = arg.split()
        if not parts:
            self.reply(501, "5.5.4 AUTH needs a mechanism")
            return False
        mech = parts[0].upper()
        initial = parts[1] if len(parts) > 1 else None
        try:
            if mech == "PLAIN":
                if initial is None or initial == "=":
                    self.reply(334, "")
                    initial = self.auth_line()
                fields = base64.b64decode(initial, validate=True).split(b"\0")
                if len(fields) != 3:
                    self.reply(501, "5.5.2 Bad PLAIN response")
                    return False
                user = fields[1].decode("utf-8", "replace")
                password = fields[2].decode("utf-8", "replace")
            elif mech == "LOGIN":
                if initial is None:
                    self.reply(334, "VXNlcm5hbWU6")
                    initial = self.auth_line()
                user = base64.b64decode(initial, validate=True).decode("utf-8", "replace")
                self.reply(334, "UGFzc3dvcmQ6")
                password = base64.b64decode(self.auth_line(), validate=True).decode("utf-8", "replace")
            else:
                self.reply(504, "5.5.4 Unrecognized authentication type")
                return False
        except (binascii.Error, ValueError):
            self.reply(501, "5.5.2 Cannot decode response")
            return False
        except _AuthCancelled:
            self.reply(501, "5.7.0 Authentication cancelled")
            return False
        if self.failed("auth"):
            return False
        self.auth = {"mechanism": mech, "username": user, "password": password}
        self.reply(235, "2.7.0 Authentication successful")
        return False

    def auth_line(self):
        line = self.readline().decode("ascii", "replace").strip()
        if line == "*":
            raise _AuthCancelled()
        return line


class _AuthCancelled(Exception):
    pass


class SMTPServer(socketserver.ThreadingTCPServer):
    request_queue_size = LISTEN_BACKLOG
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, host, port, state, log, starttls, implicit_tls):
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.state, self.log = state, log
        self.starttls, self.implicit_tls = starttls, implicit_tls
        self.stopping = threading.Event()
        super().__init__((host, port), SMTPHandler)

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, QUIET_ERRORS + (ssl.SSLError, Drop)):
            return
        import traceback
        self.log.error("unhandled error for %s:\n%s" % (client_address, traceback.format_exc()))


class ControlHandler(FakeHandler):
    server_version = "smtp-sink-control"

    def do_GET(self):
        self.route()

    def do_POST(self):
        self.route()

    def do_DELETE(self):
        self.route()

    def route(self):
        path, query = self.split_path()
        st = self.server.state
        try:
            body = self.control_json() if self.command == "POST" else {}
        except ValueError as e:
            return self.send_json(400, {"error": "bad control body: %s" % e})
        if path == "/_control/health":
            return self.send_json(200, {"ok": True, "pid": os.getpid(), "server": "smtp_sink"})
        if path == "/_control/messages" and self.command == "GET":
            since = as_int((query.get("since") or ["0"])[0], 0)
            with st.lock:
                msgs = [m for m in st.messages if m["seq"] > since]
                return self.send_json(200, {"total": st.total, "last_seq": st.seq,
                                            "messages": json.loads(json.dumps(msgs))})
        if path == "/_control/sessions" and self.command == "GET":
            with st.lock:
                return self.send_json(200, {"sessions": json.loads(json.dumps(list(st.sessions)))})
        if path == "/_control/stats" and self.command == "GET":
            with st.lock:
                return self.send_json(200, {"connections": st.connections, "messages": st.total,
                                            "fails_pending": [dict(f) for f in st.fails]})
        if path == "/_control/reset" and self.command == "POST":
            st.reset()
            return self.send_json(200, {"ok": True})
        if path == "/_control/config":
            if self.command == "GET":
                with st.lock:
                    return self.send_json(200, dict(st.config))
            if self.command == "POST" and isinstance(body, dict):
                bad = set(body) - set(st.config)
                if bad:
                    return self.send_json(400, {"error": "unknown keys %s; allowed: %s"
                                                         % (sorted(bad), sorted(st.config))})
                with st.lock:
                    for k, v in body.items():
                        st.config[k] = as_int(v, 0)
                    return self.send_json(200, dict(st.config))
        if path == "/_control/fail":
            if self.command == "DELETE":
                with st.lock:
                    st.fails = []
                return self.send_json(200, {"pending": []})
            if self.command == "POST" and isinstance(body, dict):
                stage = body.get("stage")
                code = as_int(body.get("code"))
                if stage not in STAGES or code is None or not (code == 0 or 400 <= code <= 599):
                    return self.send_json(400, {"error": "give stage in %s and code 400-599 (0 = drop connection)"
                                                         % (STAGES,)})
                f = {"stage": stage, "code": code, "message": body.get("message"),
                     "remaining": as_int(body.get("count"), 1)}
                with st.lock:
                    st.fails.append(f)
                    return self.send_json(200, {"pending": [dict(x) for x in st.fails]})
        return self.send_json(404, {"error": "unknown control endpoint %s %s" % (self.command, path)})


def main():
    p = base_parser("SMTP sink storing every message (loopback only).")
    p.add_argument("--control-port", type=int, default=0, help="HTTP control port (default: a free port)")
    p.add_argument("--jsonl", default=None, help="append each message as one JSON line to this file")
    p.add_argument("--hostname", default="fake-smtp.test", help="name in the greeting and EHLO reply")
    p.add_argument("--max-size", type=int, default=10 << 20, help="SIZE limit in bytes (default 10 MiB)")
    p.add_argument("--require-auth", action="store_true", help="refuse MAIL before AUTH (530)")
    p.add_argument("--tls-cert", default=None, help="PEM certificate: enables STARTTLS (or implicit TLS)")
    p.add_argument("--tls-key", default=None, help="PEM private key for --tls-cert")
    p.add_argument("--implicit-tls", action="store_true", help="TLS from the first byte (SMTPS) instead of STARTTLS")
    p.add_argument("--max-records", type=int, default=10000)
    args = p.parse_args()
    host = loopback_host(args.host)
    log = Log("smtp_sink", args.log, args.verbose)
    ctx = None
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
    elif args.implicit_tls:
        raise SystemExit("--implicit-tls needs --tls-cert and --tls-key")
    state = State(args.jsonl, args.hostname, args.max_size, args.require_auth, args.max_records)
    smtp = SMTPServer(host, args.port, state, log, None if args.implicit_tls else ctx,
                      ctx if args.implicit_tls else None)
    ctl = LoopbackHTTPServer(host, args.control_port, ControlHandler, state, log)
    ready = "READY %d control=%d" % (smtp.server_address[1], ctl.server_address[1])
    serve_until_signal([smtp, ctl], ready, log)


if __name__ == "__main__":
    main()
