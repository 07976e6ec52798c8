"""Clients that ask and never read: COUNT connections send `GET PATH` to 127.0.0.1:PORT, wait
until the first bytes of each answer have arrived (peeked at, not read), print "held", and
keep the connections open for SECONDS. Usage: slow_readers.py PORT PATH COUNT SECONDS"""
import select
import socket
import sys
import time


def main() -> None:
    port, path, count, seconds = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    conns = []
    for _ in range(count):
        s = socket.socket()
        # A small receive window (set before connecting, so that it is the one offered), as
        # a slow client far away has: the answer stays with the server.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", port))
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: exporter\r\n\r\n".encode())
        conns.append(s)
    deadline = time.monotonic() + 120
    waiting = list(conns)
    while waiting and time.monotonic() < deadline:
        ready, _, _ = select.select(waiting, [], [], 1)
        waiting = [s for s in waiting if s not in ready]
    if waiting:
        sys.exit(f"{len(waiting)} of {count} connections got no answer")
    print("held", flush=True)
    time.sleep(seconds)
    for s in conns:
        s.close()


if __name__ == "__main__":
    main()
