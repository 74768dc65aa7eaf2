#!/usr/bin/env python3
"""Replays the answers of an earlier scan (synscope lab only).

Usage: replay.py --pcap FILE --from ADDR [--seconds S] [--max N]

Reads a classic pcap (Ethernet or Linux cooked) written by `synscope scan
--write`, keeps the IPv4 packets whose source is ADDR (the target's RSTs and
SYN-ACKs, or ICMP errors), and sends them again, unchanged, in rounds until
--seconds have passed or --max packets went out. Run it inside a lab
namespace only; the packets' own destinations are the lab's client.
Prints how many packets it sent.
"""

import argparse
import socket
import struct
import sys
import time


def frames(path):
    with open(path, "rb") as f:
        head = f.read(24)
        magic = struct.unpack("<I", head[:4])[0]
        if magic in (0xA1B2C3D4, 0xA1B23C4D):
            endian = "<"
        else:
            endian = ">"
        linktype = struct.unpack(endian + "I", head[20:24])[0]
        while True:
            rec = f.read(16)
            if len(rec) < 16:
                return
            _, _, caplen, _ = struct.unpack(endian + "IIII", rec)
            data = f.read(caplen)
            if len(data) < caplen:
                return
            off = {1: 14, 113: 16, 276: 20}.get(linktype)
            if off is None:
                return
            yield data[off:]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pcap", required=True)
    ap.add_argument("--from", dest="src", required=True)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--max", type=int, default=50000)
    a = ap.parse_args()
    src = socket.inet_aton(a.src)
    old = [ip for ip in frames(a.pcap) if len(ip) >= 20 and ip[0] >> 4 == 4 and ip[12:16] == src]
    if not old:
        print(0)
        return 0
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    sent = 0
    end = time.monotonic() + min(a.seconds, 30.0)
    while time.monotonic() < end and sent < a.max:
        for ip in old:
            s.sendto(ip, (socket.inet_ntoa(ip[16:20]), 0))
            sent += 1
        time.sleep(0.01)
    print(sent)
    return 0


if __name__ == "__main__":
    sys.exit(main())
