"""Requests that httpd's core refuses before the module runs (malformed headers, bad escapes,
"/../" above the root, TRACE, a bad Host...) get the JSON error envelope when their path lies in
a PromptEnchanter section, and httpd's own page elsewhere; a request whose request line cannot be
read (too long) cannot be placed and keeps httpd's page (docs/api.md, "Errors httpd answers")."""
import socket
import unittest

from pe_harness import HttpdTestCase, Response

EXTRA = """<Location /plain/>
    SetHandler none
</Location>
"""


def parse(data):
    """A response read off a raw socket, as the harness's Response."""
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("iso-8859-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines and lines[0].startswith("HTTP/") else 0
    return Response(status, [tuple(x.strip() for x in l.split(":", 1)) for l in lines[1:] if ":" in l], body)


class Malformed(HttpdTestCase):
    EXTRA_CONF = EXTRA
    ALLOWED_LOG_IDS = ("AH10244",)  # core: "invalid URI path", which these tests send

    def raw(self, data):
        s = socket.create_connection(("127.0.0.1", self.httpd.port), timeout=30)
        try:
            s.sendall(data)
            out = b""
            while True:
                d = s.recv(65536)
                if not d:
                    break
                out += d
                head, sep, body = out.partition(b"\r\n\r\n")
                if sep:  # a whole response read: do not wait for the keep-alive timeout
                    lens = [l.split(b":", 1)[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
                    if lens and len(body) >= int(lens[0]):
                        break
        finally:
            s.close()
        return parse(out)

    CASES = [
        (b"GET /v1/users/profile HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", 400),
        (b"GET /v1/%zz HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"GET /v1/a%00b HTTP/1.1\r\nHost: x\r\n\r\n", 404),
        (b"GET /v1/users%2Fprofile HTTP/1.1\r\nHost: x\r\n\r\n", 404),
        (b"GET /v1/../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"GET /v1/users/profile HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 9000 + b"\r\n\r\n", 400),
        (b"POST /v1/users/login HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400),
        (b"POST /v1/users/login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
        (b"POST /v1/users/login HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\nContent-Length: 2\r\n\r\n{}", 417),
        (b"GET /v1/users/profile HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
        (b"GET /v1/users/profile HTTP/1.1\r\n\r\n", 400),
        (b"TRACE /v1/users/profile HTTP/1.1\r\nHost: x\r\n\r\n", 405),
    ]

    def test_envelope_on_our_paths(self):
        for data, status in self.CASES:
            r = self.raw(data)
            self.assertEqual(r.status, status, (data[:60], r))
            self.assertTrue((r.header("Content-Type") or "").startswith("application/json"), (data[:60], r))
            j = r.json
            self.assertIs(j["success"], False)
            self.assertTrue(j["error_code"])
            self.assertEqual(j["details"]["request_id"], r.header("X-Request-ID"))

    def test_other_paths_keep_httpd_pages(self):
        for data, status in self.CASES[:3]:
            r = self.raw(data.replace(b" /v1/", b" /plain/", 1))
            self.assertEqual(r.status, status, r)
            self.assertTrue(r.header("Content-Type").startswith("text/html"), r)

    def test_unplaceable_request_line(self):
        # longer than LimitRequestLine: httpd cannot read the path, so it answers with its page
        r = self.raw(b"GET /v1/" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(r.status, 414, r)
        self.assertTrue(r.header("Content-Type").startswith("text/html"), r)


if __name__ == "__main__":
    unittest.main()
