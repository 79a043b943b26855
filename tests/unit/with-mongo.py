#!/usr/bin/env python3
"""Run a command (the unit tests) with a MongoDB server for the store's conformance suite.

Starts the MongoDB stand-in (tests/integration/pe_mongo.py: CongoDB from the npm package that
build/install-mongo-standin.sh installs) on a free loopback port, exports PE_TEST_MONGODB_URI
(and PE_TEST_MONGODB_STANDIN=1, so the tests that need a real server's behaviour skip), runs the
command, and stops the server by pid, also when the command fails. PE_TEST_MONGODB_URI already
set: that server is used as it is (a real mongod; nothing skips). Without node or the stand-in
the command runs alone and the suite says that MongoDB is not tested.

    python3 tests/unit/with-mongo.py .libs/pe_unit_tests
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import pe_mongo  # noqa: E402


def main(argv):
    if not argv:
        sys.exit("usage: with-mongo.py command [args...]")
    env = dict(os.environ)
    server = None
    if not env.get("PE_TEST_MONGODB_URI"):
        if pe_mongo.available():
            server = pe_mongo.MongoServer("unit").start()
            env["PE_TEST_MONGODB_URI"] = "mongodb://127.0.0.1:%d/" % server.port
            env["PE_TEST_MONGODB_STANDIN"] = "1"
        else:
            print("with-mongo: no MongoDB server here (node or the stand-in is missing); the store suite "
                  "runs without MongoDB", file=sys.stderr)
    try:
        return subprocess.run(argv, env=env).returncode
    finally:
        if server:
            server.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
