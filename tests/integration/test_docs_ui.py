"""The API reference page (issue 14, optional part): build/docs-ui.sh assembles Swagger UI (pinned
swagger-ui-dist) with docs/ui/index.html, Apache serves it as static files next to the API with the
configuration docs/api.md shows, and the page reads the module's /openapi.json relative to itself."""
import os
import re
import shutil
import subprocess

from pe_harness import RUN_ROOT, TOP, HttpdTestCase

DEST = os.path.join(RUN_ROOT, "docs-ui-%d" % os.getpid())
MODDIR = subprocess.run(["apxs", "-q", "LIBEXECDIR"], capture_output=True, text=True).stdout.strip() or \
    "/usr/lib/apache2/modules"


def api_md_block():
    """The Apache block of docs/api.md's "API reference page" section, as written."""
    with open(os.path.join(TOP, "docs", "api.md")) as f:
        text = f.read()
    start = text.index("### API reference page")
    return re.search(r"```apache\n(.*?)```", text[start:], re.S).group(1)


class DocsPage(HttpdTestCase):
    # the modules a stock Debian Apache has enabled already (the private instance loads few)
    EXTRA_CONF = "".join("<IfModule !%s_module>\n    LoadModule %s_module %s/mod_%s.so\n</IfModule>\n" % (m, m, MODDIR, m)
                         for m in ("alias", "mime", "dir")) + \
        "TypesConfig /etc/mime.types\n" + \
        api_md_block().replace("/usr/share/promptenchanter/docs", DEST)

    @classmethod
    def setUpClass(cls):
        if os.path.isdir(DEST):
            shutil.rmtree(DEST)
        subprocess.run(["bash", os.path.join(TOP, "build", "docs-ui.sh"), DEST], check=True, cwd=TOP)
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            shutil.rmtree(DEST, ignore_errors=True)

    def test_page_and_assets_served_by_apache(self):
        r = self.httpd.get("/docs/")
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.header("Content-Type").startswith("text/html"), r.headers)
        page = r.body.decode()
        self.assertIn('id="swagger-ui"', page)
        for asset in re.findall(r'(?:src|href)="\./([^"]+)"', page):
            a = self.httpd.get("/docs/" + asset)
            self.assertEqual(a.status, 200, asset)
            self.assertGreater(len(a.body), 0, asset)
        js = self.httpd.get("/docs/swagger-ui-bundle.js")
        self.assertIn("javascript", js.header("Content-Type"))
        init = self.httpd.get("/docs/pe-init.js").body.decode()
        self.assertIn("'../openapi.json'", init)
        # what the page reads, relative to /docs/
        spec = self.httpd.get("/openapi.json")
        self.assertEqual(spec.status, 200, spec)
        self.assertIn("/v1/chat/completions", spec.json["paths"])

    def test_api_still_answers_beside_it(self):
        self.assertEqual(self.httpd.get("/health").status, 200)
        self.assertEqual(self.httpd.get("/docs/nothing.js").status, 404)
