#!/usr/bin/env python3
"""One TCP connect() probe, with the ICMP error that answers it (root).

Usage: probe.py ADDRESS PORT [TIMEOUT_S]

Starts a non-blocking connect() to ADDRESS:PORT and, at the same time,
reads a raw ICMP (or ICMPv6) socket for a destination-unreachable or
time-exceeded message that quotes this very connection (destination address,
both ports). Prints one JSON line and exits 0:

  {"result": "open"|"reset"|"icmp"|"timeout", "type": T, "code": C,
   "from": "ICMP source address", "ms": milliseconds to the answer}

"type"/"code"/"from" are null unless result is "icmp". The kernel resends
the SYN while no answer arrives (tcp_syn_linear_timeouts: every ~1 s), so a
rate-limited ICMP error that comes with a later retransmission is still
seen. Used by tests/real_lab.rs; only the standard library.
"""

import errno
import json
import select
import socket
import struct
import sys
import time


def quoted_ports_v4(data: bytes):
    """(icmp type, code, quoted dst addr, sport, dport) of an ICMPv4 error
    read from a raw socket (data starts with the outer IPv4 header)."""
    ihl = (data[0] & 0x0F) * 4
    icmp = data[ihl:]
    if len(icmp) < 8 + 20 + 4:
        return None
    typ, code = icmp[0], icmp[1]
    inner = icmp[8:]
    iihl = (inner[0] & 0x0F) * 4
    if inner[9] != socket.IPPROTO_TCP or len(inner) < iihl + 4:
        return None
    dst = socket.inet_ntop(socket.AF_INET, inner[16:20])
    sport, dport = struct.unpack("!HH", inner[iihl:iihl + 4])
    return typ, code, dst, sport, dport


def quoted_ports_v6(data: bytes):
    """The same for ICMPv6 (raw ICMPv6 sockets deliver no IPv6 header)."""
    if len(data) < 8 + 40 + 4:
        return None
    typ, code = data[0], data[1]
    inner = data[8:]
    if inner[6] != socket.IPPROTO_TCP:  # no extension headers in this lab
        return None
    dst = socket.inet_ntop(socket.AF_INET6, inner[24:40])
    sport, dport = struct.unpack("!HH", inner[40:44])
    return typ, code, dst, sport, dport


def main(argv):
    if len(argv) not in (2, 3):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    addr, port = argv[0], int(argv[1])
    timeout = float(argv[2]) if len(argv) == 3 else 5.0
    v6 = ":" in addr
    fam = socket.AF_INET6 if v6 else socket.AF_INET
    errors = (1, 3) if v6 else (3, 11)  # destination unreachable, time exceeded
    raw = socket.socket(fam, socket.SOCK_RAW,
                        socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP)
    raw.setblocking(False)
    parse = quoted_ports_v6 if v6 else quoted_ports_v4
    norm = socket.inet_ntop(fam, socket.inet_pton(fam, addr))

    tcp = socket.socket(fam, socket.SOCK_STREAM)
    tcp.setblocking(False)
    t0 = time.monotonic()
    err = tcp.connect_ex((addr, port))
    if err not in (0, errno.EINPROGRESS):
        print(json.dumps({"result": "error", "errno": errno.errorcode.get(err, err)}))
        return 1
    sport = tcp.getsockname()[1]

    def out(result, typ=None, code=None, src=None):
        print(json.dumps({"result": result, "type": typ, "code": code, "from": src,
                          "ms": round((time.monotonic() - t0) * 1000, 1)}))
        return 0

    deadline = t0 + timeout
    tcp_done = None
    while True:
        now = time.monotonic()
        if now >= deadline:
            return out(tcp_done or "timeout")
        wlist = [] if tcp_done else [tcp]
        r, w, _ = select.select([raw], wlist, [], deadline - now)
        if raw in r:
            try:
                data, src = raw.recvfrom(65535)
            except BlockingIOError:
                data = None
            q = parse(data) if data else None
            if q and q[0] in errors and q[2] == norm and q[3] == sport and q[4] == port:
                return out("icmp", q[0], q[1], src[0])
        if tcp in w:
            e = tcp.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if e == 0:
                return out("open")
            # A RST, or an ICMP error (port-unreachable is ECONNREFUSED
            # too): the raw socket has, or is about to get, the ICMP message
            # itself; read it for 0.3 s more before calling it a reset.
            tcp_done = "reset" if e == errno.ECONNREFUSED else "timeout"
            deadline = min(deadline, time.monotonic() + 0.3)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
