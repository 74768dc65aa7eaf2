#!/usr/bin/env bash
# Measure synscope (defaults) and nmap -sS -T4 on the real-world lab profile.
#
#   sudo tests/lab/real-measure.sh [PREFIX]      (default PREFIX: rm<pid>)
#
# Brings tests/lab/real.sh up, then, per family (IPv4, then IPv6), scans
# every target of tests/lab/real-key.txt in ONE run:
#   synscope scan -q -o json -p 1-3000 ADDRESSES...   (default options)
#   nmap -sS -n -Pn -T4 -p 1-3000 ADDRESSES...        (-6 for IPv6)
# from the client namespace, with tcpdump counting the ICMP errors that
# reach the client, and prints per target: ports right / total against the
# answer key, the wall time of each run, what the wrong ports got, and the
# ICMP errors per responder. Not a pass/fail test: a measurement.
#
# Environment: SYNSCOPE (binary; default target/debug/synscope, built with
# `cargo build` when missing), PORTS (default 1-3000), FAMILIES (default
# "4 6"), TOOLS (default "synscope nmap"), KEEP=1 keeps the output
# directory (its path is printed). Every run is bounded by timeout; the lab
# is torn down on exit, whatever happens.
set -Euo pipefail

LAB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$LAB_DIR/../.." && pwd)"
BIN=${SYNSCOPE:-$ROOT/target/debug/synscope}
PORTS=${PORTS:-1-3000}
FAMILIES=${FAMILIES:-4 6}
TOOLS=${TOOLS:-synscope nmap}
P=${1:-rm$(($$ % 100000))}
SCAN_TIMEOUT=1200   # s, per synscope run
NMAP_TIMEOUT=1800   # s, per nmap run
REST=10             # s between runs: every ICMP token bucket refills (6 s)

[[ $(id -u) -eq 0 ]] || { echo "real-measure.sh: must run as root" >&2; exit 1; }
command -v nmap >/dev/null || { echo "real-measure.sh: nmap not found" >&2; exit 1; }
command -v tcpdump >/dev/null || { echo "real-measure.sh: tcpdump not found" >&2; exit 1; }

OUT=$(mktemp -d /tmp/synscope-real-measure.XXXXXX)
TCPDUMP_PID=
cleanup() {
    [[ -n $TCPDUMP_PID ]] && kill -INT "$TCPDUMP_PID" 2>/dev/null
    bash "$LAB_DIR/real.sh" down "$P"
    if [[ ${KEEP:-0} == 1 ]]; then echo "output kept in $OUT"; else rm -rf -- "$OUT"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ ! -x $BIN ]]; then
    echo "building $BIN (cargo build)"
    (cd "$ROOT" && timeout 1800 cargo build --quiet) || { echo "cargo build failed" >&2; exit 1; }
fi

bash "$LAB_DIR/real.sh" up "$P" || exit 1
NS_C="$P-w-c"
IF_C="${P}c"

now() { date +%s.%N; }

# tcpdump in the client: ICMP errors only (v4 types 3/11, v6 types < 128).
start_tcpdump() {
    local f=$1 i
    ip netns exec "$NS_C" timeout $((NMAP_TIMEOUT + 60)) tcpdump -nn -i "$IF_C" -U -B 16384 -s 160 \
        -w "$f" 'icmp[0] = 3 or icmp[0] = 11 or (icmp6 and ip6[40] < 128)' 2>"$f.err" &
    TCPDUMP_PID=$!
    for ((i = 0; i < 50; i++)); do
        grep -q 'listening on' "$f.err" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "tcpdump did not start" >&2
}

stop_tcpdump() {
    sleep 1
    kill -INT "$TCPDUMP_PID" 2>/dev/null
    wait "$TCPDUMP_PID" 2>/dev/null
    TCPDUMP_PID=
}

# ICMP errors per responder in capture $1: count, first..last, rate.
icmp_summary() {
    tcpdump -nn -tt -r "$1" 2>/dev/null | python3 -c '
import sys, collections
by = collections.defaultdict(list)
for l in sys.stdin:
    f = l.split()
    if len(f) > 2 and f[1] in ("IP", "IP6"):
        by[f[2]].append(float(f[0]))
if not by:
    print("    ICMP errors reaching the client: none")
for src, ts in sorted(by.items(), key=lambda kv: -len(kv[1])):
    span = ts[-1] - ts[0]
    first = sum(1 for t in ts if t - ts[0] < 1.0)
    rate = (len(ts) - first) / span if span > 1 else 0
    print(f"    ICMP errors from {src:<18} {len(ts):>5} in {span:6.1f} s: {first} in the first second, then {rate:.2f}/s")
'
}

declare -A WALL RC
for fam in $FAMILIES; do
    # shellcheck disable=SC2207
    T=($(python3 "$LAB_DIR/realkey.py" targets "$fam"))
    for tool in $TOOLS; do
        sleep "$REST"
        start_tcpdump "$OUT/icmp-$tool-$fam.pcap"
        t0=$(now)
        case $tool in
            synscope)
                env -u SUDO_UID -u SUDO_GID timeout "$SCAN_TIMEOUT" ip netns exec "$NS_C" \
                    "$BIN" scan -q -o json -p "$PORTS" "${T[@]}" >"$OUT/synscope-$fam.json" 2>"$OUT/synscope-$fam.err"
                ;;
            nmap)
                six=(); [[ $fam == 6 ]] && six=(-6)
                timeout "$NMAP_TIMEOUT" ip netns exec "$NS_C" \
                    nmap "${six[@]}" -sS -n -Pn -T4 -p "$PORTS" -oX "$OUT/nmap-$fam.xml" "${T[@]}" \
                    >"$OUT/nmap-$fam.txt" 2>"$OUT/nmap-$fam.err"
                ;;
        esac
        RC[$tool$fam]=$?
        WALL[$tool$fam]=$(python3 -c "print(f'{$(now) - $t0:.1f}')")
        stop_tcpdump
    done
done

ext() { [[ $1 == synscope ]] && echo json || echo xml; }
echo
echo "real-world lab, ports $PORTS, $(uname -r), $(nproc) CPUs"
for fam in $FAMILIES; do
    for tool in $TOOLS; do
        echo
        case $tool in
            synscope) cmd="synscope scan -q -o json -p $PORTS" ;;
            nmap) cmd="nmap -sS -n -Pn -T4 -p $PORTS" ;;
        esac
        echo "== IPv$fam  $cmd   wall ${WALL[$tool$fam]} s, exit ${RC[$tool$fam]}"
        [[ ${RC[$tool$fam]} == 124 ]] && echo "   (killed by timeout)"
        python3 "$LAB_DIR/realkey.py" score "$tool" "$OUT/$tool-$fam.$(ext "$tool")" "$PORTS" "$fam"
        if [[ $tool == synscope && -s $OUT/synscope-$fam.json ]]; then
            python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
e = j.get("scan", {}).get("engine", {})
print("    engine:", ", ".join(f"{k} {v}" for k, v in e.items()), "| duration", round(j.get("scan", {}).get("duration_s", 0), 1), "s")
' "$OUT/synscope-$fam.json"
        fi
        icmp_summary "$OUT/icmp-$tool-$fam.pcap"
        grep -v '^$' "$OUT/$tool-$fam.err" 2>/dev/null | head -5 | sed 's/^/    stderr: /'
    done
done
exit 0
