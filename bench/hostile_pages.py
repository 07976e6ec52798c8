#!/usr/bin/env python3
"""Peak memory of the exporter against a hostile API that ignores pageSize.

    bench/hostile_pages.py [BINARY] [TARGETS]     (defaults: target/release/..., 8)

A fake Elements API answers every tenants page with about 16 MiB of minimal records (some
230 000 tenants, far past the 100 000-record cap of a list) and a totalCount that asks for
four such pages; the token endpoint answers at once. The exporter polls TARGETS such targets
(default 8, at the default max_concurrency of 4 requests in flight) once, and the script prints
its peak RSS (VmHWM) and its RSS when the pass is over, with what each target ended as.
"""
import http.server
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

binary = sys.argv[1] if len(sys.argv) > 1 else "target/release/avepoint-elements-exporter"
targets = int(sys.argv[2]) if len(sys.argv) > 2 else 8

record = '{"tenantId":"t%07d","availableUserSeat":1,"assignedUserSeat":0}'
page = ('{"data":[' + ",".join(record % i for i in range(230_000)) + '],"metadata":{"totalCount":920000}}').encode()


class Api(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        length = int(self.headers.get("content-length", "0"))
        self.rfile.read(length)
        if self.path.endswith("/token"):
            body = b'{"access_token":"tok","token_type":"Bearer","expires_in":3600}'
        else:
            body = page
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Api)
threading.Thread(target=server.serve_forever, daemon=True).start()
api = f"http://127.0.0.1:{server.server_address[1]}"

with tempfile.TemporaryDirectory() as tmp:
    config = os.path.join(tmp, "config.yaml")
    with open(config, "w") as f:
        f.write(f"elements:\n  base_url: {api}\n  token_url: {api}/token\n  client_id: x\n"
                f"  client_secret: y\n  max_requests_per_second: 0\n  retries: 0\n"
                f"poll:\n  interval: 1h\ncustomers:\n")
        for i in range(targets):
            f.write(f"  - id: c{i}\n    tenant_types: [microsoft_365]\n")
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    proc = subprocess.Popen([binary, "--config.file", config, "--web.listen-address",
                             f"127.0.0.1:{port}", "--log.level", "warn"],
                            stderr=subprocess.DEVNULL)

    def status(key):
        with open(f"/proc/{proc.pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024
        return 0.0

    start = time.time()
    text = ""
    try:
        while time.time() - start < 300:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=5) as r:
                    if r.status == 200:
                        break
            except Exception:
                pass
            time.sleep(0.2)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as r:
            text = r.read().decode()
        time.sleep(2)
        peak, now = status("VmHWM"), status("VmRSS")
    finally:
        proc.kill()
        proc.wait()
    errors = re.findall(r'avepoint_exporter_target_errors_total\{cause="([a-z_0-9]+)"[^}]*\} (\d+)', text)
    tenants = re.findall(r'avepoint_exporter_target_tenants\{[^}]*\} (\d+)', text)
    print(f"hostile pages: {targets} targets, pages of {len(page) / 1048576:.1f} MiB "
          f"({230_000} records each, totalCount 920000)")
    print(f"  target errors by cause: {sorted(set(errors))}; largest target_tenants: "
          f"{max(map(int, tenants)) if tenants else 'none'}")
    print(f"  exporter RSS: peak {peak:.1f} MiB, after the pass {now:.1f} MiB")
