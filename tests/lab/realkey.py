#!/usr/bin/env python3
"""The real-world lab's answer key (tests/lab/real-key.txt), and scoring.

Usage:
  realkey.py targets 4|6              the address to scan of every target
  realkey.py truth ADDRESS PORT       the rule for one port (label state reason responder hops icmp)
  realkey.py score synscope FILE.json PORTS 4|6
  realkey.py score nmap FILE.xml PORTS 4|6
                                      per target: ports right / total against
                                      the key, when the target was done, and
                                      what the wrong ones got

A port is right when state and reason are the key's (and the responder, when
the tool names one: synscope always, nmap only for ports it lists one by one).
nmap's states map to synscope's: closed = refused, filtered with an ICMP
reason = unreachable, filtered with no-response = filtered. A port the tool
did not report at all counts as wrong ("missing"). Only the standard library.
"""

import collections
import ipaddress
import json
import os
import sys
import xml.etree.ElementTree as ET

KEY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "real-key.txt")


def parse_ports(spec):
    """nmap port syntax to a predicate (and the set, for finite specs)."""
    if spec == "*":
        return lambda p: True
    ranges = []
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        ranges.append((int(lo), int(hi or lo)))
    return lambda p: any(lo <= p <= hi for lo, hi in ranges)


def port_list(spec):
    out = []
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def none(s):
    return None if s == "-" else s


class Rule:
    def __init__(self, line):
        f = line.split()
        if len(f) != 8:
            raise ValueError(f"{KEY}: bad rule: {line!r}")
        self.label, addr, ports, self.state, self.reason = f[:5]
        self.net = ipaddress.ip_network(addr, strict=True)
        self.ports = parse_ports(ports)
        self.responder = none(f[5])
        if self.responder:
            self.responder = str(ipaddress.ip_address(self.responder))
        self.hops = None if f[6] == "-" else int(f[6])
        self.icmp = none(f[7])
        # The address scanned: the address itself, or a prefix's first host.
        self.target = str(self.net.network_address + (0 if self.net.num_addresses == 1 else 1))

    def matches(self, addr, port):
        return addr in self.net and self.ports(port)


def rules():
    with open(KEY) as f:
        return [Rule(l) for l in f if l.strip() and not l.lstrip().startswith("#")]


def truth(rs, addr, port):
    a = ipaddress.ip_address(addr)
    for r in rs:
        if r.matches(a, port):
            return r
    return None


def targets(rs, family):
    seen = []
    for r in rs:
        if r.net.version == family and r.target not in seen:
            seen.append(r.target)
    return seen


def read_synscope(path):
    """{(addr, port): (state, reason, responder)}"""
    with open(path) as f:
        j = json.load(f)
    out = {}
    res = j.get("results", [])
    start = min((r["first_probe_ns"] for r in res if r.get("first_probe_ns")), default=0)
    last = collections.defaultdict(int)
    inferred = collections.Counter()
    for r in res:
        addr = str(ipaddress.ip_address(r["target"]))
        resp = r.get("responder")
        out[(addr, int(r["port"]))] = (
            r["state"], r["reason"], str(ipaddress.ip_address(resp)) if resp else None)
        if r.get("decided_ns"):
            last[addr] = max(last[addr], r["decided_ns"])
        if r.get("inferred"):
            inferred[addr] += 1
    meta = {}
    for addr in {a for a, _ in out}:
        m = []
        if last[addr]:
            m.append(f"last answer at {(last[addr] - start) / 1e9:.0f} s")
        if inferred[addr]:
            m.append(f"{inferred[addr]} inferred")
        meta[addr] = ", ".join(m)
    return out, meta


NMAP_STATE = {"open": "open", "closed": "refused"}


def nmap_verdict(state, reason, reason_ip):
    if state in NMAP_STATE:
        st = NMAP_STATE[state]
    elif state == "filtered":
        st = "filtered" if reason in ("no-response", "no-responses") else "unreachable"
    else:
        st = state  # open|filtered, unfiltered...: never right
    if reason == "no-responses":  # extrareasons spell it in the plural
        reason = "no-response"
    if reason == "resets":
        reason = "reset"
    return st, reason, str(ipaddress.ip_address(reason_ip)) if reason_ip else None


def read_nmap(path):
    out = {}
    meta = {}
    root = ET.parse(path).getroot()
    start = int(root.get("start", "0"))
    for host in root.iter("host"):
        addr = None
        for a in host.iter("address"):
            if a.get("addrtype") in ("ipv4", "ipv6"):
                addr = str(ipaddress.ip_address(a.get("addr")))
        ports = host.find("ports")
        if addr is None or ports is None:
            continue
        if host.get("endtime") and start:
            meta[addr] = f"host done at {int(host.get('endtime')) - start} s"
        for ex in ports.iter("extraports"):
            for er in ex.iter("extrareasons"):
                spec = er.get("ports")
                if not spec:
                    continue  # older nmap: no port list; those count as missing
                v = nmap_verdict(ex.get("state"), er.get("reason"), None)
                for p in port_list(spec):
                    out[(addr, p)] = v
        for p in ports.iter("port"):
            if p.get("protocol") != "tcp":
                continue
            s = p.find("state")
            out[(addr, int(p.get("portid")))] = nmap_verdict(
                s.get("state"), s.get("reason"), s.get("reason_ip"))
    return out, meta


def score(rs, got, meta, family, ports):
    lines = []
    total_right = total = 0
    for t in targets(rs, family):
        right = 0
        wrong = collections.Counter()
        label = None
        for p in ports:
            r = truth(rs, t, p)
            label = label or r.label
            v = got.get((t, p))
            if v is None:
                wrong[("missing", "", None, r.state, r.reason)] += 1
                continue
            st, reason, resp = v
            ok = st == r.state and reason == r.reason
            if ok and resp is not None and r.responder is not None:
                ok = resp == r.responder
            if ok:
                right += 1
            else:
                wrong[(st, reason, resp, r.state, r.reason)] += 1
        total_right += right
        total += len(ports)
        desc = "; ".join(
            f"{n} {st} {reason}{' from ' + resp if resp else ''} (truth: {ts} {tr})"
            for (st, reason, resp, ts, tr), n in wrong.most_common())
        m = meta.get(t)
        lines.append(f"  {label:<11} {t:<18} {right:>5}/{len(ports)} right"
                     + (f" ({m})" if m else "")
                     + (f"   wrong: {desc}" if desc else ""))
    return total_right, total, lines


def main(argv):
    rs = rules()
    if len(argv) == 2 and argv[0] == "targets":
        print(" ".join(targets(rs, int(argv[1]))))
        return 0
    if len(argv) == 3 and argv[0] == "truth":
        r = truth(rs, argv[1], int(argv[2]))
        if r is None:
            return 1
        print(r.label, r.state, r.reason, r.responder or "-", r.hops or "-", r.icmp or "-")
        return 0
    if len(argv) == 5 and argv[0] == "score" and argv[1] in ("synscope", "nmap"):
        try:
            got, meta = (read_synscope if argv[1] == "synscope" else read_nmap)(argv[2])
        except (OSError, ValueError, ET.ParseError) as e:
            print(f"  (no report: {e})")
            got, meta = {}, {}
        family = int(argv[4])
        right, total, lines = score(rs, got, meta, family, port_list(argv[3]))
        print(f"  all IPv{family} targets: {right}/{total} right")
        print("\n".join(lines))
        return 0
    print(__doc__.strip().split("\n\n")[1], file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
