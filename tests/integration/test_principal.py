"""The per-node principal cache (issue 13): an API key's user is kept in shared memory; a change of
the user made on the node (key regenerated, profile changed, account deleted) is in force on the
next request in every child; a change made elsewhere (another node sharing PostgreSQL, or the store
directly) within PEPrincipalCacheTTL."""
import concurrent.futures
import json
import time
import unittest

import pe_mongo
import pe_pg
from pe_harness import Httpd, HttpdTestCase

PASSWORD = "Zebra-Lamp-42"
FAST = "PEArgon2Cost 1 1M 1\nPEDefaultLevel ultra\nKeepAlive Off\n"


def bearer(tok):
    return {"Authorization": "Bearer " + tok}


_n = [0]


def new_user(h, tag):
    """Register, verify (in the store) and log in a user on h: (user id, API key, session token)."""
    _n[0] += 1
    name = "pc_%s_%d" % (tag, _n[0])
    r = h.post("/v1/users/register", {"username": name, "name": "Cache User", "email": name + "@example.com",
                                      "password": PASSWORD})
    assert r.status == 201, r
    s = h.post("/v1/users/login", {"email": name + "@example.com", "password": PASSWORD})
    assert s.status == 200, s
    return r.json["user_id"], r.json["api_key"], s.json["session"]["session_token"]


def spread(h, key, n=32):
    """GET /v1/models with key on n fresh connections, 8 at a time (every child of a prefork
    server gets some): the list of (status, number of models)."""
    def one(_):
        r = h.get("/v1/models", headers=bearer(key))
        return r.status, len(r.json.get("data", [])) if r.status == 200 else 0

    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        return list(ex.map(one, range(n)))


class PrincipalCacheNode(HttpdTestCase):
    """Prefork with four children, a TTL of one hour: only the node's generation can make an entry
    stale, so what these tests see is the generation at work."""

    MPM = "prefork"
    ENV = {"PE_PREFORK_SERVERS": "4"}
    EXTRA_CONF = FAST + "PEPrincipalCacheTTL 1h\n"

    def sql(self, q, args=()):
        return self.httpd.sqlite(q, args)

    def verify(self, uid):
        self.sql("UPDATE pe_users SET is_verified = 1 WHERE id = ?", (uid,))

    def test_cached_until_the_user_changes_on_this_node(self):
        h = self.httpd
        uid, key, tok = new_user(h, "lvl")
        first = spread(h, key)
        ultra = first[0][1]
        self.assertEqual(first, [(200, ultra)] * len(first))
        # A change made in the store directly is not seen while the entry lives (TTL 1h): this
        # is the cache at work, in every child (one shared entry).
        self.sql("UPDATE pe_users SET level = 'low' WHERE id = ?", (uid,))
        self.assertEqual(spread(h, key), [(200, ultra)] * 32)
        # A change made through this node: every child reads the user again on its next request.
        r = h.request("PUT", "/v1/users/profile", {"about_me": "changed"}, headers=bearer(tok))
        self.assertEqual(r.status, 200, r)
        after = spread(h, key)
        low = after[0][1]
        self.assertLess(low, ultra)
        self.assertEqual(after, [(200, low)] * 32)

    def test_regenerated_key_refused_at_once_in_every_child(self):
        h = self.httpd
        uid, key, tok = new_user(h, "regen")
        self.verify(uid)
        self.assertEqual({s for s, _ in spread(h, key)}, {200})
        rg = h.post("/v1/users/api-key/regenerate", headers=bearer(tok))
        self.assertEqual(rg.status, 200, rg)
        self.assertEqual({s for s, _ in spread(h, key)}, {401})
        self.assertEqual({s for s, _ in spread(h, rg.json["api_key"])}, {200})
        # the refusal is the invalid-key one
        r = h.get("/v1/models", headers=bearer(key))
        self.assertIn("INVALID_API_KEY", json.dumps(r.json), r)

    def test_deleted_account_refused_at_once_in_every_child(self):
        h = self.httpd
        uid, key, tok = new_user(h, "del")
        self.assertEqual({s for s, _ in spread(h, key)}, {200})
        r = h.request("DELETE", "/v1/users/account", {"password": PASSWORD}, headers=bearer(tok))
        self.assertEqual(r.status, 200, r)
        self.assertEqual({s for s, _ in spread(h, key)}, {401})

    def test_refused_key_is_never_cached(self):
        h = self.httpd
        uid, key, tok = new_user(h, "inactive")
        self.sql("UPDATE pe_users SET is_active = 0 WHERE id = ?", (uid,))
        self.assertEqual({s for s, _ in spread(h, key, 8)}, {401})
        self.sql("UPDATE pe_users SET is_active = 1 WHERE id = ?", (uid,))
        self.assertEqual({s for s, _ in spread(h, key, 8)}, {200})


@unittest.skipUnless(pe_pg.available(), "PostgreSQL is not installed")
class PrincipalCacheTwoNodes(unittest.TestCase):
    """Two httpds sharing one PostgreSQL, PEPrincipalCacheTTL 2s: a change made on node A is in
    force on A at once, and on B once the bound has passed."""

    TTL = 2.0

    @classmethod
    def store(cls):
        """The store both nodes share (`query` runs the suites' SQL on it)."""
        return pe_pg.PgCluster("pg-principal").start()

    @classmethod
    def setUpClass(cls):
        cls.pg = cls.store()
        conf = FAST + "PEPrincipalCacheTTL %ds\n" % cls.TTL
        cls.a = Httpd("principal-a", mpm="prefork", extra_conf=conf, env=dict(cls.pg.env(), PE_PREFORK_SERVERS="2"))
        cls.b = Httpd("principal-b", mpm="prefork", extra_conf=conf, env=dict(cls.pg.env(), PE_PREFORK_SERVERS="2"))
        try:
            cls.a.start()
            # Nodes of one deployment share their keys (API key digests, sealed fields)
            cls.b.start_node_of(cls.a)
        except Exception:
            cls.a.stop()
            cls.b.stop()
            cls.pg.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            for h in (cls.a, cls.b):
                h.stop()
                problems = h.log_problems()
                if problems:
                    raise AssertionError("error log of %s:\n%s" % (h.dir, "\n".join(problems[:20])))
        finally:
            cls.pg.stop()

    def test_regenerated_key_refused_on_the_other_node_within_the_bound(self):
        uid, key, tok = new_user(self.a, "2n")
        self.pg.query("UPDATE pe_users SET is_verified = 1 WHERE id = '%s'" % uid)
        self.assertEqual({s for s, _ in spread(self.b, key, 8)}, {200})  # cached on B
        self.assertEqual({s for s, _ in spread(self.a, key, 8)}, {200})  # cached on A
        rg = self.a.post("/v1/users/api-key/regenerate", headers=bearer(tok))
        self.assertEqual(rg.status, 200, rg)
        changed = time.time()
        self.assertEqual({s for s, _ in spread(self.a, key, 8)}, {401})  # at once on A
        time.sleep(max(0.0, changed + self.TTL + 0.2 - time.time()))
        self.assertEqual({s for s, _ in spread(self.b, key, 8)}, {401})  # within the bound on B
        self.assertEqual({s for s, _ in spread(self.b, rg.json["api_key"], 8)}, {200})

    def test_deactivated_user_refused_everywhere_within_the_bound(self):
        uid, key, tok = new_user(self.a, "2d")
        self.assertEqual({s for s, _ in spread(self.a, key, 8)}, {200})
        self.assertEqual({s for s, _ in spread(self.b, key, 8)}, {200})
        # deactivated in the store (as by an administrator on a third node)
        self.pg.query("UPDATE pe_users SET is_active = 0 WHERE id = '%s'" % uid)
        changed = time.time()
        time.sleep(max(0.0, changed + self.TTL + 0.2 - time.time()))
        self.assertEqual({s for s, _ in spread(self.a, key, 8)}, {401})
        self.assertEqual({s for s, _ in spread(self.b, key, 8)}, {401})



@unittest.skipUnless(pe_mongo.available(), "no MongoDB server (node and the stand-in, or PE_TEST_MONGODB_URI)")
class PrincipalCacheTwoNodesMongo(PrincipalCacheTwoNodes):
    """The same with two httpds sharing one MongoDB."""

    @classmethod
    def store(cls):
        return pe_mongo.MongoServer("mongo-principal").start()


if __name__ == "__main__":
    unittest.main()
