#!/usr/bin/env python3
"""Fake OpenAI-compatible chat-completions upstream for the mod_promptenchanter integration tests.

API:      POST /v1/chat/completions (also any path ending in /chat/completions), GET /v1/models[/<id>]
Control:  JSON under /_control (see tests/fakes/README.md); per-request steering with X-Fake-* headers or
          ``[[fake:key=value;...]]`` directives inside any message content.
Stdout:   one line ``READY <port>``.
"""

import hashlib
import json
import os
import sys
import threading
import time
from collections import Counter, deque

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _fakecommon import (  # noqa: E402
    FakeHandler, Log, LoopbackHTTPServer, Recorder, as_bool, as_int, base_parser, gzip_bomb,
    header_steering, loopback_host, parse_directives, serve_until_signal, sleep_interruptible,
)

MODELS = ["gpt-4o-mini", "gpt-4o", "o3-mini", "gpt-5"]

# Steering keys: accepted in /_control/config, /_control/fail, rules, X-Fake-* headers and [[fake:...]] directives.
STEER_KEYS = {
    "delay_ms",         # wait before answering (ms)
    "status",           # answer with this HTTP status and an OpenAI-style error body
    "retry_after",      # Retry-After header value on an error status (429 defaults to "1")
    "error_message",    # message in the error body
    "fault",            # reset | reset_mid_body | truncate | invalid_json | bad_schema | empty | hang | drip |
                        # huge | gzip_bomb | redirect
    "hang_ms",          # fault=hang: how long to stay silent (default 300000)
    "drip_ms",          # fault=drip: interval between body bytes (default 1000)
    "huge_mb",          # fault=huge: content size in MiB (default 100); fault=gzip_bomb: inflated MiB (default 1024)
    "truncate_after",   # fault=truncate/reset_mid_body on a stream: events sent before the cut (default half)
    "location",         # fault=redirect: Location header (default http://127.0.0.1:9/)
    "stream_delay_ms",  # streaming: pause between SSE events (ms)
    "stream_chunks",    # streaming: number of content chunks (default: one per word)
    "stream_framing",   # streaming: chunked (default for HTTP/1.1) | close (no length; the body ends at the close)
    "cut_mid_event",    # fault=truncate/reset_mid_body on a stream: cut inside event truncate_after, not before it
    "echo",             # summary (default) | last (the last user message verbatim) | messages (JSON of messages)
    "content",          # literal reply content (overrides echo)
    "finish_reason",    # default "stop"
    "usage",            # object, "none" (omit the field), "null" (JSON null) or "p,c,t" integers
    "model",            # model name reported in the reply (default: the requested model)
    "research_topics",  # auto research reply: number of topics (0 -> needs_research false; default 1)
    "auto_research",    # answer research topic-analysis calls with JSON topics (default true)
}

ERROR_TYPES = {
    400: ("invalid_request_error", None, "Bad request"),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided"),
    403: ("invalid_request_error", "forbidden", "Forbidden"),
    404: ("invalid_request_error", "model_not_found", "Not found"),
    429: ("rate_limit_exceeded", "rate_limit_exceeded", "Rate limit reached for requests"),
    500: ("server_error", None, "The server had an error while processing your request"),
    502: ("server_error", None, "Bad gateway"),
    503: ("server_error", None, "The engine is currently overloaded, please try again later"),
    504: ("server_error", None, "Gateway timeout"),
}


class State:
    """Everything the control API can see or change; guarded by `lock` (records by the recorder's lock)."""

    def __init__(self, api_key, cap):
        self.lock = threading.Lock()
        self.api_key = api_key
        self.recorder = Recorder(cap)
        self.config = {}
        self.faults = deque()  # each: {"remaining": n, "steer": {...}}
        self.rules = []  # each: {"match": {...}, "times": n|None, "steer": {...}, "hits": n}
        self.in_flight = 0
        self.max_in_flight = 0
        self.by_path = Counter()
        self.by_status = Counter()
        self.completions = 0

    def reset(self, keep_config=False):
        with self.lock:
            if not keep_config:
                self.config = {}
                self.rules = []
            self.faults.clear()
            self.max_in_flight = self.in_flight
            self.by_path.clear()
            self.by_status.clear()
            self.completions = 0
        self.recorder.clear()

    def enter(self):
        with self.lock:
            self.in_flight += 1
            if self.in_flight > self.max_in_flight:
                self.max_in_flight = self.in_flight

    def leave(self, status):
        with self.lock:
            self.in_flight -= 1
            self.by_status[str(status)] += 1


def check_steer_keys(obj, extra=()):
    bad = sorted(k for k in obj if k not in STEER_KEYS and k not in extra)
    if bad:
        raise ValueError("unknown keys %s; allowed: %s" % (bad, sorted(STEER_KEYS | set(extra))))


def msg_text(m):
    """Message content as text (non-string content is JSON-encoded)."""
    c = m.get("content") if isinstance(m, dict) else None
    if isinstance(c, str):
        return c
    if c is None:
        return ""
    return json.dumps(c, ensure_ascii=False)


def rule_matches(match, req, stream):
    messages = req.get("messages") if isinstance(req.get("messages"), list) else []
    texts = [msg_text(m) for m in messages]
    if "model" in match and req.get("model") != match["model"]:
        return False
    if "contains" in match and not any(match["contains"] in t for t in texts):
        return False
    if "system_contains" in match:
        if not any(isinstance(m, dict) and m.get("role") == "system" and match["system_contains"] in msg_text(m)
                   for m in messages):
            return False
    if "last_user_contains" in match:
        users = [msg_text(m) for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        if not users or match["last_user_contains"] not in users[-1]:
            return False
    if "stream" in match and as_bool(match["stream"]) != stream:
        return False
    return True


def parse_usage(value, default):
    """Usage steering -> (present, object-or-None)."""
    if value is None:
        return True, default
    if isinstance(value, dict):
        return True, value
    s = str(value).strip().lower()
    if s == "none":
        return False, None
    if s == "null":
        return True, None
    parts = [as_int(x.strip()) for x in s.split(",")]
    if len(parts) == 3 and all(p is not None for p in parts):
        return True, {"prompt_tokens": parts[0], "completion_tokens": parts[1], "total_tokens": parts[2]}
    return True, default


def split_pieces(content, n):
    """Split content into stream pieces: one per word by default, or exactly n pieces (padding with ' .')."""
    if n is None or n <= 0:
        pieces, cur = [], ""
        for ch in content:
            cur += ch
            if ch == " ":
                pieces.append(cur)
                cur = ""
        if cur:
            pieces.append(cur)
        return pieces or [""]
    if len(content) < n:
        content = content + " ." * ((n - len(content) + 1) // 2 + 1)
    size, rem = divmod(len(content), n)
    out, pos = [], 0
    for i in range(n):
        step = size + (1 if i < rem else 0)
        out.append(content[pos:pos + step])
        pos += step
    return out


class UpstreamHandler(FakeHandler):
    server_version = "fake-upstream"

    # ---- routing ---------------------------------------------------------------------------------

    def do_GET(self):
        self.route("GET")

    def do_POST(self):
        self.route("POST")

    def do_HEAD(self):
        self.route("HEAD")

    def do_PUT(self):
        self.route("PUT")

    def do_DELETE(self):
        self.route("DELETE")

    def route(self, method):
        path, query = self.split_path()
        if path.startswith("/_control"):
            return self.control(method, path, query)
        self.conn_requests += 1
        st = self.server.state
        with st.lock:
            st.by_path[path] += 1
        if method == "POST" and path.rstrip("/").endswith("/chat/completions"):
            return self.chat()
        body = self.read_body()
        rec = self.new_record(body, None, None)
        if method in ("GET", "HEAD") and path.rstrip("/").endswith("/models"):
            created = 1700000000
            data = [{"id": m, "object": "model", "created": created, "owned_by": "fake"} for m in MODELS]
            self.finish_simple(rec, 200, {"object": "list", "data": data})
            return
        if method in ("GET", "HEAD") and "/models/" in path:
            mid = path.rsplit("/", 1)[1]
            if mid in MODELS:
                self.finish_simple(rec, 200, {"id": mid, "object": "model", "created": 1700000000, "owned_by": "fake"})
            else:
                self.finish_simple(rec, 404, self.error_body(404, "The model '%s' does not exist" % mid))
            return
        self.finish_simple(rec, 404, self.error_body(404, "Unknown path %s %s" % (method, path)))

    def finish_simple(self, rec, status, obj):
        st = self.server.state
        st.enter()
        try:
            self.send_json(status, obj)
        finally:
            st.leave(status)
            ms = round((time.time() - rec["time"]) * 1000, 3)
            st.recorder.update(rec, status=status, finished=True, duration_ms=ms)

    def new_record(self, body, parsed, parse_error):
        rec = {
            "time": time.time(),
            "method": self.command,
            "path": self.path,
            "http_version": self.request_version,
            "conn": self.conn_id,
            "conn_request": self.conn_requests,
            "client": "%s:%s" % (self.client_address[0], self.client_address[1]),
            "headers": self.header_dict(),
            "header_list": self.header_list(),
            "body": body.decode("utf-8", "replace"),
            "body_bytes": len(body),
            "json": parsed,
            "json_error": parse_error,
            "status": None,
            "finished": False,
        }
        return self.server.state.recorder.add(rec)

    # ---- chat completions ------------------------------------------------------------------------

    def chat(self):
        st = self.server.state
        t0 = time.time()
        body = self.read_body()
        parsed, perr = None, None
        try:
            parsed = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            perr = str(e)
        rec = self.new_record(body, parsed, perr)
        req = parsed if isinstance(parsed, dict) else {}
        stream = as_bool(req.get("stream"))
        steer = self.resolve_steering(req, stream)
        rec_steer = dict(steer)
        st.recorder.update(rec, steering=rec_steer, stream=({"events_sent": 0, "completed": False,
                                                              "client_gone_at": None} if stream else None))
        st.enter()
        status = 0
        try:
            status = self.answer_chat(rec, req, parsed, perr, stream, steer)
        except (ConnectionError, TimeoutError, OSError):
            status = status or -1
            self.close_connection = True
        finally:
            st.leave(status)
            st.recorder.update(rec, status=status, finished=True, duration_ms=round((time.time() - t0) * 1000, 3))

    def resolve_steering(self, req, stream):
        """Effective steering: config < queued fault < rule < [[fake:]] directives < X-Fake-* headers."""
        st = self.server.state
        messages = req.get("messages") if isinstance(req.get("messages"), list) else []
        directives = {}
        for m in messages:
            directives.update(parse_directives(msg_text(m)))
        headers = header_steering(self.headers)
        with st.lock:
            steer = dict(st.config)
            rule_steer = None
            for rule in st.rules:
                if rule_matches(rule["match"], req, stream):
                    rule_steer = rule["steer"]
                    rule["hits"] += 1
                    if rule["times"] is not None:
                        rule["times"] -= 1
                        if rule["times"] <= 0:
                            st.rules.remove(rule)
                    break
            own = {}
            own.update(rule_steer or {})
            own.update(directives)
            own.update(headers)
            if "status" not in own and "fault" not in own and st.faults:
                f = st.faults[0]
                steer.update(f["steer"])
                f["remaining"] -= 1
                if f["remaining"] <= 0:
                    st.faults.popleft()
            steer.update(own)
        return {k: v for k, v in steer.items() if k in STEER_KEYS}

    def error_body(self, status, message=None):
        etype, code, default = ERROR_TYPES.get(status, ("server_error" if status >= 500 else "invalid_request_error",
                                                        None, "HTTP %d" % status))
        return {"error": {"message": message or default, "type": etype, "param": None, "code": code}}

    def answer_chat(self, rec, req, parsed, perr, stream, steer):
        """Write the reply for one chat-completion request; returns the status sent (0 if none)."""
        stop = self.server.stopping
        delay = as_int(steer.get("delay_ms"), 0)
        if delay > 0 and not sleep_interruptible(delay / 1000.0, stop):
            self.close_connection = True
            return 0
        fault = (steer.get("fault") or "").strip().lower() or None
        status = as_int(steer.get("status"))
        if status is not None and status != 200 and fault != "redirect":
            headers = []
            ra = steer.get("retry_after")
            if ra is None and status == 429:
                ra = "1"
            if ra is not None and str(ra).lower() != "none":
                headers.append(("Retry-After", str(ra)))
            self.send_json(status, self.error_body(status, steer.get("error_message")), headers)
            return status
        if fault == "reset":
            self.reset_connection()
            return 0
        if fault == "hang":
            sleep_interruptible(as_int(steer.get("hang_ms"), 300000) / 1000.0, stop)
            self.close_connection = True
            return 0
        if fault == "redirect":
            code = status if status and 300 <= status < 400 else 302
            location = str(steer.get("location") or "http://127.0.0.1:9/")
            self.send_bytes(code, b"", "text/plain", [("Location", location)])
            return code
        if fault == "invalid_json":
            self.send_bytes(200, b'{"id":"chatcmpl-broken","object":"chat.completion","choices":[{"index":0,'
                                 b'"message":{"role":"assistant","content":"unterminated', "application/json")
            return 200
        if fault == "empty":
            self.send_bytes(200, b"", "application/json")
            return 200
        key = self.server.state.api_key
        if key is not None and self.headers.get("Authorization", "") != "Bearer " + key:
            self.send_json(401, self.error_body(401))
            return 401
        if parsed is None:
            self.send_json(400, self.error_body(400, "We could not parse the JSON body of your request: %s" % perr))
            return 400
        if not isinstance(parsed, dict) or not isinstance(req.get("model"), str) or not req.get("model"):
            self.send_json(400, self.error_body(400, "you must provide a model parameter"))
            return 400
        if not isinstance(req.get("messages"), list) or not req["messages"]:
            self.send_json(400, self.error_body(400, "'messages' must be a non-empty array"))
            return 400
        seq = rec["seq"]
        model = str(steer.get("model") or req["model"])
        content = self.make_content(req, steer, seq, model)
        usage_default = {
            "prompt_tokens": max(1, sum(len(msg_text(m)) for m in req["messages"]) // 4),
            "completion_tokens": max(1, len(content) // 4),
        }
        usage_default["total_tokens"] = usage_default["prompt_tokens"] + usage_default["completion_tokens"]
        has_usage, usage = parse_usage(steer.get("usage"), usage_default)
        finish = steer.get("finish_reason", "stop")
        with self.server.state.lock:
            self.server.state.completions += 1
        ident = "chatcmpl-fake-%d" % seq
        created = int(time.time())
        if stream:
            return self.stream_reply(rec, req, steer, fault, ident, created, model, content, has_usage, usage, finish)
        if fault == "huge":
            return self.huge_reply(ident, created, model, as_int(steer.get("huge_mb"), 100))
        if fault == "gzip_bomb":
            length, pieces = gzip_bomb(as_int(steer.get("huge_mb"), 1024))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(length))
            self.end_headers()
            for p in pieces:
                self.wfile.write(p)
            return 200
        message = {"role": "assistant", "content": content}
        if fault == "bad_schema":
            message = {"role": "tool", "content": None}
        obj = {
            "id": ident,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        }
        if has_usage:
            obj["usage"] = usage
        body = json.dumps(obj, ensure_ascii=False).encode("utf-8")
        headers = [("X-Request-Id", "req_fake_%d" % seq), ("X-Fake-Seq", str(seq))]
        if fault in ("truncate", "reset_mid_body", "drip"):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for k, v in headers:
                self.send_header(k, v)
            self.end_headers()
            if fault == "drip":
                interval = as_int(steer.get("drip_ms"), 1000) / 1000.0
                for i in range(len(body)):
                    self.wfile.write(body[i:i + 1])
                    if not sleep_interruptible(interval, self.server.stopping):
                        break
                return 200
            self.wfile.write(body[:len(body) // 2])
            if fault == "truncate":
                self.close_abruptly()
            else:
                self.reset_connection()
            return 200
        self.send_bytes(200, body, "application/json", headers)
        return 200

    def make_content(self, req, steer, seq, model):
        if steer.get("content") is not None:
            return str(steer["content"])
        messages = req["messages"]
        roles = [m.get("role") if isinstance(m, dict) else "?" for m in messages]
        users = [msg_text(m) for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        last_user = users[-1] if users else ""
        if as_bool(steer.get("auto_research"), True):
            systems = [msg_text(m) for m in messages if isinstance(m, dict) and m.get("role") == "system"]
            if any("needs_research" in s for s in systems):
                return self.research_reply(last_user, as_int(steer.get("research_topics"), 1))
        echo = str(steer.get("echo") or "summary").lower()
        if echo == "last":
            return last_user
        if echo == "messages":
            return json.dumps(messages, ensure_ascii=False)
        raw = last_user.encode("utf-8")
        return ("fake-upstream reply: model=%s messages=%d roles=%s last_user_chars=%d last_user_bytes=%d "
                "last_user_sha256=%s request=%d" % (model, len(messages), ",".join(str(r) for r in roles),
                                                    len(last_user), len(raw), hashlib.sha256(raw).hexdigest()[:16],
                                                    seq))

    @staticmethod
    def research_reply(last_user, n):
        query = last_user[len("Query: "):] if last_user.startswith("Query: ") else last_user
        query = query.strip()
        if n <= 0 or not query:
            return json.dumps({"needs_research": False, "topics": []})
        topics = []
        for i in range(n):
            topics.append({"topic": query if n == 1 else "%s (aspect %d)" % (query, i + 1),
                           "importance": 0.8, "subtopics": ["detail %d" % (i + 1)]})
        return json.dumps({"needs_research": True, "topics": topics}, ensure_ascii=False)

    def huge_reply(self, ident, created, model, mib):
        mib = max(1, mib)
        head = json.dumps({"id": ident, "object": "chat.completion", "created": created, "model": model})[:-1]
        head = (head + ',"choices":[{"index":0,"message":{"role":"assistant","content":"').encode()
        tail = b'"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}'
        n = mib << 20
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(head) + n + len(tail)))
        self.end_headers()
        self.wfile.write(head)
        block = b"a" * (1 << 20)
        for _ in range(mib):
            self.wfile.write(block)
        self.wfile.write(tail)
        return 200

    def stream_reply(self, rec, req, steer, fault, ident, created, model, content, has_usage, usage, finish):
        st = self.server.state
        opts = req.get("stream_options") if isinstance(req.get("stream_options"), dict) else {}
        include_usage = as_bool(opts.get("include_usage"))

        def chunk(delta, finish_reason=None, choices=True):
            obj = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": model,
                   "system_fingerprint": "fp_fake",
                   "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]
                   if choices else []}
            if include_usage:
                obj["usage"] = None
            return obj

        events = [chunk({"role": "assistant", "content": ""})]
        for piece in split_pieces(content, as_int(steer.get("stream_chunks"))):
            events.append(chunk({"content": piece}))
        events.append(chunk({}, finish))
        if include_usage:
            u = chunk({}, choices=False)
            u["usage"] = usage if has_usage else None
            events.append(u)
        payloads = [("data: " + json.dumps(e, ensure_ascii=False) + "\n\n").encode("utf-8") for e in events]
        payloads.append(b"data: [DONE]\n\n")
        cut = None
        if fault in ("truncate", "reset_mid_body"):
            cut = as_int(steer.get("truncate_after"), len(payloads) // 2)
        framing = str(steer.get("stream_framing") or "").strip().lower()
        chunked = self.request_version == "HTTP/1.1" and framing != "close"
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("X-Request-Id", "req_fake_%d" % rec["seq"])
        self.send_header("X-Fake-Seq", str(rec["seq"]))
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.flush()
        gap = as_int(steer.get("stream_delay_ms"), 0) / 1000.0
        if fault == "drip":
            gap = as_int(steer.get("drip_ms"), 1000) / 1000.0
        sent = 0
        try:
            for i, p in enumerate(payloads):
                if i > 0 and gap > 0 and not sleep_interruptible(gap, self.server.stopping):
                    self.close_abruptly()
                    return 200
                if cut is not None and i >= cut:
                    if as_bool(steer.get("cut_mid_event")):
                        half = p[:max(1, len(p) // 2)]
                        if chunked:
                            self.write_chunk(half)
                        else:
                            self.wfile.write(half)
                    if fault == "truncate":
                        self.close_abruptly()
                    else:
                        self.reset_connection()
                    return 200
                if chunked:
                    self.write_chunk(p)
                else:
                    self.wfile.write(p)
                self.wfile.flush()
                sent += 1
                st.recorder.mutate(lambda n=sent: rec["stream"].__setitem__("events_sent", n))
            if chunked:
                self.end_chunks()
            self.wfile.flush()
            st.recorder.mutate(lambda: rec["stream"].__setitem__("completed", True))
        except (ConnectionError, OSError):
            gone = time.time()
            st.recorder.mutate(lambda: rec["stream"].__setitem__("client_gone_at", gone))
            self.close_connection = True
        return 200

    # ---- control API -----------------------------------------------------------------------------

    def control(self, method, path, query):
        st = self.server.state
        try:
            body = self.control_json() if method in ("POST", "PUT") else {}
        except ValueError as e:
            return self.send_json(400, {"error": "bad control body: %s" % e})
        try:
            return self.control_route(method, path, query, body, st)
        except (ValueError, TypeError, KeyError) as e:
            return self.send_json(400, {"error": str(e)})

    def control_route(self, method, path, query, body, st):
        if path == "/_control/health":
            return self.send_json(200, {"ok": True, "pid": os.getpid(), "server": "fake_upstream"})
        if path == "/_control/requests" and method == "GET":
            since = as_int((query.get("since") or ["0"])[0], 0)
            limit = as_int((query.get("limit") or [None])[0])
            pfilter = (query.get("path") or [None])[0]
            where = (lambda r: r["path"].split("?", 1)[0] == pfilter) if pfilter else None
            recs = st.recorder.snapshot(since, limit, where)
            return self.send_json(200, {"total": st.recorder.total, "last_seq": st.recorder.seq, "requests": recs})
        if path == "/_control/requests/last" and method == "GET":
            recs = st.recorder.snapshot(0, 1)
            if not recs:
                return self.send_json(404, {"error": "no requests recorded"})
            return self.send_json(200, recs[0])
        if path == "/_control/reset" and method == "POST":
            st.reset(keep_config=as_bool(body.get("keep_config")) if isinstance(body, dict) else False)
            return self.send_json(200, {"ok": True})
        if path == "/_control/config":
            if method == "GET":
                with st.lock:
                    return self.send_json(200, dict(st.config))
            if method in ("POST", "PUT"):
                if not isinstance(body, dict):
                    raise ValueError("config must be a JSON object")
                check_steer_keys(body)
                with st.lock:
                    if method == "PUT":
                        st.config = {}
                    for k, v in body.items():
                        if v is None:
                            st.config.pop(k, None)
                        else:
                            st.config[k] = v
                    return self.send_json(200, dict(st.config))
        if path == "/_control/delay" and method == "POST":
            ms = as_int(body.get("ms", body.get("delay_ms")))
            if ms is None or ms < 0:
                raise ValueError("give {\"ms\": N} with N >= 0")
            with st.lock:
                st.config["delay_ms"] = ms
            return self.send_json(200, {"delay_ms": ms})
        if path == "/_control/fail" and method == "POST":
            if not isinstance(body, dict):
                raise ValueError("fail must be a JSON object")
            count = as_int(body.get("count"), 1)
            steer = {k: v for k, v in body.items() if k != "count"}
            check_steer_keys(steer)
            if "status" not in steer and "fault" not in steer:
                raise ValueError("fail needs a status or a fault")
            with st.lock:
                if count > 0:
                    st.faults.append({"remaining": count, "steer": steer})
                pending = sum(f["remaining"] for f in st.faults)
            return self.send_json(200, {"pending": pending})
        if path == "/_control/fail" and method == "DELETE":
            with st.lock:
                st.faults.clear()
            return self.send_json(200, {"pending": 0})
        if path == "/_control/rules":
            if method == "GET":
                with st.lock:
                    return self.send_json(200, {"rules": json.loads(json.dumps(st.rules))})
            if method == "DELETE":
                with st.lock:
                    st.rules = []
                return self.send_json(200, {"rules": []})
            if method in ("POST", "PUT"):
                rules = body.get("rules") if isinstance(body, dict) else body
                if not isinstance(rules, list):
                    raise ValueError("give {\"rules\": [...]} or a JSON array")
                new = []
                for r in rules:
                    if not isinstance(r, dict):
                        raise ValueError("each rule must be an object")
                    match = r.get("match") or {}
                    if not isinstance(match, dict):
                        raise ValueError("rule.match must be an object")
                    badm = set(match) - {"model", "contains", "system_contains", "last_user_contains", "stream"}
                    if badm:
                        raise ValueError("unknown match keys %s" % sorted(badm))
                    steer = {k: v for k, v in r.items() if k not in ("match", "times")}
                    check_steer_keys(steer)
                    new.append({"match": match, "times": as_int(r.get("times")), "steer": steer, "hits": 0})
                with st.lock:
                    append = isinstance(body, dict) and as_bool(body.get("append"))
                    st.rules = (st.rules + new) if append else new
                    return self.send_json(200, {"rules": json.loads(json.dumps(st.rules))})
        if path == "/_control/stats" and method == "GET":
            with st.lock:
                pending = sum(f["remaining"] for f in st.faults)
                out = {"total_requests": st.recorder.total, "completions": st.completions,
                       "in_flight": st.in_flight, "max_in_flight": st.max_in_flight,
                       "connections": self.server.connections, "by_path": dict(st.by_path),
                       "by_status": dict(st.by_status), "faults_pending": pending}
            return self.send_json(200, out)
        if path == "/_control/stats/reset" and method == "POST":
            with st.lock:
                st.max_in_flight = st.in_flight
            return self.send_json(200, {"ok": True})
        return self.send_json(404, {"error": "unknown control endpoint %s %s" % (method, path)})


def main():
    p = base_parser("Fake OpenAI-compatible chat-completions server (loopback only).")
    p.add_argument("--api-key", default=None, help="require 'Authorization: Bearer KEY' (default: accept any)")
    p.add_argument("--max-records", type=int, default=20000, help="keep at most this many request records")
    args = p.parse_args()
    host = loopback_host(args.host)
    log = Log("fake_upstream", args.log, args.verbose)
    state = State(args.api_key, args.max_records)
    srv = LoopbackHTTPServer(host, args.port, UpstreamHandler, state, log)
    serve_until_signal([srv], "READY %d" % srv.server_address[1], log)


if __name__ == "__main__":
    main()
