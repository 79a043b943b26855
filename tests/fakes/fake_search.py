#!/usr/bin/env python3
"""Fake SearxNG-compatible JSON search API whose results point at the fake web server.

API:      GET /search?q=...&format=json (POST with a form body works too)
Control:  JSON under /_control (see tests/fakes/README.md); per-request steering with X-Fake-* headers or a
          ``[[fake:key=value;...]]`` directive inside q.
Stdout:   one line ``READY <port>``.
"""

import json
import os
import sys
import threading
import time
from collections import deque
from urllib.parse import parse_qs

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _fakecommon import (  # noqa: E402
    DIRECTIVE_RE, FakeHandler, Log, LoopbackHTTPServer, Recorder, as_bool, as_int, base_parser, header_steering,
    loopback_host, parse_directives, serve_until_signal, sleep_interruptible,
)

DEFAULT_RESULTS = [
    {"path": "/article.html", "title": "Honeybee Navigation and the Waggle Dance"},
    {"path": "/article2.html", "title": "Solar Panel Efficiency Basics"},
    {"path": "/article3.html", "title": "A Short History of the Printing Press"},
    {"path": "/article4.html", "title": "How Sourdough Starters Work"},
    {"path": "/notes.txt", "title": "Plain text notes on tide tables"},
]

# Steering keys: /_control/config, /_control/fail, rules, X-Fake-* headers, [[fake:...]] in q.
STEER_KEYS = {"delay_ms", "status", "retry_after", "fault", "hang_ms", "results", "max_results"}


class State:
    def __init__(self, web_base, cap):
        self.lock = threading.Lock()
        self.web_base = web_base.rstrip("/")
        self.recorder = Recorder(cap)
        self.config = {}
        self.faults = deque()
        self.rules = []

    def reset(self, keep_config=False):
        with self.lock:
            if not keep_config:
                self.config = {}
                self.rules = []
            self.faults.clear()
        self.recorder.clear()


def check_keys(obj, extra=()):
    bad = sorted(k for k in obj if k not in STEER_KEYS and k not in extra)
    if bad:
        raise ValueError("unknown keys %s; allowed: %s" % (bad, sorted(STEER_KEYS | set(extra))))


def normalise_results(value):
    """Results steering -> list of result dicts. Accepts a list (of strings or objects) or 'a|b|c'."""
    if value is None:
        return None
    if isinstance(value, str):
        value = [v for v in value.split("|") if v.strip()] if value.strip() else []
    if not isinstance(value, list):
        raise ValueError("results must be a list or a '|'-separated string")
    out = []
    for item in value:
        if isinstance(item, str):
            item = item.strip()
            out.append({"url": item} if "://" in item else {"path": item if item.startswith("/") else "/" + item})
        elif isinstance(item, dict) and ("url" in item or "path" in item):
            out.append(dict(item))
        else:
            raise ValueError("each result needs a url or a path")
    return out


class SearchHandler(FakeHandler):
    server_version = "fake-search"

    def do_GET(self):
        self.route()

    def do_POST(self):
        self.route()

    def do_HEAD(self):
        self.route()

    def route(self):
        path, query = self.split_path()
        if path.startswith("/_control"):
            return self.control(path, query)
        body = self.read_body()
        if self.command == "POST" and body:
            for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items():
                query.setdefault(k, v)
        st = self.server.state
        q = (query.get("q") or [""])[0]
        rec = st.recorder.add({
            "time": time.time(), "method": self.command, "path": self.path, "route": path, "q": q,
            "params": {k: v[0] if len(v) == 1 else v for k, v in query.items()},
            "headers": self.header_dict(), "client": "%s:%s" % self.client_address[:2], "conn": self.conn_id,
            "status": None, "finished": False,
        })
        t0 = time.time()
        status = 0
        try:
            status = self.answer(path, query, q, rec)
        except (ConnectionError, OSError):
            self.close_connection = True
        finally:
            st.recorder.update(rec, status=status, finished=True, duration_ms=round((time.time() - t0) * 1000, 3))

    def resolve(self, q):
        st = self.server.state
        directives = {k: v for k, v in parse_directives(q).items() if k in STEER_KEYS}
        headers = {k: v for k, v in header_steering(self.headers).items() if k in STEER_KEYS}
        with st.lock:
            steer = dict(st.config)
            rule_steer = None
            ql = q.lower()
            for rule in st.rules:
                if rule["match"].lower() in ql:
                    rule_steer = rule["steer"]
                    rule["hits"] += 1
                    if rule["times"] is not None:
                        rule["times"] -= 1
                        if rule["times"] <= 0:
                            st.rules.remove(rule)
                    break
            own = dict(rule_steer or {})
            own.update(directives)
            own.update(headers)
            if "status" not in own and "fault" not in own and st.faults:
                f = st.faults[0]
                steer.update(f["steer"])
                f["remaining"] -= 1
                if f["remaining"] <= 0:
                    st.faults.popleft()
            steer.update(own)
        return steer

    def answer(self, path, query, q, rec):
        st = self.server.state
        if path not in ("/search", "/search/"):
            self.send_json(404, {"error": "not found"})
            return 404
        steer = self.resolve(q)
        st.recorder.update(rec, steering=json.loads(json.dumps(steer)))
        delay = as_int(steer.get("delay_ms"), 0)
        if delay > 0 and not sleep_interruptible(delay / 1000.0, self.server.stopping):
            self.close_connection = True
            return 0
        status = as_int(steer.get("status"))
        if status is not None and status != 200:
            headers = []
            ra = steer.get("retry_after")
            if ra is None and status == 429:
                ra = "1"
            if ra is not None:
                headers.append(("Retry-After", str(ra)))
            self.send_bytes(status, b"Too Many Requests" if status == 429 else b"Error", "text/plain", headers)
            return status
        fault = (steer.get("fault") or "").lower() or None
        if fault == "reset":
            self.reset_connection()
            return 0
        if fault == "hang":
            sleep_interruptible(as_int(steer.get("hang_ms"), 300000) / 1000.0, self.server.stopping)
            self.close_connection = True
            return 0
        if fault == "invalid_json":
            self.send_bytes(200, b'{"query": "broken", "results": [{"url": ', "application/json")
            return 200
        if fault == "empty":
            self.send_bytes(200, b"", "application/json")
            return 200
        fmt = (query.get("format") or [""])[0]
        if fmt != "json":
            # NB: SearxNG answers 403 when the requested output format is not enabled.
            self.send_bytes(403, b"Forbidden", "text/plain")
            return 403
        results = normalise_results(steer.get("results"))
        if results is None:
            results = DEFAULT_RESULTS
        if fault == "no_results":
            results = []
        limit = as_int(steer.get("max_results"))
        if limit is not None:
            results = results[:max(0, limit)]
        clean_q = DIRECTIVE_RE.sub("", q).strip()
        out = []
        for i, r in enumerate(results):
            url = r["url"] if "url" in r else st.web_base + r["path"]
            out.append({
                "url": url,
                "title": r.get("title") or "Result %d for %s" % (i + 1, clean_q),
                "content": r.get("content") or "Snippet %d about %s from %s" % (i + 1, clean_q, url),
                "engine": "fake",
                "engines": ["fake"],
                "positions": [i + 1],
                "score": round(1.0 / (i + 1), 4),
                "category": "general",
            })
        doc = {"query": q, "number_of_results": len(out), "results": out, "answers": [], "corrections": [],
               "infoboxes": [], "suggestions": [], "unresponsive_engines": []}
        self.send_json(200, doc)
        return 200

    def control(self, path, query):
        st = self.server.state
        try:
            body = self.control_json() if self.command in ("POST", "PUT") else {}
        except ValueError as e:
            return self.send_json(400, {"error": "bad control body: %s" % e})
        try:
            return self.control_route(path, query, body, st)
        except (ValueError, TypeError, KeyError) as e:
            return self.send_json(400, {"error": str(e)})

    def control_route(self, path, query, body, st):
        m = self.command
        if path == "/_control/health":
            return self.send_json(200, {"ok": True, "pid": os.getpid(), "server": "fake_search",
                                        "web_base": st.web_base})
        if path in ("/_control/queries", "/_control/requests") and m == "GET":
            since = as_int((query.get("since") or ["0"])[0], 0)
            limit = as_int((query.get("limit") or [None])[0])
            recs = st.recorder.snapshot(since, limit)
            return self.send_json(200, {"total": st.recorder.total, "last_seq": st.recorder.seq, "queries": recs})
        if path == "/_control/reset" and m == "POST":
            st.reset(keep_config=as_bool(body.get("keep_config")) if isinstance(body, dict) else False)
            return self.send_json(200, {"ok": True})
        if path == "/_control/config":
            if m == "GET":
                with st.lock:
                    return self.send_json(200, dict(st.config, web_base=st.web_base))
            if m in ("POST", "PUT") and isinstance(body, dict):
                check_keys(body, extra=("web_base",))
                if "results" in body and body["results"] is not None:
                    body["results"] = normalise_results(body["results"])
                with st.lock:
                    if m == "PUT":
                        st.config = {}
                    for k, v in body.items():
                        if k == "web_base":
                            st.web_base = str(v).rstrip("/")
                        elif v is None:
                            st.config.pop(k, None)
                        else:
                            st.config[k] = v
                    return self.send_json(200, dict(st.config, web_base=st.web_base))
        if path == "/_control/delay" and m == "POST":
            ms = as_int(body.get("ms", body.get("delay_ms")))
            if ms is None or ms < 0:
                raise ValueError("give {\"ms\": N} with N >= 0")
            with st.lock:
                st.config["delay_ms"] = ms
            return self.send_json(200, {"delay_ms": ms})
        if path == "/_control/fail":
            if m == "DELETE":
                with st.lock:
                    st.faults.clear()
                return self.send_json(200, {"pending": 0})
            if m == "POST" and isinstance(body, dict):
                count = as_int(body.get("count"), 1)
                steer = {k: v for k, v in body.items() if k != "count"}
                check_keys(steer)
                if "status" not in steer and "fault" not in steer:
                    raise ValueError("fail needs a status or a fault")
                with st.lock:
                    if count > 0:
                        st.faults.append({"remaining": count, "steer": steer})
                    pending = sum(f["remaining"] for f in st.faults)
                return self.send_json(200, {"pending": pending})
        if path == "/_control/rules":
            if m == "GET":
                with st.lock:
                    return self.send_json(200, {"rules": json.loads(json.dumps(st.rules))})
            if m == "DELETE":
                with st.lock:
                    st.rules = []
                return self.send_json(200, {"rules": []})
            if m in ("POST", "PUT"):
                rules = body.get("rules") if isinstance(body, dict) else body
                if not isinstance(rules, list):
                    raise ValueError("give {\"rules\": [...]} or a JSON array")
                new = []
                for r in rules:
                    if not isinstance(r, dict) or not isinstance(r.get("match"), str):
                        raise ValueError("each rule needs \"match\": <substring of q>")
                    steer = {k: v for k, v in r.items() if k not in ("match", "times")}
                    check_keys(steer)
                    if "results" in steer:
                        steer["results"] = normalise_results(steer["results"])
                    new.append({"match": r["match"], "times": as_int(r.get("times")), "steer": steer, "hits": 0})
                with st.lock:
                    append = isinstance(body, dict) and as_bool(body.get("append"))
                    st.rules = (st.rules + new) if append else new
                    return self.send_json(200, {"rules": json.loads(json.dumps(st.rules))})
        if path == "/_control/stats" and m == "GET":
            with st.lock:
                pending = sum(f["remaining"] for f in st.faults)
            return self.send_json(200, {"total_queries": st.recorder.total, "faults_pending": pending,
                                        "connections": self.server.connections})
        return self.send_json(404, {"error": "unknown control endpoint %s %s" % (m, path)})


def main():
    p = base_parser("Fake SearxNG-compatible JSON search server (loopback only).")
    p.add_argument("--web-base", default="http://127.0.0.1:9",
                   help="base URL of the fake web server that result paths are joined to")
    p.add_argument("--max-records", type=int, default=20000)
    args = p.parse_args()
    host = loopback_host(args.host)
    log = Log("fake_search", args.log, args.verbose)
    state = State(args.web_base, args.max_records)
    srv = LoopbackHTTPServer(host, args.port, SearchHandler, state, log)
    serve_until_signal([srv], "READY %d" % srv.server_address[1], log)


if __name__ == "__main__":
    main()
