"""Loopback helpers of .ci/alertmanager-e2e.sh (standard library only).

  sink PORT_FILE OUT_FILE
      A webhook receiver: every POST body (Alertmanager's JSON) is appended to OUT_FILE as one
      line {"path": <request path>, "body": <the JSON>}; answers 200. Writes its port to
      PORT_FILE once it listens on 127.0.0.1.
  proxy PORT_FILE UPSTREAM
      Forwards every request to http://UPSTREAM (host:port) and returns its answer: the API of a
      second exporter, which the test kills to make that exporter's targets fail.
  fast-forward API CUSTOMER_ID TENANT_TYPE_NUMBER TENANT_NAME MAX
      Sends first-page tenant requests to the demo API (which counts first pages as polls, its
      clock) until TENANT_NAME has free seats again, at most MAX times; prints how many.
"""
import http.server
import json
import sys
import urllib.parse
import urllib.request


def serve(port_file, handler):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    with open(port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    # Renamed so that a reader never sees a half-written port.
    import os
    os.replace(port_file + ".tmp", port_file)
    server.serve_forever()


def sink(port_file, out_file):
    class Sink(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            record = {"path": self.path, "body": json.loads(body)}
            with open(out_file, "a") as f:
                f.write(json.dumps(record) + "\n")
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    serve(port_file, Sink)


def proxy(port_file, upstream):
    class Proxy(http.server.BaseHTTPRequestHandler):
        def forward(self):
            length = int(self.headers.get("Content-Length", 0))
            body = self.rfile.read(length) if length else None
            headers = {k: v for k, v in self.headers.items()
                       if k.lower() not in ("host", "content-length", "connection")}
            req = urllib.request.Request(f"http://{upstream}{self.path}", data=body,
                                         headers=headers, method=self.command)
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    status, rheaders, data = r.status, r.headers, r.read()
            except urllib.error.HTTPError as e:
                status, rheaders, data = e.code, e.headers, e.read()
            self.send_response(status)
            for k, v in rheaders.items():
                if k.lower() not in ("content-length", "connection", "transfer-encoding", "date", "server"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = forward

        def log_message(self, *args):
            pass

    serve(port_file, Proxy)


def fast_forward(api, customer, tenant_type, tenant_name, limit):
    form = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": "demo-client",
                                   "client_secret": "demo-secret"}).encode()
    with urllib.request.urlopen(f"http://{api}/connect/token", data=form, timeout=10) as r:
        token = json.load(r)["access_token"]
    url = (f"http://{api}/partner/external/v3/general/customers/{customer}"
           f"/3rd-party-products/type/{tenant_type}/tenants/batch?pageIndex=1&pageSize=50")
    for n in range(1, int(limit) + 1):
        req = urllib.request.Request(url, data=b"{}", method="POST", headers={
            "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            page = json.load(r)
        free = [t["availableUserSeat"] for t in page["data"] if t["tenantName"] == tenant_name]
        if not free:
            sys.exit(f"fast-forward: no tenant {tenant_name!r} in the answer")
        if free[0] > 0:
            print(n)
            return
    sys.exit(f"fast-forward: {tenant_name} still has no free seat after {limit} polls")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"sink": sink, "proxy": proxy, "fast-forward": fast_forward}[cmd](*args)
