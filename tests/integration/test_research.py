"""Research and batch: directives (checked at configtest), and the instance starting with the
shared research cache."""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pe_harness import Httpd, HttpdTestCase  # noqa: E402


class ResearchConfig(unittest.TestCase):
    """Every research directive checks its value; a bad one fails `apache2 -t` naming it."""

    def configtest(self, extra, env=None):
        return Httpd("rsconf", extra_conf=extra, env=env).configtest()

    def assertRejected(self, extra, *needles):
        p = self.configtest(extra)
        self.assertNotEqual(p.returncode, 0, p.stderr)
        for n in needles:
            self.assertIn(n, p.stderr)

    def test_good_config(self):
        p = self.configtest("PESearchURL http://127.0.0.1:8888/search\nPESearchProvider SearXNG\n"
                            "PESearchLanguage en-GB\nPEResearchAllowNetworks 127.0.0.2/32, fd00::/8\n"
                            "PEResearchMaxParallel 8\nPEResearchPageSize 512K\nPEResearchPageTimeout 1500ms\n"
                            "PESearchTimeout 3s\nPEResearchTimeout 30s\nPEResearchCacheTTL 0\n"
                            "PEResearchPageCacheTTL 2h\nPEResearchCacheSize 64\n"
                            "PEResearchModels gpt-4o-mini gpt-4o\nPEBatchMaxParallel 4\nPEBatchMaxTasks 20\n"
                            "PESearchKey abc-123\n")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("Syntax OK", p.stderr)

    def test_allow_networks_from_the_environment(self):
        p = self.configtest("", env={"PE_RESEARCH_ALLOW_NETWORKS": "127.0.0.2/32 ::1"})
        self.assertEqual(p.returncode, 0, p.stderr)
        p = self.configtest("", env={"PE_RESEARCH_ALLOW_NETWORKS": "127.0.0.1/8"})
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("PEResearchAllowNetworks", p.stderr)
        self.assertIn("127.0.0.0/8", p.stderr)

    def test_bad_values(self):
        self.assertRejected("PESearchURL ftp://x/search\n", "PESearchURL")
        self.assertRejected("PESearchProvider google\n", "PESearchProvider", "unknown provider 'google'",
                            "searxng, brave")
        self.assertRejected("PEResearchAllowNetworks 10.0.0.0/33\n", "PEResearchAllowNetworks", "out of range")
        self.assertRejected("PEResearchAllowNetworks\n", "PEResearchAllowNetworks")
        self.assertRejected("PEResearchMaxParallel 0\n", "PEResearchMaxParallel")
        self.assertRejected("PEResearchMaxParallel 65\n", "PEResearchMaxParallel")
        self.assertRejected("PEResearchPageSize 3M\n", "PEResearchPageSize")
        self.assertRejected("PEResearchPageSize 100\n", "PEResearchPageSize", "below the minimum")
        self.assertRejected("PEResearchPageTimeout 2m\n", "PEResearchPageTimeout")
        self.assertRejected("PEResearchTimeout 500ms\n", "PEResearchTimeout")
        self.assertRejected("PEResearchCacheTTL forever\n", "PEResearchCacheTTL")
        self.assertRejected("PEResearchCacheSize 100000\n", "PEResearchCacheSize")
        self.assertRejected("PEResearchModels gpt-4o\n", "PEResearchModels")
        self.assertRejected("PEBatchMaxParallel 51\n", "PEBatchMaxParallel")
        self.assertRejected("PEBatchMaxTasks 0\n", "PEBatchMaxTasks")
        self.assertRejected("PESearchLanguage e\n", "PESearchLanguage")
        self.assertRejected('PESearchKey "a b"\n', "PESearchKey")


class ResearchCacheDisabled(HttpdTestCase):
    """With PEResearchCacheSize 0 the server runs without the shared research cache."""

    EXTRA_CONF = "PEResearchCacheSize 0\n"

    def test_serves(self):
        self.assertEqual(self.httpd.get("/health").status, 200)


class ResearchCachePrefork(HttpdTestCase):
    """The research cache's mutex and segment work under prefork (children re-open the mutex)."""

    MPM = "prefork"
    EXTRA_CONF = "PEResearchCacheSize 16\n"

    def test_serves(self):
        for _ in range(5):
            self.assertEqual(self.httpd.get("/health").status, 200)
        self.assertNotIn("PE61104", self.httpd.error_log())


if __name__ == "__main__":
    unittest.main()
