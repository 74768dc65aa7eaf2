#!/usr/bin/env python3
"""Listeners that misbehave after the handshake, for synscope's server lab.

Usage: behave.py --pidfile PATH PORT:MODE [PORT:MODE...]

Each PORT is bound on "::" (dual-stack: IPv4 and IPv6). MODE is one of
  reset    accept, then close at once with SO_LINGER 0: the peer gets a RST
           (a handler that crashes; a proxy with no healthy backend)
  close    accept, then close at once: the peer gets a FIN and no data
  banner   accept, send one line ("SSH-2.0-synscope-lab"), keep it open
  silent   accept and wait (the server waits for the client to speak)
  backlog  listen with a backlog of 0 and never accept: the accept queue is
           filled at start by two connections from this namespace to itself,
           so Linux drops every new SYN to it (an application that stopped
           calling accept())
The pid file is written once every socket listens (and the backlog queue
is full). SIGTERM/SIGINT end the process. Standard library only; every
connection is held at most HOLD seconds.
"""

import os
import selectors
import signal
import socket
import struct
import sys
import threading
import time

BANNER = b"SSH-2.0-synscope-lab\r\n"
HOLD = 30.0


def listener(port: int, backlog: int) -> socket.socket:
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", port))
    s.listen(backlog)
    return s


def hold(conn: socket.socket) -> None:
    # Wait (bounded) until the peer closes; then close.
    try:
        conn.settimeout(HOLD)
        while conn.recv(4096):
            pass
    except OSError:
        pass
    finally:
        conn.close()


def handle(mode: str, conn: socket.socket) -> None:
    if mode == "reset":
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()
    elif mode == "close":
        conn.close()
    elif mode == "banner":
        try:
            conn.sendall(BANNER)
        except OSError:
            pass
        threading.Thread(target=hold, args=(conn,), daemon=True).start()
    elif mode == "silent":
        threading.Thread(target=hold, args=(conn,), daemon=True).start()


def main() -> int:
    args = sys.argv[1:]
    pidfile = None
    if len(args) >= 2 and args[0] == "--pidfile":
        pidfile, args = args[1], args[2:]
    specs = []
    for a in args:
        port, _, mode = a.partition(":")
        if mode not in ("reset", "close", "banner", "silent", "backlog"):
            print(f"behave.py: bad PORT:MODE {a!r}", file=sys.stderr)
            return 2
        specs.append((int(port), mode))
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    signal.signal(signal.SIGINT, lambda *_: os._exit(0))
    sel = selectors.DefaultSelector()
    fillers = []
    for port, mode in specs:
        s = listener(port, 0 if mode == "backlog" else 64)
        if mode == "backlog":
            # Fill its accept queue: the first connection is queued, the
            # second's SYN is already dropped (left connecting).
            for _ in range(2):
                c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                c.setblocking(False)
                try:
                    c.connect(("127.0.0.1", port))
                except BlockingIOError:
                    pass
                fillers.append(c)
                time.sleep(0.1)
        else:
            sel.register(s, selectors.EVENT_READ, mode)
    if pidfile:
        with open(pidfile + ".tmp", "w") as f:
            f.write(f"{os.getpid()}\n")
        os.replace(pidfile + ".tmp", pidfile)
    while True:
        for key, _ in sel.select():
            try:
                conn, _ = key.fileobj.accept()
            except OSError:
                continue
            handle(key.data, conn)


if __name__ == "__main__":
    sys.exit(main())
