#!/usr/bin/env python3
"""Run a command (the unit tests) with the store servers the conformance suite needs.

PostgreSQL: a private cluster on a free loopback port (tests/integration/pe_pg.py), its apr_dbd_pgsql
parameters exported as PE_TEST_PG_PARAMS. MongoDB: the stand-in (tests/integration/pe_mongo.py:
CongoDB from the npm package that build/install-mongo-standin.sh installs), exported as
PE_TEST_MONGODB_URI with PE_TEST_MONGODB_STANDIN=1, so the tests that need a real server's
behaviour skip. A variable already set is used as it is (a real mongod: nothing skips). A server
that is not available here is left out and the suite says so. Every server started is stopped by
pid, also when the command fails.

    python3 tests/unit/with-stores.py .libs/pe_unit_tests
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import pe_mongo  # noqa: E402
import pe_pg  # noqa: E402


def start_pg(env):
    if not pe_pg.available():
        print("with-stores: no PostgreSQL server here; the store suite runs without PostgreSQL", file=sys.stderr)
        return None
    cluster = pe_pg.PgCluster("unit-pg").start()
    env["PE_TEST_PG_PARAMS"] = cluster.params()
    return cluster


def start_mongo(env):
    if not pe_mongo.available():
        print("with-stores: no MongoDB server here (node or the stand-in is missing); the store suite "
              "runs without MongoDB", file=sys.stderr)
        return None
    server = pe_mongo.MongoServer("unit").start()
    env["PE_TEST_MONGODB_URI"] = "mongodb://127.0.0.1:%d/" % server.port
    env["PE_TEST_MONGODB_STANDIN"] = "1"
    return server


def main(argv):
    if not argv:
        sys.exit("usage: with-stores.py command [args...]")
    env = dict(os.environ)
    started = []
    try:
        for var, start in (("PE_TEST_PG_PARAMS", start_pg), ("PE_TEST_MONGODB_URI", start_mongo)):
            if not env.get(var):
                server = start(env)
                if server:
                    started.append(server)
        return subprocess.run(argv, env=env).returncode
    finally:
        for server in reversed(started):
            server.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
