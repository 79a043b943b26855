"""What counts as a strike for automatic blocking (issue 14), with the documented default
PEAutoBlock 10 15m 15m: following docs/api.md step by step from one address (an old session token
after refresh, a token after logout, the old key after regenerate, a few wrong keys, a mistyped
password), each replayed as a retrying client would, does not block it; trying a list of keys
does, and even then GET /health answers."""
import os

from pe_harness import HttpdTestCase
from test_access import call

PASSWORD = "Zebra-Lamp-42"
CONF = "PEArgon2Cost 1 1M 1\nKeepAlive Off\n"


def bearer(tok):
    return {"Authorization": "Bearer " + tok}


class Strikes(HttpdTestCase):
    EXTRA_CONF = CONF
    ENV = {"PE_AUTO_BLOCK": "10 15m 15m"}
    n = 0

    def req(self, src, method, path, body=None, token=None):
        return call(self.httpd.port, path, src, method, body, bearer(token) if token else None)

    def register(self, src):
        Strikes.n += 1
        name = "strk%d_%d" % (os.getpid(), Strikes.n)
        r = self.req(src, "POST", "/v1/users/register", {"username": name, "name": "Strike Test",
                                                         "email": name + "@example.com", "password": PASSWORD})
        self.assertEqual(r.status, 201, r.body)
        return name + "@example.com", r.json["api_key"]

    def login(self, src, email):
        r = self.req(src, "POST", "/v1/users/login", {"email": email, "password": PASSWORD})
        self.assertEqual(r.status, 200, r.body)
        return r.json["session"]["session_token"], r.json["session"]["refresh_token"]

    def replay(self, src, times, method, path, token, status=401):
        """A client retrying a credential that stopped working, as SDKs and scripts do."""
        for _ in range(times):
            r = self.req(src, method, path, token=token)
            self.assertEqual(r.status, status, r.body)

    def test_docs_walkthrough_does_not_block(self):
        src = "127.0.0.1"
        email, key1 = self.register(src)
        token1, refresh1 = self.login(src, email)
        self.assertEqual(self.req(src, "GET", "/v1/users/profile", token=token1).status, 200)
        # refresh: the old pair stops working; a client that missed that keeps sending it
        r = self.req(src, "POST", "/v1/users/refresh", {"refresh_token": refresh1})
        self.assertEqual(r.status, 200, r.body)
        token2 = r.json["session"]["session_token"]
        self.replay(src, 5, "GET", "/v1/users/profile", token1)
        self.assertEqual(self.req(src, "POST", "/v1/users/refresh", {"refresh_token": refresh1}).status, 401)
        # regenerate the key: the old one is refused, again and again
        r = self.req(src, "POST", "/v1/users/api-key/regenerate", token=token2)
        self.assertEqual(r.status, 200, r.body)
        key2 = r.json["api_key"]
        self.replay(src, 5, "GET", "/v1/models", key1)
        # logout: the token is gone, and replayed
        self.assertEqual(self.req(src, "POST", "/v1/users/logout", token=token2).status, 200)
        self.replay(src, 5, "GET", "/v1/users/profile", token2)
        # a few wrong keys, each retried, and one mistyped password
        for i in range(3):
            self.replay(src, 3, "GET", "/v1/models", "pe-" + ("wrongkey%d" % i).ljust(32, "x"))
        r = self.req(src, "POST", "/v1/users/login", {"email": email, "password": "Zebra-Lamp-43"})
        self.assertEqual(r.status, 401, r.body)
        # nothing blocked: health, the new key, a fresh login
        self.assertEqual(self.req(src, "GET", "/health").status, 200)
        self.assertEqual(self.req(src, "GET", "/v1/models", token=key2).status, 200)
        token3, _ = self.login(src, email)
        self.assertEqual(self.req(src, "GET", "/v1/users/profile", token=token3).status, 200)

    def test_a_list_of_keys_is_blocked_health_answers(self):
        src = "127.0.0.82"
        _, key = self.register("127.0.0.81")
        for i in range(10):
            r = self.req(src, "GET", "/v1/models", token="pe-" + ("guess%d" % i).ljust(32, "y"))
            self.assertEqual(r.status, 401, r.body)
        r = self.req(src, "GET", "/v1/models", token=key)
        self.assertEqual(r.status, 403, r.body)
        self.assertEqual(r.json["error"]["code"], "IP_BLOCKED")
        self.assertGreaterEqual(int(r.header("Retry-After")), 1)
        self.assertEqual(r.header("x-should-retry"), "false")
        self.assertEqual(self.req(src, "GET", "/health").status, 200)
        self.assertEqual(self.req(src, "GET", "/").status, 403)
        self.assertEqual(self.req("127.0.0.81", "GET", "/v1/models", token=key).status, 200)

    def test_wrong_passwords_still_count_each_time(self):
        src = "127.0.0.84"
        email, _ = self.register("127.0.0.85")
        for _ in range(10):
            r = self.req(src, "POST", "/v1/users/login", {"email": "nobody-" + email, "password": "Wrong-pass-1"})
            self.assertEqual(r.status, 401, r.body)
        self.assertEqual(self.req(src, "POST", "/v1/users/login", {"email": email, "password": PASSWORD}).status, 403)

    def test_one_stale_key_retried_many_times_is_one_strike(self):
        src = "127.0.0.83"
        _, key = self.register(src)
        self.replay(src, 25, "GET", "/v1/models", "pe-" + "stale".ljust(32, "z"))
        self.replay(src, 25, "GET", "/v1/users/profile", "A" * 86)
        self.assertEqual(self.req(src, "GET", "/v1/models", token=key).status, 200)
