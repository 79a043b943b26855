"""A MongoDB server on a free loopback port for integration tests, and a small client.

The server is the stand-in of docs/development.md ("MongoDB in tests"): CongoDB, started by
tests/mongo/congo-server.mjs (installed by build/install-mongo-standin.sh) and stopped by pid.
With PE_TEST_MONGODB_URI set, the tests use that server instead (a real mongod) and start none.

The client speaks the wire protocol (OP_MSG) with a minimal BSON codec from the standard library:
enough for the tests to read and change documents as they do with SQL on the other backends.
"""
import os
import socket
import struct
import subprocess
import time
import urllib.parse

from pe_harness import TOP, free_port

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


class MongoServer:
    """The stand-in on a free loopback port (or the real server of PE_TEST_MONGODB_URI), with a
    database of its own per test class."""

    def __init__(self, name="mongo"):
        self.name = name
        self.proc = None
        self.port = None
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
        self.proc = subprocess.Popen(["node", SERVER_JS, str(self.port)], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, cwd=TOP)
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


class MongoClass:
    """Mixin for an HttpdTestCase whose httpd stores in MongoDB (cls.mongo), started before the
    httpd and stopped after it, also when the httpd does not start."""

    MONGO_NAME = "mongo"

    @classmethod
    def setUpClass(cls):
        cls.mongo = MongoServer(cls.MONGO_NAME).start()
        cls.ENV = dict(cls.ENV, **cls.mongo.env())
        try:
            super().setUpClass()
        except Exception:
            cls.mongo.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.mongo.stop()
