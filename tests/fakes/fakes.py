"""Helpers for the integration tests: start the fake servers as subprocesses and drive their control APIs.

Standard library only (urllib, subprocess). Every server is started on a free loopback port, its stdout READY
line is read, and the returned object knows .pid, .port, .url, .control_url, .log_path and .stop() (SIGTERM by
pid, then SIGKILL after a timeout). Servers left running are stopped at interpreter exit.

    from fakes import start_upstream, start_web, start_search, start_canary, start_smtp
    up = start_upstream()
    up.fail(count=2, status=503)
    ... point the module at up.chat_url ...
    assert len(up.requests()) == 3
    up.stop()
"""

import atexit
import itertools
import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

FAKES_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(os.path.dirname(FAKES_DIR))
BENCH_UPSTREAM = os.path.join(REPO_DIR, "bench", "fake-upstream.mjs")

_LIVE = {}
_COUNTER = itertools.count(1)
_LOG_DIR = None


class FakeError(Exception):
    """A fake failed to start, or a control call failed."""


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


# NB: no proxies ever (an http_proxy in the environment must not see loopback test traffic).
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
_OPENER_NOREDIR = urllib.request.build_opener(urllib.request.ProxyHandler({}), NoRedirect())


class Response:
    """Result of http(): .status, .headers (email.message.Message), .body (bytes), .json(), .text."""

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        return "<Response %s %d bytes>" % (self.status, len(self.body))


def http(method, url, body=None, headers=None, timeout=30, follow_redirects=False):
    """One HTTP request with urllib (no proxy). `body` may be bytes, str or a JSON-able object.

    Returns a Response for every HTTP status (4xx/5xx included); raises OSError/URLError on network errors.
    """
    data = None
    hdrs = dict(headers or {})
    if body is not None:
        if isinstance(body, bytes):
            data = body
        elif isinstance(body, str):
            data = body.encode("utf-8")
        else:
            data = json.dumps(body).encode("utf-8")
            hdrs.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(url, data=data, headers=hdrs, method=method)
    opener = _OPENER if follow_redirects else _OPENER_NOREDIR
    try:
        with opener.open(req, timeout=timeout) as r:
            return Response(r.status, r.headers, r.read())
    except urllib.error.HTTPError as e:
        try:
            payload = e.read()
        except OSError:
            payload = b""
        return Response(e.code, e.headers, payload)


def http_json(method, url, body=None, headers=None, timeout=30):
    """(status, parsed JSON or text) of one request."""
    r = http(method, url, body, headers, timeout)
    try:
        return r.status, r.json()
    except ValueError:
        return r.status, r.text


def _log_dir():
    global _LOG_DIR
    if _LOG_DIR is None:
        _LOG_DIR = os.environ.get("PE_FAKES_LOG_DIR") or tempfile.mkdtemp(prefix="pe-fakes-")
        os.makedirs(_LOG_DIR, exist_ok=True)
    return _LOG_DIR


class FakeServer:
    """A running fake: .pid .port .host .url .control_port .control_url .info .log_path; .stop()."""

    def __init__(self, name, proc, tokens, host, log_path):
        self.name = name
        self.proc = proc
        self.host = host
        self.log_path = log_path
        self.port = int(tokens[0])
        self.info = dict(t.split("=", 1) for t in tokens[1:] if "=" in t)
        self.control_port = int(self.info.get("control", self.port))
        hp = "[%s]" % host if ":" in host else host
        self.url = "http://%s:%d" % (hp, self.port)
        self.control_url = "http://%s:%d/_control" % (hp, self.control_port)

    @property
    def pid(self):
        return self.proc.pid

    def __repr__(self):
        return "<%s %s pid=%d port=%d>" % (type(self).__name__, self.name, self.pid, self.port)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def alive(self):
        return self.proc.poll() is None

    def stop(self, timeout=5.0):
        """SIGTERM the process by pid, wait; SIGKILL if it has not exited after `timeout`. Returns the exit code."""
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.kill(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait()
        if self.proc.stdout is not None and not self.proc.stdout.closed:
            self.proc.stdout.close()
        _LIVE.pop(self.proc.pid, None)
        return self.proc.returncode

    def log_text(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def control(self, method, path, body=None, timeout=30):
        """Call the control API (`path` relative to /_control, e.g. 'requests'); raises FakeError on >= 400."""
        url = self.control_url + "/" + path.lstrip("/")
        status, data = http_json(method, url, body, timeout=timeout)
        if status >= 400:
            raise FakeError("%s %s -> %d: %s" % (method, url, status, data))
        return data

    def health(self):
        return self.control("GET", "health")

    def reset(self, **kw):
        return self.control("POST", "reset", kw or None)


def _q(**params):
    items = {k: v for k, v in params.items() if v is not None}
    return ("?" + urllib.parse.urlencode(items)) if items else ""


def _wait(fetch, n, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        items = fetch()
        if len(items) >= n:
            return items
        if time.monotonic() >= deadline:
            raise FakeError("timed out after %.1fs waiting for %d %s (have %d)" % (timeout, n, what, len(items)))
        time.sleep(0.05)


class Upstream(FakeServer):
    """Fake OpenAI-compatible upstream (fake_upstream.py or, for benchmarks, bench/fake-upstream.mjs)."""

    @property
    def base_url(self):
        return self.url + "/v1"

    @property
    def chat_url(self):
        return self.url + "/v1/chat/completions"

    def requests(self, since=0, limit=None, path=None):
        return self.control("GET", "requests" + _q(since=since or None, limit=limit, path=path))["requests"]

    def last_request(self):
        return self.control("GET", "requests/last")

    def wait_for_requests(self, n, timeout=10.0, since=0, path=None):
        return _wait(lambda: self.requests(since=since, path=path), n, timeout, "upstream requests")

    def config(self, **kw):
        """Merge steering defaults (delay_ms, echo, content, usage, stream_delay_ms, ...); None removes a key."""
        return self.control("POST", "config", kw)

    def get_config(self):
        return self.control("GET", "config")

    def set_delay(self, ms):
        return self.control("POST", "delay", {"ms": ms})

    def fail(self, count=1, status=None, retry_after=None, fault=None, **kw):
        """Queue `count` failing answers: an HTTP `status` (429 gets Retry-After 1 unless given) or a `fault`."""
        body = dict(kw, count=count)
        if status is not None:
            body["status"] = status
        if retry_after is not None:
            body["retry_after"] = retry_after
        if fault is not None:
            body["fault"] = fault
        return self.control("POST", "fail", body)

    def clear_faults(self):
        return self.control("DELETE", "fail")

    def set_rules(self, rules, append=False):
        return self.control("POST", "rules", {"rules": rules, "append": append})["rules"]

    def rules(self):
        return self.control("GET", "rules")["rules"]

    def stats(self):
        return self.control("GET", "stats")

    def reset_stats(self):
        return self.control("POST", "stats/reset")

    def chat(self, content="hello", model="gpt-4o-mini", messages=None, stream=False, headers=None, timeout=30,
             **extra):
        """Send one chat completion straight to the fake (for probing it); returns a Response."""
        body = {"model": model, "messages": messages or [{"role": "user", "content": content}]}
        if stream:
            body["stream"] = True
        body.update(extra)
        return http("POST", self.chat_url, body, headers, timeout)


class Search(FakeServer):
    """Fake SearxNG-compatible search API (fake_search.py)."""

    @property
    def search_url(self):
        return self.url + "/search"

    def queries(self, since=0, limit=None):
        return self.control("GET", "queries" + _q(since=since or None, limit=limit))["queries"]

    def wait_for_queries(self, n, timeout=10.0, since=0):
        return _wait(lambda: self.queries(since=since), n, timeout, "search queries")

    def config(self, **kw):
        """Merge defaults: results (list of paths/URLs/objects), max_results, delay_ms, status, fault, web_base."""
        return self.control("POST", "config", kw)

    def set_delay(self, ms):
        return self.control("POST", "delay", {"ms": ms})

    def fail(self, count=1, status=None, fault=None, **kw):
        body = dict(kw, count=count)
        if status is not None:
            body["status"] = status
        if fault is not None:
            body["fault"] = fault
        return self.control("POST", "fail", body)

    def set_rules(self, rules, append=False):
        return self.control("POST", "rules", {"rules": rules, "append": append})["rules"]

    def stats(self):
        return self.control("GET", "stats")

    def search(self, q, fmt="json", headers=None, timeout=30):
        return http("GET", self.search_url + "?" + urllib.parse.urlencode({"q": q, "format": fmt}), None, headers,
                    timeout)


class Web(FakeServer):
    """Fake web server with fixture pages (fake_web.py)."""

    def url_for(self, path):
        return self.url + "/" + path.lstrip("/")

    def requests(self, since=0, limit=None, path=None):
        return self.control("GET", "requests" + _q(since=since or None, limit=limit, path=path))["requests"]

    def counts(self):
        return self.control("GET", "counts")

    def count(self, path):
        return self.counts()["by_path"].get(path, 0)

    def config(self, **kw):
        return self.control("POST", "config", kw)

    def get(self, path, headers=None, timeout=30, follow_redirects=False):
        return http("GET", self.url_for(path), None, headers, timeout, follow_redirects)


class Canary(FakeServer):
    """Canary TCP listener(s) (canary.py)."""

    @property
    def ports(self):
        return [int(p) for p in self.info.get("ports", str(self.port)).split(",")]

    def count(self):
        return self.control("GET", "count")["total"]

    def by_listener(self):
        return self.control("GET", "count")["by_listener"]

    def connections(self, since=0):
        return self.control("GET", "connections" + _q(since=since or None))["connections"]


class Smtp(FakeServer):
    """SMTP sink (smtp_sink.py); .port is the SMTP port, .control_port the HTTP control port."""

    def messages(self, since=0):
        return self.control("GET", "messages" + _q(since=since or None))["messages"]

    def wait_for_messages(self, n, timeout=10.0, since=0):
        return _wait(lambda: self.messages(since=since), n, timeout, "mail messages")

    def sessions(self):
        return self.control("GET", "sessions")["sessions"]

    def stats(self):
        return self.control("GET", "stats")

    def config(self, **kw):
        """greeting_delay_ms, reply_delay_ms."""
        return self.control("POST", "config", kw)

    def fail(self, stage, code, count=1, message=None):
        """Answer `code` at `stage` (connect ehlo helo starttls auth mail rcpt data data_end); code 0 drops."""
        body = {"stage": stage, "code": code, "count": count}
        if message is not None:
            body["message"] = message
        return self.control("POST", "fail", body)

    def clear_fails(self):
        return self.control("DELETE", "fail")


def start(script, args=(), cls=FakeServer, host="127.0.0.1", port=0, log_dir=None, ready_timeout=15.0, cmd=None,
          name=None, env=None):
    """Start a fake as a subprocess and wait for its READY line.

    `script` is a file in tests/fakes (run with this Python) unless `cmd` gives the whole command prefix.
    stderr goes to <log_dir>/<name>-<n>.log (log_dir: $PE_FAKES_LOG_DIR or a fresh temporary directory).
    """
    if cmd is None:
        cmd = [sys.executable, os.path.join(FAKES_DIR, script)]
    name = name or os.path.splitext(os.path.basename(script or cmd[-1]))[0]
    argv = list(cmd) + ["--host", host, "--port", str(port)] + [str(a) for a in args]
    log_dir = log_dir or _log_dir()
    os.makedirs(log_dir, exist_ok=True)
    log_path = os.path.join(log_dir, "%s-%d.log" % (name, next(_COUNTER)))
    with open(log_path, "ab") as logf:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=logf, stdin=subprocess.DEVNULL,
                                start_new_session=True, env=env)
    buf = b""
    deadline = time.monotonic() + ready_timeout
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    try:
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise FakeError("%s: no READY line within %.1fs" % (name, ready_timeout))
            if not sel.select(left):
                continue
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                proc.wait(5)
                raise FakeError("%s exited with %s before READY" % (name, proc.returncode))
            buf += chunk
        line = buf.split(b"\n", 1)[0].decode("utf-8", "replace").strip()
        tokens = line.split()
        if len(tokens) < 2 or tokens[0] != "READY" or not tokens[1].isdigit():
            raise FakeError("%s: unexpected first stdout line %r" % (name, line))
    except BaseException as e:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        proc.stdout.close()
        try:
            with open(log_path, encoding="utf-8", errors="replace") as f:
                tail = f.read()[-2000:]
        except OSError:
            tail = ""
        if isinstance(e, FakeError):
            raise FakeError("%s\ncommand: %s\nlog %s:\n%s" % (e, " ".join(argv), log_path, tail)) from None
        raise
    finally:
        sel.close()
    srv = cls(name, proc, tokens[1:], host, log_path)
    _LIVE[proc.pid] = srv
    return srv


def start_upstream(api_key=None, max_records=None, extra_args=(), **kw):
    """fake_upstream.py; `api_key` makes it require 'Authorization: Bearer <api_key>'."""
    args = list(extra_args)
    if api_key is not None:
        args += ["--api-key", api_key]
    if max_records is not None:
        args += ["--max-records", max_records]
    return start("fake_upstream.py", args, cls=Upstream, **kw)


def start_search(web=None, web_base=None, extra_args=(), **kw):
    """fake_search.py; result paths are joined to `web_base` or to the url of the Web fake `web`."""
    base = web_base or (web.url if web is not None else "http://127.0.0.1:9")
    return start("fake_search.py", ["--web-base", base] + list(extra_args), cls=Search, **kw)


def start_web(canary_port=None, pages=None, extra_args=(), **kw):
    """fake_web.py; `canary_port` is where /redirect/canary points."""
    args = list(extra_args)
    if canary_port is not None:
        args += ["--canary-port", canary_port]
    if pages is not None:
        args += ["--pages", pages]
    return start("fake_web.py", args, cls=Web, **kw)


def start_canary(ports=(0,), reply="http", count_file=None, control_port=0, extra_args=(), **kw):
    """canary.py listening on every port in `ports` (0 = a free port) of one loopback host."""
    ports = list(ports) or [0]
    args = ["--control-port", control_port, "--reply", reply]
    for p in ports[1:]:
        args += ["--port", p]
    if count_file is not None:
        args += ["--count-file", count_file]
    return start("canary.py", args + list(extra_args), cls=Canary, port=ports[0], **kw)


def start_smtp(jsonl=None, tls_cert=None, tls_key=None, implicit_tls=False, require_auth=False, control_port=0,
               extra_args=(), **kw):
    """smtp_sink.py; with tls_cert/tls_key it offers STARTTLS (or speaks TLS at once with implicit_tls)."""
    args = ["--control-port", control_port]
    if jsonl is not None:
        args += ["--jsonl", jsonl]
    if tls_cert is not None:
        args += ["--tls-cert", tls_cert, "--tls-key", tls_key]
    if implicit_tls:
        args.append("--implicit-tls")
    if require_auth:
        args.append("--require-auth")
    return start("smtp_sink.py", args + list(extra_args), cls=Smtp, **kw)


def start_bench_upstream(extra_args=(), **kw):
    """bench/fake-upstream.mjs (node): fixed reply, fast; it has no control API."""
    return start(None, list(extra_args), cls=Upstream, cmd=["node", BENCH_UPSTREAM], name="fake-upstream-node", **kw)


def make_self_signed_cert(directory, cn="localhost"):
    """(cert_path, key_path) of a fresh self-signed certificate for 127.0.0.1/localhost (openssl CLI)."""
    os.makedirs(directory, exist_ok=True)
    cert = os.path.join(directory, "fake-cert.pem")
    key = os.path.join(directory, "fake-key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=" + cn,
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", key, "-out", cert],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cert, key


def stop_all():
    """Stop every fake this process started and has not stopped yet."""
    for srv in list(_LIVE.values()):
        try:
            srv.stop()
        except Exception:
            pass


atexit.register(stop_all)
