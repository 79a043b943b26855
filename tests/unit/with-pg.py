#!/usr/bin/env python3
"""Run a command (the unit tests) with a private PostgreSQL cluster for the store's conformance suite.

Starts a cluster on a free loopback port (tests/integration/pe_pg.py), exports its apr_dbd_pgsql
parameters as PE_TEST_PG_PARAMS, runs the command, and stops the cluster by its pid file, also
when the command fails. Without a PostgreSQL server on this machine the command runs alone and
the suite says that PostgreSQL is not tested. PE_TEST_PG_PARAMS already set: used as it is.

    python3 tests/unit/with-pg.py .libs/pe_unit_tests
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import pe_pg  # noqa: E402


def main(argv):
    if not argv:
        sys.exit("usage: with-pg.py command [args...]")
    env = dict(os.environ)
    cluster = None
    if not env.get("PE_TEST_PG_PARAMS"):
        if pe_pg.available():
            cluster = pe_pg.PgCluster("unit-pg").start()
            env["PE_TEST_PG_PARAMS"] = cluster.params()
        else:
            print("with-pg: no PostgreSQL server here; the store suite runs on SQLite only", file=sys.stderr)
    try:
        return subprocess.run(argv, env=env).returncode
    finally:
        if cluster:
            cluster.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
