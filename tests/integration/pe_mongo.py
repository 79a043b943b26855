"""A MongoDB server on a free loopback port for integration tests, and a small client.

The server is the stand-in of docs/development.md ("MongoDB in tests"): CongoDB, started by
tests/mongo/congo-server.mjs (installed by build/install-mongo-standin.sh) and stopped by pid.
With PE_TEST_MONGODB_URI set, the tests use that server instead (a real mongod) and start none.

The client speaks the wire protocol (OP_MSG) with a minimal BSON codec from the standard library.
MongoServer.sql() runs the few SQL statement shapes the suites use on the other backends
(SELECT cols|COUNT(*) ... WHERE a = v AND ..., UPDATE ... SET, DELETE, INSERT ... VALUES) over the
collections of the same names, whose fields are the SQL columns: so a suite written for SQLite
runs on MongoDB by pointing its Httpd.sqlite at it (MongoClass does), not by being copied.
"""
import hashlib
import os
import re
import socket
import struct
import subprocess
import time
import unittest
import urllib.parse

from pe_harness import RUN_ROOT, TOP, free_port

SERVER_JS = os.path.join(TOP, "tests", "mongo", "congo-server.mjs")
STANDIN_DIR = os.path.join(TOP, ".deps", "congodb")


def real_uri():
    """PE_TEST_MONGODB_URI: a real MongoDB server the tests may use (None: the stand-in)."""
    return os.environ.get("PE_TEST_MONGODB_URI") or None


def available():
    """A server can be had: a real one is configured, or node and the stand-in are installed."""
    if real_uri():
        return True
    return os.path.isfile(os.path.join(STANDIN_DIR, ".installed")) and \
        subprocess.run(["sh", "-c", "command -v node"], capture_output=True).returncode == 0


class ObjectId:
    """A BSON ObjectId (12 bytes)."""

    def __init__(self, value):
        self.bytes = bytes.fromhex(value) if isinstance(value, str) else bytes(value)
        assert len(self.bytes) == 12

    def __eq__(self, other):
        return isinstance(other, ObjectId) and other.bytes == self.bytes

    def __hash__(self):
        return hash(self.bytes)

    def __repr__(self):
        return "ObjectId(%r)" % self.bytes.hex()

    def __str__(self):
        return self.bytes.hex()


def _cstring(s):
    b = s.encode("utf-8")
    assert b"\0" not in b
    return b + b"\0"


def bson_encode(doc):
    out = bytearray()
    for k, v in doc.items():
        key = _cstring(str(k))
        if isinstance(v, bool):
            out += b"\x08" + key + (b"\x01" if v else b"\x00")
        elif isinstance(v, int):
            if -2**31 <= v < 2**31:
                out += b"\x10" + key + struct.pack("<i", v)
            else:
                out += b"\x12" + key + struct.pack("<q", v)
        elif isinstance(v, float):
            out += b"\x01" + key + struct.pack("<d", v)
        elif isinstance(v, str):
            b = v.encode("utf-8")
            out += b"\x02" + key + struct.pack("<i", len(b) + 1) + b + b"\0"
        elif v is None:
            out += b"\x0a" + key
        elif isinstance(v, ObjectId):
            out += b"\x07" + key + v.bytes
        elif isinstance(v, dict):
            out += b"\x03" + key + bson_encode(v)
        elif isinstance(v, (list, tuple)):
            out += b"\x04" + key + bson_encode({str(i): x for i, x in enumerate(v)})
        else:
            raise TypeError("cannot encode %r" % (v,))
    return struct.pack("<i", len(out) + 5) + bytes(out) + b"\0"


def bson_decode(data, pos=0):
    """The document at data[pos:]; returns (dict, end)."""
    (size,) = struct.unpack_from("<i", data, pos)
    end = pos + size - 1
    pos += 4
    doc = {}
    while pos < end:
        t = data[pos]
        pos += 1
        z = data.index(b"\0", pos)
        key = data[pos:z].decode("utf-8")
        pos = z + 1
        if t == 0x01:
            (v,) = struct.unpack_from("<d", data, pos)
            pos += 8
        elif t in (0x02, 0x0d, 0x0e):
            (n,) = struct.unpack_from("<i", data, pos)
            v = data[pos + 4:pos + 3 + n].decode("utf-8")
            pos += 4 + n
        elif t in (0x03, 0x04):
            v, pos = bson_decode(data, pos)
            if t == 0x04:
                v = [v[k] for k in sorted(v, key=int)]
        elif t == 0x05:
            (n,) = struct.unpack_from("<i", data, pos)
            v = bytes(data[pos + 5:pos + 5 + n])
            pos += 5 + n
        elif t == 0x07:
            v = ObjectId(data[pos:pos + 12])
            pos += 12
        elif t == 0x08:
            v = data[pos] == 1
            pos += 1
        elif t == 0x09 or t == 0x11 or t == 0x12:
            (v,) = struct.unpack_from("<q", data, pos)
            pos += 8
        elif t in (0x0a, 0x06, 0xff, 0x7f):
            v = None
        elif t == 0x10:
            (v,) = struct.unpack_from("<i", data, pos)
            pos += 4
        elif t == 0x13:
            v = bytes(data[pos:pos + 16])
            pos += 16
        else:
            raise ValueError("BSON type 0x%02x is not supported here" % t)
        doc[key] = v
    return doc, end + 1


class MongoClient:
    """One connection; command() sends OP_MSG and returns the reply document."""

    def __init__(self, host, port, db, timeout=10):
        self.db = db
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.req = 0

    def close(self):
        self.sock.close()

    def _recv(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("MongoDB closed the connection")
            buf += chunk
        return buf

    def command(self, cmd, db=None):
        body = dict(cmd)
        body["$db"] = db or self.db
        payload = struct.pack("<I", 0) + b"\x00" + bson_encode(body)
        self.req += 1
        msg = struct.pack("<iiii", 16 + len(payload), self.req, 0, 2013) + payload
        self.sock.sendall(msg)
        (length,) = struct.unpack("<i", self._recv(4))
        data = self._recv(length - 4)
        # header rest (12 bytes), flagBits (4), section kind 0 (1), document
        doc, _ = bson_decode(data, 12 + 4 + 1)
        if not doc.get("ok"):
            raise RuntimeError("MongoDB command %s failed: %r" % (next(iter(cmd)), doc))
        return doc

    # -- the few helpers the tests use ----------------------------------------------------
    def find(self, coll, flt=None, projection=None, sort=None):
        cmd = {"find": coll, "filter": flt or {}}
        if projection:
            cmd["projection"] = projection
        if sort:
            cmd["sort"] = sort
        r = self.command(cmd)
        docs = list(r["cursor"]["firstBatch"])
        cid = r["cursor"].get("id", 0)
        while cid:
            r = self.command({"getMore": cid, "collection": coll})
            docs += r["cursor"]["nextBatch"]
            cid = r["cursor"].get("id", 0)
        return docs

    def count(self, coll, flt=None):
        return len(self.find(coll, flt))

    def update(self, coll, flt, update, multi=False):
        r = self.command({"update": coll, "updates": [{"q": flt, "u": update, "multi": multi}]})
        if r.get("writeErrors"):
            raise RuntimeError("update failed: %r" % r["writeErrors"])
        return r.get("n", 0)

    def insert(self, coll, *docs):
        r = self.command({"insert": coll, "documents": list(docs)})
        if r.get("writeErrors"):
            raise RuntimeError("insert failed: %r" % r["writeErrors"])
        return r.get("n", 0)

    def delete(self, coll, flt, multi=True):
        return self.command({"delete": coll, "deletes": [{"q": flt, "limit": 0 if multi else 1}]}).get("n", 0)


def derived_oid(kind, value):
    """The store's _id for a natural key (pe_mg_derived_oid): SHA-256(kind NUL value)[:12]."""
    return ObjectId(hashlib.sha256(kind.encode() + b"\0" + value.encode()).digest()[:12])


# Tables whose "id" column is the document's _id (an ObjectId).
_OID_TABLES = ("pe_users", "pe_sessions", "pe_staff")
# Column defaults of the SQL schema, for INSERTs that leave them out.
_DEFAULTS = {
    "pe_blocked_ips": {"reason": "", "created_by": "", "expires_at": 0, "is_active": 1},
    "pe_ip_whitelist": {"description": "", "created_by": "", "expires_at": 0, "is_active": 1},
    "pe_system_prompts": {"updated_by": ""},
}
_TOKEN = re.compile(r"\s*(?:(\d+)|'((?:[^']|'')*)'|(\?)|([A-Za-z_][A-Za-z_0-9]*)|(\(\*\))|([(),=*]))")


class SqlOnMongo:
    """The SQL subset of the suites over a MongoClient (see the module's comment)."""

    def __init__(self, client):
        self.c = client

    def _tokens(self, q, args):
        out, pos, args = [], 0, list(args)
        q = q.strip().rstrip(";")
        while pos < len(q):
            m = _TOKEN.match(q, pos)
            if not m or m.end() == pos:
                raise ValueError("SQL not understood here: %r" % q[pos:])
            pos = m.end()
            num, text, param, ident, star, punct = m.groups()
            if num is not None:
                out.append(("v", int(num)))
            elif text is not None:
                out.append(("v", text.replace("''", "'")))
            elif param:
                out.append(("v", args.pop(0)))
            elif ident:
                out.append(("w", ident.lower()) if ident.upper() in (
                    "SELECT", "FROM", "WHERE", "AND", "UPDATE", "SET", "DELETE", "INSERT", "INTO", "VALUES",
                    "COUNT") else ("i", ident))
            elif star:
                out.append(("p", "(*)"))
            else:
                out.append(("p", punct))
        return out

    @staticmethod
    def _field(table, col, value=None):
        if col == "id" and table in _OID_TABLES:
            return "_id", (ObjectId(value) if isinstance(value, str) else value)
        return col, value

    def _where(self, table, toks):
        flt = {}
        while toks:
            kind, col = toks.pop(0)
            if kind == "w" and col == "and":
                continue
            assert kind == "i" and toks.pop(0) == ("p", "="), "WHERE supports col = value [AND ...]"
            f, v = self._field(table, col, toks.pop(0)[1])
            flt[f] = v
        return flt

    @staticmethod
    def _plain(v):
        if isinstance(v, float) and v.is_integer():
            return int(v)
        if isinstance(v, ObjectId):
            return str(v)
        return v

    def __call__(self, q, args=()):
        t = self._tokens(q, args)
        verb = t.pop(0)[1]
        if verb == "select":
            cols = []
            while t[0] != ("w", "from"):
                k, v = t.pop(0)
                if (k, v) == ("w", "count"):
                    assert t.pop(0) == ("p", "(*)")
                    cols.append(None)
                elif k == "i":
                    cols.append(v)
            t.pop(0)
            table = t.pop(0)[1]
            flt = self._where(table, t[1:]) if t else {}
            docs = self.c.find(table, flt)
            if cols == [None]:
                return [(len(docs),)]
            return [tuple(self._plain(d.get(self._field(table, c)[0])) for c in cols) for d in docs]
        if verb == "update":
            table = t.pop(0)[1]
            assert t.pop(0) == ("w", "set")
            sets = {}
            while t and t[0] != ("w", "where"):
                k, col = t.pop(0)
                if (k, col) == ("p", ","):
                    continue
                assert t.pop(0) == ("p", "=")
                sets[col] = t.pop(0)[1]
            flt = self._where(table, t[1:]) if t else {}
            self.c.update(table, flt, {"$set": sets}, multi=True)
            return []
        if verb == "delete":
            assert t.pop(0) == ("w", "from")
            table = t.pop(0)[1]
            self.c.delete(table, self._where(table, t[1:]) if t else {})
            return []
        if verb == "insert":
            assert t.pop(0) == ("w", "into")
            table = t.pop(0)[1]
            cols, rows = [], []
            assert t.pop(0) == ("p", "(")
            while t[0] != ("p", ")"):
                k, v = t.pop(0)
                if k == "i":
                    cols.append(v)
            t.pop(0)
            assert t.pop(0) == ("w", "values")
            while t:
                k, v = t.pop(0)
                if (k, v) == ("p", "("):
                    rows.append([])
                elif k == "v":
                    rows[-1].append(v)
            for r in rows:
                self.c.insert(table, self._new_doc(table, dict(zip(cols, r))))
            return []
        raise ValueError("SQL not understood here: %r" % q)

    def _new_doc(self, table, row):
        doc = dict(_DEFAULTS.get(table, {}))
        doc.update(row)
        if table == "pe_system_prompts":
            doc["_id"] = derived_oid("prompt", row["r_type"])
        elif table in ("pe_blocked_ips", "pe_ip_whitelist"):
            r = self.c.command({"findAndModify": "pe_counters", "query": {"_id": derived_oid("counter", table)},
                                "update": {"$inc": {"seq": 1}, "$set": {"name": table}}, "new": True,
                                "upsert": True})
            doc["_id"] = ObjectId(os.urandom(12))
            doc["id"] = int(r["value"]["seq"])
        return doc


class MongoServer:
    """The stand-in on a free loopback port (or the real server of PE_TEST_MONGODB_URI), with a
    database of its own per test class."""

    def __init__(self, name="mongo", persist=False):
        self.name = name
        self.proc = None
        self.port = None
        # the stand-in keeps its data in memory; with persist it writes it to a file when it stops
        # and reads it back when it starts, so restart() keeps the data as a real server does
        self.persist = os.path.join(RUN_ROOT, "%s-%d.json" % (name, os.getpid())) if persist else None
        self.db = "pe_%s_%d_%d" % (name.replace("-", "_"), os.getpid(), int(time.time() * 1000) % 100000000)
        self.real = real_uri()

    def start(self, wait=True):
        if self.real:
            u = urllib.parse.urlsplit(self.real)
            self.host, self.port = u.hostname or "127.0.0.1", u.port or 27017
            return self
        if self.port is None:
            self.port = free_port()
        self.host = "127.0.0.1"
        argv = ["node", SERVER_JS, str(self.port)] + ([self.persist] if self.persist else [])
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=TOP)
        if wait:
            line = self.proc.stdout.readline()
            if "READY" not in line:
                self.stop()
                raise RuntimeError("the MongoDB stand-in did not start: %r" % line)
        return self

    def stop(self):
        if self.proc:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            self.proc.stdout.close()
            self.proc = None

    def restart(self, down=0.5):
        """Stop (connections cut), stay down `down` seconds, start again on the same port."""
        if self.real:
            raise unittest.SkipTest("cannot restart the server of PE_TEST_MONGODB_URI")
        self.stop()
        time.sleep(down)
        self.start()

    def query(self, q):
        """Like PgCluster.query: the rows of a statement of the suites' SQL as `psql -At` prints them."""
        rows = self.sql(q)
        return "\n".join("|".join(str(v) for v in r) for r in rows)

    def uri(self):
        """The URI httpd gets (this class's own database)."""
        if self.real:
            u = urllib.parse.urlsplit(self.real)
            return urllib.parse.urlunsplit((u.scheme, u.netloc, "/" + self.db, u.query, ""))
        return "mongodb://127.0.0.1:%d/%s" % (self.port, self.db)

    def env(self):
        return {"PE_STORE": "mongodb", "PE_MONGO_URI": self.uri()}

    def client(self):
        return MongoClient(self.host, self.port, self.db)

    def new_database(self):
        """Use a database of its own from now on (for the next httpd); returns env()."""
        self.db = "pe_%s_%d_%d" % (self.name.replace("-", "_"), os.getpid(), int(time.time() * 1000) % 100000000)
        return self.env()

    def sql(self, q, args=()):
        """A statement of the suites' SQL subset on this class's database (SqlOnMongo)."""
        c = self.client()
        try:
            return SqlOnMongo(c)(q, args)
        finally:
            c.close()


class MongoClass:
    """Mixin for an HttpdTestCase whose httpd stores in MongoDB (cls.mongo), started before the
    httpd and stopped after it, also when the httpd does not start. The httpd's sqlite() runs
    the suites' SQL on MongoDB (SqlOnMongo), so a suite's MongoDB class is its SQLite class with
    this mixin in front."""

    MONGO_NAME = "mongo"
    # False: the server is not started (its port is chosen and free); the test starts it.
    MONGO_START = True

    @classmethod
    def setUpClass(cls):
        cls.mongo = MongoServer(cls.MONGO_NAME)
        if cls.MONGO_START:
            cls.mongo.start()
        elif cls.mongo.real:
            raise unittest.SkipTest("needs a server the test can start and stop (not PE_TEST_MONGODB_URI)")
        else:
            cls.mongo.port = free_port()
        cls.ENV = dict(cls.ENV, **cls.mongo.env())
        try:
            super().setUpClass()
        except Exception:
            cls.mongo.stop()
            raise
        # the suites' SQL on the instance's store goes to MongoDB
        if getattr(cls, "httpd", None):
            cls.httpd.sqlite = cls.mongo.sql

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.mongo.stop()
