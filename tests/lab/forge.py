#!/usr/bin/env python3
"""Forged and stray replies for the synscope lab (IPv4 only).

Usage: forge.py --client ADDR --target ADDR --sport N --ports P[,P...]
                [--seconds S] [--max N]

Sends, in rounds until --seconds have passed or --max packets went out, for
every port: a RST|ACK and a SYN|ACK "from" target:port to client:sport with
a wrong acknowledgement number, and an ICMP port-unreachable "from" the
target quoting client:sport -> target:port with a wrong sequence number.
Run it inside a lab namespace only (the router); the lab's addresses are the
only destinations. Prints how many packets it sent.
"""

import argparse
import random
import socket
import struct
import sys
import time


def csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ip_header(src: bytes, dst: bytes, proto: int, payload_len: int) -> bytes:
    # Linux fills in the checksum (and the ID when 0) for IP_HDRINCL.
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + payload_len, 0, 0, 63, proto, 0, src, dst)


def tcp_segment(src: bytes, dst: bytes, sport: int, dport: int, seq: int, ack: int, flags: int) -> bytes:
    hdr = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 0, 0, 0)
    pseudo = struct.pack("!4s4sBBH", src, dst, 0, 6, len(hdr))
    c = csum(pseudo + hdr)
    return hdr[:16] + struct.pack("!H", c) + hdr[18:]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--client", required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("--sport", type=int, required=True)
    ap.add_argument("--ports", required=True)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--max", type=int, default=50000)
    a = ap.parse_args()
    client = socket.inet_aton(a.client)
    target = socket.inet_aton(a.target)
    ports = [int(p) for p in a.ports.split(",")]
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    sent = 0
    end = time.monotonic() + min(a.seconds, 30.0)
    while time.monotonic() < end and sent < a.max:
        for port in ports:
            wrong = random.getrandbits(32)
            for flags in (0x14, 0x12):  # RST|ACK, SYN|ACK
                seg = tcp_segment(target, client, port, a.sport, random.getrandbits(32), wrong, flags)
                s.sendto(ip_header(target, client, 6, len(seg)) + seg, (a.client, 0))
                sent += 1
            # ICMP port unreachable quoting a SYN with a wrong sequence number.
            quoted = ip_header(client, target, 6, 20) + struct.pack("!HHI", a.sport, port, wrong)
            icmp = struct.pack("!BBHI", 3, 3, 0, 0) + quoted
            icmp = icmp[:2] + struct.pack("!H", csum(icmp)) + icmp[4:]
            s.sendto(ip_header(target, client, 1, len(icmp)) + icmp, (a.client, 0))
            sent += 1
        time.sleep(0.005)
    print(sent)
    return 0


if __name__ == "__main__":
    sys.exit(main())
