"""docs/openapi.json (issue 14): @redocly/cli lint (pinned in tests/node/package.json) passes, it
documents exactly the routes of the route table, the module serves it at /openapi.json limited to the
groups a location serves, and the response check the harness runs on every response (pe_openapi)
refuses what the document does not declare."""
import json
import os
import re
import subprocess
import unittest

import pe_openapi
from pe_harness import TOP, HttpdTestCase, Response

NODE_DIR = os.path.join(TOP, "tests", "node")
DOC = os.path.join(TOP, "docs", "openapi.json")
METHODS = {"GET": "get", "POST": "post", "PUT": "put", "DELETE": "delete", "PATCH": "patch"}


def route_table():
    """(method, pattern, group) of every route in src/apache/pe_routes.c."""
    with open(os.path.join(TOP, "src", "apache", "pe_routes.c")) as f:
        text = f.read()
    out = set()
    for methods, pattern, group in re.findall(r'\{\s*((?:PE_M_[A-Z]+\s*\|?\s*)+),\s*"([^"]+)",\s*(PE_G_[A-Z]+)', text):
        for m in re.findall(r"PE_M_([A-Z]+)", methods):
            out.add((m, pattern, group))
    return out


def load_doc():
    with open(DOC) as f:
        return json.load(f)


class Document(unittest.TestCase):
    def test_lint(self):
        subprocess.run(["bash", os.path.join(TOP, "build", "node-deps.sh")], check=True, cwd=TOP)
        p = subprocess.run([os.path.join(NODE_DIR, "node_modules", ".bin", "redocly"), "lint", DOC], cwd=NODE_DIR,
                           capture_output=True, text=True, timeout=300)
        out = p.stdout + p.stderr
        self.assertEqual(p.returncode, 0, out)
        self.assertIn("valid", out)
        self.assertNotRegex(out, r"You have \d+ warning", out)

    def test_every_route_documented_and_nothing_else(self):
        routes = {(m, pat) for m, pat, _ in route_table()}
        self.assertGreater(len(routes), 15)
        doc = load_doc()
        ops = {(m.upper(), path) for path, item in doc["paths"].items() for m in item if m in METHODS.values()}
        self.assertEqual(ops - routes, set(), "documented operations the route table lacks")
        self.assertEqual(routes - ops, set(), "routes the document lacks")
        self.assertEqual(doc["openapi"], "3.1.0")

    def test_response_check_can_fail(self):
        ok = json.dumps({"status": "healthy", "service": "PromptEnchanter", "version": "0.1.0"}).encode()
        js = "application/json; charset=utf-8"
        self.assertEqual(pe_openapi.problems_of("GET", "/health", 200, js, ok), [])
        self.assertTrue(pe_openapi.problems_of("GET", "/health", 418, js, ok))  # status not declared
        self.assertTrue(pe_openapi.problems_of("GET", "/health", 200, js, b'{"status":"healthy"}'))  # required
        self.assertTrue(pe_openapi.problems_of("GET", "/health", 200, "text/html", ok))  # content type
        self.assertTrue(pe_openapi.problems_of("GET", "/v1/models/x", 200, js, b'{"id":"x","object":"list"}'))
        env = json.dumps({"success": False, "error": "e", "message": "e", "error_code": "X",
                          "details": {"request_id": "r"}}).encode()
        self.assertEqual(pe_openapi.problems_of("GET", "/v1/users/profile", 401, js, env), [])
        # an OpenAI route answering with the envelope does not match
        self.assertTrue(pe_openapi.problems_of("GET", "/v1/models", 401, js, env))
        # paths the document does not describe are not checked; a documented path's other method is
        self.assertEqual(pe_openapi.problems_of("GET", "/v1/nothing", 404, js, env), [])
        self.assertTrue(pe_openapi.problems_of("PATCH", "/v1/users/profile", 200, js, b"{}"))
        with self.assertRaises(pe_openapi.OpenAPIMismatch):
            pe_openapi.check_response("GET", "/health", Response(200, [("Content-Type", js)], b"{}"))


class Served(HttpdTestCase):
    EXTRA_CONF = """PEArgon2Cost 1 1M 1
<Location /ai/>
    PEBaseURI /ai
    PEApi core openai openapi
</Location>
<Location /noapi/>
    PEBaseURI /noapi
    PEApi core users
</Location>
"""

    def test_whole_document_where_all_is_served(self):
        r = self.httpd.get("/openapi.json")
        self.assertEqual(r.status, 200, r)
        served = r.json
        doc = load_doc()
        groups = {pat: g for _, pat, g in route_table()}
        # diag, metrics and ready are never in "all"
        expected = {p for p in doc["paths"] if groups[p] not in ("PE_G_DIAG", "PE_G_METRICS", "PE_G_READY")}
        self.assertEqual(set(served["paths"]), expected)
        self.assertEqual(served["servers"], [{"url": "/"}])
        self.assertEqual(served["components"], doc["components"])

    def test_limited_to_the_groups_served(self):
        r = self.httpd.get("/ai/openapi.json")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(set(r.json["paths"]), {"/", "/health", "/openapi.json", "/v1/chat/completions", "/v1/models",
                                                "/v1/models/{id}"})
        self.assertEqual(r.json["servers"], [{"url": "/ai"}])
        r = self.httpd.get("/noapi/openapi.json")
        self.assertEqual(r.status, 404, r)
