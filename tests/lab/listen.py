#!/usr/bin/env python3
"""Tiny TCP listener for the synscope network-namespace lab.

Usage: listen.py [--pidfile PATH] PORT [PORT...]

Binds every PORT on "::" with IPV6_V6ONLY=0 (so one socket serves IPv4 and
IPv6), accepts connections and answers each with a minimal HTTP/1.0 200
response before closing it, so that `curl http://addr:PORT/` succeeds.

The pid file is written only after every socket is listening, so its
presence is a readiness signal. SIGTERM/SIGINT make the process exit at once.
Only the standard library is used.
"""

import os
import selectors
import signal
import socket
import sys
import threading

BODY = b"synscope lab ok\n"
RESPONSE = (
    b"HTTP/1.0 200 OK\r\n"
    b"Content-Type: text/plain\r\n"
    b"Content-Length: " + str(len(BODY)).encode() + b"\r\n"
    b"Connection: close\r\n"
    b"\r\n" + BODY
)
MAX_REQUEST = 8192
MAX_CLIENTS = 64
IO_TIMEOUT = 2.0

_slots = threading.BoundedSemaphore(MAX_CLIENTS)


def serve(conn: socket.socket) -> None:
    try:
        conn.settimeout(IO_TIMEOUT)
        buf = b""
        # Read the request head (bounded in size and time) so that closing
        # the socket does not turn into an RST because of unread data.
        try:
            while b"\r\n\r\n" not in buf and len(buf) < MAX_REQUEST:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                buf += chunk
        except OSError:
            pass
        try:
            conn.sendall(RESPONSE)
            conn.shutdown(socket.SHUT_WR)
            # Drain until the peer closes (bounded by IO_TIMEOUT per recv
            # and by a small number of iterations).
            for _ in range(16):
                if not conn.recv(4096):
                    break
        except OSError:
            pass
    finally:
        conn.close()
        _slots.release()


def main(argv: list[str]) -> int:
    pidfile = None
    args = list(argv)
    if len(args) >= 2 and args[0] == "--pidfile":
        pidfile = args[1]
        args = args[2:]
    if not args:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    ports = []
    for a in args:
        if not a.isdigit() or not 0 < int(a) < 65536:
            print(f"listen.py: bad port {a!r}", file=sys.stderr)
            return 2
        ports.append(int(a))

    def on_signal(_signum, _frame):
        # Exit at once (in-flight connections live in daemon threads).
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    sel = selectors.DefaultSelector()
    for port in ports:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.bind(("::", port))
        s.listen(128)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)

    if pidfile:
        tmp = pidfile + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{os.getpid()}\n")
        os.replace(tmp, pidfile)
    print(f"listen.py: pid {os.getpid()} listening on {ports}", flush=True)

    while True:
        for key, _ in sel.select(timeout=0.5):
            try:
                conn, _addr = key.fileobj.accept()
            except OSError:
                continue
            conn.setblocking(True)
            if not _slots.acquire(blocking=False):
                conn.close()
                continue
            threading.Thread(target=serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
