#!/usr/bin/env bash
# Regenerate the shipped packet captures from the network-namespace lab
# (tests/lab/lab.sh, prefix "sscap"). Needs root, tcpdump, nmap, curl,
# editcap (wireshark-common), python3.
#
#   captures/make-captures.sh            # writes into captures/
#   OUT=/some/dir captures/make-captures.sh
#
# Every probe goes only to addresses inside the lab namespaces; every tool is
# bounded in time; the lab and all capture processes are torn down on exit.
# The lab is rebuilt before each capture so neighbour caches and ICMP rate
# limiter state never carry over from one capture to the next.
# Captured traffic depends on the kernel; see captures/README.md.
set -Eeuo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LAB="$HERE/../tests/lab/lab.sh"
OUT="${OUT:-$HERE}"
PREFIX=sscap
NS_C="${PREFIX}-c"
IF_C="${PREFIX}c"
SNAP=256   # keeps whole headers incl. ICMPv6-quoted IPv6+TCP; see README

die() { echo "make-captures: $*" >&2; exit 1; }
log() { echo "make-captures: $*" >&2; }

[[ $(id -u) -eq 0 ]] || die "must run as root"
for tool in tcpdump nmap curl editcap ip python3; do
    command -v "$tool" >/dev/null || die "$tool not found"
done
[[ -x $LAB ]] || die "$LAB not found or not executable"

WORK=$(mktemp -d /tmp/synscope-captures.XXXXXX)
CAP_PIDS=()

stop_pid() {   # stop_pid PID: SIGINT (tcpdump flushes), bounded wait, SIGKILL
    local pid=$1 i
    kill -INT "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$? pid
    trap - EXIT INT TERM
    for pid in "${CAP_PIDS[@]}"; do stop_pid "$pid"; done
    "$LAB" down "$PREFIX" || true
    rm -rf -- "$WORK"
    if ((rc != 0)); then log "FAILED (exit $rc); nothing in $OUT was replaced"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

lab_up() { "$LAB" up "$PREFIX" >/dev/null; }
cx() { ip netns exec "$NS_C" "$@"; }

# start_cap NAME FILE TCPDUMP-ARGS... ; sets CAP_PID. Returns once tcpdump
# has printed "listening on" (bounded, 5 s).
start_cap() {
    local name=$1 file=$2 i
    shift 2
    # --immediate-mode: without it libpcap's TPACKET_V3 ring holds packets
    # until a block times out (~1 s) and a SIGINT before that loses them.
    ip netns exec "$NS_C" tcpdump -U --immediate-mode -n -Z root -s "$SNAP" "$@" -w "$file" \
        </dev/null >/dev/null 2>"$WORK/$name.err" &
    CAP_PID=$!
    CAP_PIDS+=("$CAP_PID")
    for ((i = 0; i < 50; i++)); do
        grep -q 'listening on' "$WORK/$name.err" 2>/dev/null && return 0
        kill -0 "$CAP_PID" 2>/dev/null || break
        sleep 0.1
    done
    cat "$WORK/$name.err" >&2
    die "tcpdump for $name did not start"
}

# stop_cap NAME PID: let late packets arrive, then stop and flush tcpdump.
stop_cap() {
    local name=$1 pid=$2 p
    sleep 0.5
    stop_pid "$pid"
    local keep=()
    for p in "${CAP_PIDS[@]}"; do [[ $p == "$pid" ]] || keep+=("$p"); done
    CAP_PIDS=("${keep[@]}")
    log "$name: $(grep -E 'packets? captured' "$WORK/$name.err" || echo '? packets captured')"
}

# Bounded client runs; a failing connection is the point, so ignore rc.
run_curl() { cx curl -sS -o /dev/null -w "    curl %{url}: http_code=%{http_code} time=%{time_total}s\n" "$@" >&2 || true; }
run_nmap() { cx nmap -sS -n -Pn --reason --max-retries 1 --host-timeout 30s "$@" || true; }

T0=$SECONDS

# ---------------------------------------------------------- nmap-v4.pcap ---
lab_up
log "nmap-v4: scanning (about 10 s)"
start_cap nmap-v4 "$WORK/nmap-v4.pcap" -i "$IF_C"
P1=$CAP_PID
{
    run_nmap -p 22,80,81,443,8080,8081,9000-9004 203.0.113.2
    run_nmap -p 80,443 203.0.113.99
    # The router answers for the absent host ~3 s after the first SYN (ARP
    # fails), possibly after nmap has given up; keep capturing until then.
    sleep 4
    run_nmap -p 80 192.0.2.1 192.0.2.129
} >"$WORK/nmap-v4.txt" 2>&1
stop_cap nmap-v4 "$P1"

# -------------------------------------------------------- nmap-v6.pcapng ---
lab_up
log "nmap-v6: scanning (about 10 s)"
start_cap nmap-v6 "$WORK/nmap-v6.pcap" -i "$IF_C"
P1=$CAP_PID
{
    run_nmap -6 -p 22,80,81,443,8080,8081,9000-9004 2001:db8:2::2
    run_nmap -6 -p 80,443 2001:db8:2::99
    sleep 4
    run_nmap -6 -p 80 2001:db8:3::1 2001:db8:4::1
} >"$WORK/nmap-v6.txt" 2>&1
stop_cap nmap-v6 "$P1"
editcap -F pcapng "$WORK/nmap-v6.pcap" "$WORK/nmap-v6.pcapng"

# ------------------------------- wrong-port.pcap(ng), wrong-port-sll2.pcap ---
lab_up
log "wrong-port: curl :8081 (refused) then :8080 (open)"
start_cap wrong-port "$WORK/wrong-port.pcap" -i "$IF_C"
P1=$CAP_PID
start_cap wrong-port-sll2 "$WORK/wrong-port-sll2.pcap" -i any -y LINUX_SLL2
P2=$CAP_PID
run_curl --max-time 5 http://203.0.113.2:8081/
run_curl --max-time 5 http://203.0.113.2:8080/
stop_cap wrong-port "$P1"
stop_cap wrong-port-sll2 "$P2"
editcap -F pcapng "$WORK/wrong-port.pcap" "$WORK/wrong-port.pcapng"

# ---------------------------------------------------------- dropped.pcap ---
lab_up
log "dropped: curl :9000 (DROP at target, ~4 s)"
start_cap dropped "$WORK/dropped.pcap" -i "$IF_C"
P1=$CAP_PID
run_curl --max-time 4 --connect-timeout 4 http://203.0.113.2:9000/
stop_cap dropped "$P1"

# --------------------------------------------------------- rejected.pcap ---
lab_up
log "rejected: curl :9001 (port-unreach), :9002 (admin-prohibited), [v6]:9001"
start_cap rejected "$WORK/rejected.pcap" -i "$IF_C"
P1=$CAP_PID
run_curl --max-time 5 http://203.0.113.2:9001/
run_curl --max-time 5 http://203.0.113.2:9002/
run_curl --max-time 5 -g 'http://[2001:db8:2::2]:9001/'
stop_cap rejected "$P1"

# ------------------------------------------------------ absent-host.pcap ---
lab_up
log "absent-host: curl 203.0.113.99:80 (router's host-unreach after ~3 s)"
start_cap absent-host "$WORK/absent-host.pcap" -i "$IF_C"
P1=$CAP_PID
run_curl --max-time 8 --connect-timeout 6 http://203.0.113.99:80/
stop_cap absent-host "$P1"

# --------------------------------------------------------- lone-syn.pcap ---
lab_up
log "lone-syn: nmap --max-retries 0 of the absent host, IPv4 then IPv6 (~10 s)"
start_cap lone-syn "$WORK/lone-syn.pcap" -i "$IF_C"
P1=$CAP_PID
{
    # One SYN a port, as masscan and zmap send: the router's host-unreachable
    # comes ~3.07 s later (its ARP / ND fails), after nmap has given up.
    cx nmap -sS -n -Pn --reason --max-retries 0 --host-timeout 30s -p 22,80,443 203.0.113.99 || true
    sleep 4
    cx nmap -6 -sS -n -Pn --reason --max-retries 0 --host-timeout 30s -p 22,80,443 2001:db8:2::99 || true
    sleep 4
} >"$WORK/lone-syn.txt" 2>&1
stop_cap lone-syn "$P1"

# ----------------------------------------------------- name-failure.pcap ---
lab_up
log "name-failure: curl nosuch.lab (NXDOMAIN from the lab resolver), target.lab:8081 -4 (refused)"
start_cap name-failure "$WORK/name-failure.pcap" -i "$IF_C"
P1=$CAP_PID
run_curl --max-time 4 http://nosuch.lab/
run_curl --max-time 4 -4 http://target.lab:8081/
stop_cap name-failure "$P1"

"$LAB" down "$PREFIX"

# ------------------------------------------------------------- publish ---
FILES=(nmap-v4.pcap nmap-v6.pcapng wrong-port.pcap wrong-port.pcapng
       wrong-port-sll2.pcap dropped.pcap rejected.pcap absent-host.pcap
       lone-syn.pcap name-failure.pcap)
for f in "${FILES[@]}"; do
    tcpdump -r "$WORK/$f" >/dev/null 2>&1 || die "$f: tcpdump cannot read it"
    size=$(stat -c %s "$WORK/$f")
    ((size < 1048576)) || die "$f: $size bytes, not < 1 MB"
done
linktype=$(tcpdump -r "$WORK/wrong-port-sll2.pcap" -c 1 2>&1 >/dev/null || true)
[[ $linktype == *"link-type LINUX_SLL2"* ]] \
    || die "wrong-port-sll2.pcap: link type is not LINUX_SLL2 ($linktype)"
# The verdicts of the new files are checked by the test suite:
# `cargo test --test captures` holds `synscope analyze` to expected.tsv.
mkdir -p "$OUT"
for f in "${FILES[@]}"; do
    install -m 0644 "$WORK/$f" "$OUT/$f"
done
for f in nmap-v4.txt nmap-v6.txt; do
    install -m 0644 "$WORK/$f" "$OUT/${f%.txt}.nmap.txt"
done
log "done in $((SECONDS - T0)) s; wrote ${FILES[*]} (+ nmap-v4.nmap.txt nmap-v6.nmap.txt) to $OUT"
