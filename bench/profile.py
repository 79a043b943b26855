"""bench/profile.py: callgrind instruction counts of one completion (cache miss, cache hit) and of
plain mod_proxy, in one `httpd -X` process under valgrind (repeatable under load, unlike req/s).

    python3 bench/profile.py [requests per target (200)]

Starts the node fake upstream and a private httpd (the bench's configuration, SQLite store),
registers a user, stops it, runs the same configuration as `httpd -X` under callgrind, sends the
warm-up, then for each target zeroes the counters, sends N requests on one keep-alive connection
and dumps. Prints instructions per request for each target and leaves the profiles in
<instance>/callgrind.out.<pid>.<n> (callgrind_annotate them)."""
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


def counters(out_dir, pid):
    """Total Ir of the last dump of pid."""
    files = sorted((f for f in os.listdir(out_dir) if f.startswith("callgrind.out.%d." % pid)),
                   key=lambda f: int(f.rsplit(".", 1)[1]))
    with open(os.path.join(out_dir, files[-1])) as f:
        for line in f:
            if line.startswith("summary:") or line.startswith("totals:"):
                return int(line.split()[1]), files[-1]
    return 0, files[-1]


def main():
    up = fakes.start_bench_upstream()
    moddir = subprocess.run(["apxs", "-q", "LIBEXECDIR"], capture_output=True, text=True).stdout.strip()
    conf = bench.CONF.replace("@MODDIR@", moddir).replace("@UPPORT@", str(up.port)).replace(
        "@SERVERS@", "1").replace("@WORKERS@", "64") + os.environ.get("BENCH_EXTRA_CONF", "")
    h = Httpd("profile", extra_conf=conf, env={"PE_UPSTREAM_URL": up.chat_url, "PE_LOGLEVEL": "warn"})
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
        out_dir = h.dir
        vg = subprocess.Popen(["valgrind", "--tool=callgrind", "--dump-instr=no", "--collect-atstart=yes",
                               "--callgrind-out-file=%s/callgrind.out.%%p" % out_dir,
                               httpd, "-X", "-f", os.path.join(h.dir, "conf", "httpd.conf")],
                              cwd=out_dir, stdout=subprocess.DEVNULL, stderr=open(os.path.join(out_dir, "vg.log"), "w"))
        for _ in range(600):
            try:
                if h.get("/health").status:
                    break
            except OSError:
                time.sleep(0.5)
        chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Benchmark question %d"}]}
        miss = {"level": "low", "r_type": "bpe", "messages": [{"role": "user", "content": "Benchmark question %d"}]}
        targets = [("mod_proxy", "/proxy/chat/completions", chat, {}),
                   ("pe_miss", "/v1/prompt/completions", miss, {"Authorization": "Bearer " + key}),
                   ("pe_hit", "/v1/prompt/completions", json.loads(json.dumps(miss).replace("%d", "fixed")),
                    {"Authorization": "Bearer " + key})]
        conn = http.client.HTTPConnection("127.0.0.1", h.port, timeout=120)

        def send(path, body, hdr, i):
            b = json.dumps(body).replace("%d", "p%d" % i)
            conn.request("POST", path, b, dict(hdr, **{"Content-Type": "application/json"}))
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 200, (path, resp.status)
            return resp

        for name, path, body, hdr in targets:  # warm-up
            for i in range(20):
                send(path, body, hdr, 100000 + i)
        results = {}
        for name, path, body, hdr in targets:
            subprocess.run(["callgrind_control", "--zero", str(vg.pid)], check=True, capture_output=True)
            for i in range(N):
                resp = send(path, body, hdr, i)
            subprocess.run(["callgrind_control", "--dump=" + name, str(vg.pid)], check=True, capture_output=True)
            time.sleep(0.5)
            ir, f = counters(out_dir, vg.pid)
            results[name] = ir // N
            print("%-10s %12d instructions per request  (%s/%s)%s" % (
                name, ir // N, out_dir, f, "" if name == "mod_proxy" else " X-Cache " + str(resp.getheader("X-PE-Cache"))))
        conn.close()
        print(json.dumps({"profile": "callgrind", "per_request_ir": results}))
    finally:
        if vg:
            vg.terminate()
            vg.wait()
        h.stop()
        up.stop()


if __name__ == "__main__":
    main()
