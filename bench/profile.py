"""bench/profile.py: callgrind instruction counts of one completion (cache miss, cache hit) and of
plain mod_proxy, in one `httpd -X` process (prefork: the event MPM does not serve under valgrind here) under valgrind (repeatable under load, unlike req/s).

    python3 bench/profile.py [requests per target (200)] [target ...]

Targets: mod_proxy, pe_miss, pe_hit (metrics on, the default) and pe_miss_nometrics, pe_hit_nometrics
(the same with `PEMetrics Off`); all of them when none is named.

Starts the node fake upstream and a private httpd (the bench's configuration, SQLite store),
registers a user, stops it, then for each target runs the same configuration as `httpd -X` under
callgrind (counting only inside ap_process_connection) and sends 5 + N requests on one keep-alive
connection. Prints instructions per request for each target and leaves the profiles in
<instance>/profiles/callgrind.out.<target> (callgrind_annotate them)."""
import http.client
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402
from bench import fakes, Httpd  # noqa: E402

N = int(sys.argv[1]) if len(sys.argv) > 1 else 200
ONLY = set(sys.argv[2:])
WARM = 5


def main():
    up = fakes.start_bench_upstream()
    moddir = subprocess.run(["apxs", "-q", "LIBEXECDIR"], capture_output=True, text=True).stdout.strip()
    conf = bench.CONF.replace("@MODDIR@", moddir).replace("@UPPORT@", str(up.port)).replace(
        "@SERVERS@", "1").replace("@WORKERS@", "64") + os.environ.get("BENCH_EXTRA_CONF", "")
    h = Httpd("profile", mpm="prefork", extra_conf=conf, env={"PE_UPSTREAM_URL": up.chat_url, "PE_LOGLEVEL": "warn",
                                                                     "PE_PRINCIPAL_CACHE_TTL": ""})
    vg = None
    try:
        h.start()
        r = h.post("/v1/users/register", {"username": "prof_user", "name": "Prof User",
                                          "email": "prof@example.com", "password": "Zebra-Lamp-42"})
        assert r.status == 201, r
        key, uid = r.json["api_key"], r.json["user_id"]
        h.sqlite("UPDATE pe_users SET conv_limit = 1000000000, conv_reset = 1000000000, reset_day = ? WHERE id = ?",
                 (int(time.time() // 86400), uid))
        h.stop()
        httpd = subprocess.run(["bash", "-c", "echo $(apxs -q SBINDIR)/$(apxs -q TARGET)"], capture_output=True,
                               text=True).stdout.strip()
        chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Benchmark question %d"}]}
        miss = {"level": "low", "r_type": "bpe", "messages": [{"role": "user", "content": "Benchmark question %d"}]}
        auth = {"Authorization": "Bearer " + key}
        hit = json.loads(json.dumps(miss).replace("%d", "fixed"))
        # (name, path, body, headers, configuration lines added for this target)
        targets = [("mod_proxy", "/proxy/chat/completions", chat, {}, ""),
                   ("pe_miss", "/v1/prompt/completions", miss, auth, ""),
                   ("pe_hit", "/v1/prompt/completions", hit, auth, ""),
                   ("pe_miss_nometrics", "/v1/prompt/completions", miss, auth, "PEMetrics Off\n"),
                   ("pe_hit_nometrics", "/v1/prompt/completions", hit, auth, "PEMetrics Off\n")]
        targets = [t for t in targets if not ONLY or t[0] in ONLY]
        results = {}
        prof_dir = os.path.join(h.dir, "profiles")
        os.makedirs(prof_dir, exist_ok=True)
        # NB: as root, httpd -X switches to its User after callgrind opened its output as root, and
        # the profile is lost; so the whole instance is handed to that user and runs as it.
        runas = {}
        if os.getuid() == 0:
            subprocess.run(["chown", "-R", "www-data:www-data", h.dir], check=True)
            runas = {"user": "www-data", "group": "www-data", "extra_groups": []}
        conf_path = os.path.join(h.dir, "conf", "httpd.conf")
        for name, path, body, hdr, extra in targets:
            out = os.path.join(prof_dir, "callgrind.out." + name)
            target_conf = conf_path
            if extra:
                target_conf = os.path.join(h.dir, "conf", "httpd-%s.conf" % name)
                with open(conf_path) as src, open(target_conf, "w") as dst:
                    dst.write(src.read() + "\n" + extra)
                if runas:
                    subprocess.run(["chown", "www-data:www-data", target_conf], check=True)
            # NB: --vgdb=no: with vgdb (the default) httpd -X never answered here. Only what runs
            # inside ap_process_connection is counted: one keep-alive connection carries every request.
            vg = subprocess.Popen(["valgrind", "--tool=callgrind", "--vgdb=no", "--toggle-collect=ap_process_connection",
                                   "--callgrind-out-file=" + out, httpd, "-X", "-f", target_conf],
                                  cwd=h.dir, stdout=subprocess.DEVNULL, **runas,
                                  stderr=open(os.path.join(h.dir, "vg-%s.log" % name), "w"))
            for _ in range(300):
                try:
                    if h.get("/health", timeout=60).status:
                        break
                except OSError:
                    time.sleep(1)
            conn = http.client.HTTPConnection("127.0.0.1", h.port, timeout=300)
            state = None
            for i in range(WARM + N):
                b = json.dumps(body).replace("%d", "p%d" % i)
                conn.request("POST", path, b, dict(hdr, **{"Content-Type": "application/json"}))
                resp = conn.getresponse()
                resp.read()
                assert resp.status == 200, (path, resp.status)
                state = resp.getheader("X-PE-Cache")
            conn.close()
            vg.terminate()
            vg.wait()
            vg = None
            for _ in range(60):  # the port is free again before the next target starts
                try:
                    h.get("/health", timeout=2)
                    time.sleep(1)
                except OSError:
                    break
            ir = 0
            with open(out) as f:
                for line in f:
                    if line.startswith("summary:") or line.startswith("totals:"):
                        ir = int(line.split()[1])
            # the /health probe is in the count too (one request: a rounding error at N=200)
            results[name] = ir // (WARM + N + 1)
            print("%-10s %12d instructions per request  (%s%s)" % (name, results[name], out,
                                                                     "" if state is None else ", X-PE-Cache " + state))
        for kind in ("miss", "hit"):
            on, off = results.get("pe_" + kind), results.get("pe_%s_nometrics" % kind)
            if on and off:
                print("metrics on / off, %-4s %+d instructions per request (%+.2f%%)" % (kind, on - off,
                                                                                        100.0 * (on - off) / off))
        print(json.dumps({"profile": "callgrind", "requests": WARM + N, "per_request_ir": results}))
    finally:
        if vg:
            vg.terminate()
            vg.wait()
        h.stop()
        up.stop()


if __name__ == "__main__":
    main()
