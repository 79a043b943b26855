"""A private PostgreSQL cluster on a free loopback port for integration tests.

initdb and pg_ctl run as the postgres user (they refuse root); the cluster lives under the
test-run directory and is stopped by pg_ctl (by its pid file) in stop(), also when a test fails.
"""
import glob
import os
import shutil
import subprocess
import time

from pe_harness import RUN_ROOT, free_port


def pg_bindir():
    cands = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return os.path.dirname(cands[-1]) if cands else None


def available():
    return pg_bindir() is not None and subprocess.run(["id", "postgres"], capture_output=True).returncode == 0


class PgCluster:
    def __init__(self, name="pg"):
        self.port = free_port()
        self.dir = os.path.join(RUN_ROOT, "%s-%d" % (name, self.port))
        self.data = os.path.join(self.dir, "data")
        self.bin = pg_bindir()

    def _as_pg(self, *cmd, check=True):
        full = ["runuser", "-u", "postgres", "--"] + list(cmd) if os.geteuid() == 0 else list(cmd)
        return subprocess.run(full, capture_output=True, text=True, check=check)

    def start(self):
        if os.path.isdir(self.dir):
            shutil.rmtree(self.dir)
        os.makedirs(self.dir)
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        # NB: RUN_ROOT is a folder the server users can reach (build/instance.sh base); nothing
        # above it is changed here.
        self._as_pg(os.path.join(self.bin, "initdb"), "-D", self.data, "-U", "pe", "--auth=trust", "-E", "UTF8",
                    "--no-locale")
        self._start()
        subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "pe", "-d", "postgres", "-qc",
                        "CREATE DATABASE pe"], check=True, capture_output=True)
        return self

    def _start(self):
        self._as_pg(os.path.join(self.bin, "pg_ctl"), "-D", self.data, "-o",
                    "-p %d -k %s -c listen_addresses=127.0.0.1 -c max_connections=200" % (self.port, self.dir),
                    "-l", os.path.join(self.dir, "server.log"), "-w", "start")

    def restart(self, down=0.5):
        """Stop (fast: open connections are cut), stay down for `down` seconds, start again."""
        self._as_pg(os.path.join(self.bin, "pg_ctl"), "-D", self.data, "-m", "fast", "-w", "stop")
        time.sleep(down)
        self._start()

    def stop(self):
        if os.path.isdir(self.data):
            self._as_pg(os.path.join(self.bin, "pg_ctl"), "-D", self.data, "-m", "immediate", "-w", "stop", check=False)

    def params(self):
        return "host=127.0.0.1 port=%d user=pe dbname=pe" % self.port

    def env(self):
        return {"PE_DBD_DRIVER": "pgsql", "PE_DBD_PARAMS": self.params()}

    def query(self, sql):
        p = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "pe", "-d", "pe", "-Atc", sql],
                           capture_output=True, text=True, check=True)
        return p.stdout.strip()


class PostgresClass:
    """Mixin for an HttpdTestCase whose httpd stores in a private cluster (cls.pg), started before
    the httpd and stopped after it, also when the httpd does not start."""

    PG_NAME = "pg"

    @classmethod
    def setUpClass(cls):
        cls.pg = PgCluster(cls.PG_NAME).start()
        cls.ENV = dict(cls.ENV, **cls.pg.env())
        try:
            super().setUpClass()
        except Exception:
            cls.pg.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.pg.stop()
