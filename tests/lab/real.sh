#!/usr/bin/env bash
# synscope "real-world" lab profile.
#
#   real.sh up PREFIX     build the namespaces (replaces a lab of that PREFIX)
#   real.sh down PREFIX   tear them down (idempotent, never fails)
#
# Unlike lab.sh (the deterministic lab), this profile keeps EVERY kernel
# default for ICMP rate limiting in every namespace (icmp_ratelimit,
# icmp_ratemask, icmp_msgs_per_sec/burst, net.ipv6.icmp.ratelimit/ratemask
# are never written), and has the targets users meet: a cloud VM that drops,
# a firewalld host that rejects with host-prohibited, a host behind a
# filtering router, an absent host, unreachable/prohibit/blackhole routes,
# a slow lossy link and a host that sends at most 200 resets a second (as
# FreeBSD and macOS do by default). See tests/lab/README.md ("Real-world
# profile") for the topology, the addresses and the answer key
# (tests/lab/real-key.txt).
#
# Namespaces: PREFIX-w-c (client), PREFIX-w-r (router), PREFIX-w-vm,
# PREFIX-w-fw, PREFIX-w-h, PREFIX-w-slow, PREFIX-w-bsd. Veths are created directly inside
# the namespaces: nothing is added to the root namespace, no packet leaves.
# Needs root, iproute2 (with tc), iptables/ip6tables, python3, curl.
set -Eeuo pipefail

LAB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
source "$LAB_DIR/common.sh"
STATE_ROOT=/run/synscope-lab
PROG=real.sh


usage() {
    echo "usage: $PROG up|down PREFIX   (PREFIX: 1-10 chars of [A-Za-z0-9_], starting alnum)" >&2
    exit 2
}

check_prefix() {
    # Interface names are PREFIX plus at most 2 chars (<= 12, IFNAMSIZ 15).
    [[ $1 =~ ^[A-Za-z0-9][A-Za-z0-9_]{0,9}$ ]] \
        || die "invalid PREFIX '$1' (1-10 chars of [A-Za-z0-9_], starting with a letter or digit)"
}

names() {
    P=$1
    # "-w-" (world) keeps these apart from lab.sh's PREFIX-c/-r/-t, so the
    # two profiles may even share a PREFIX.
    NS_C="${P}-w-c"; NS_R="${P}-w-r"
    NS_VM="${P}-w-vm"; NS_FW="${P}-w-fw"; NS_H="${P}-w-h"; NS_S="${P}-w-slow"
    NS_B="${P}-w-bsd"
    ALL_NS=("$NS_C" "$NS_R" "$NS_VM" "$NS_FW" "$NS_H" "$NS_S" "$NS_B")
    IF_C="${P}c";  IF_RC="${P}rc"   # client <-> router
    IF_V="${P}v";  IF_RV="${P}rv"   # cloud VM <-> router
    IF_F="${P}f";  IF_RF="${P}rf"   # firewalld host <-> router
    IF_H="${P}h";  IF_RH="${P}rh"   # host behind the filtering router
    IF_S="${P}s";  IF_RS="${P}rs"   # slow lossy link
    IF_B="${P}b";  IF_RB="${P}rb"   # host that rate-limits its resets
    STATE="$STATE_ROOT/${P}-w"
}


pick_python() {
    if [[ -n ${PYTHON:-} ]]; then echo "$PYTHON"
    elif [[ -x /usr/bin/python3 ]]; then echo /usr/bin/python3
    else command -v python3 || die "python3 not found"
    fi
}

# True while PID runs; a zombie (reparented to PID 1, not yet reaped)
# counts as gone.
alive() {
    local st
    st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ -n $st && $st != Z ]]
}

# ---------------------------------------------------------------- down ---
lab_down() {
    names "$1"
    set +e
    local f pid i
    # 1. The listeners, by the pids they recorded, if still listen.py.
    for f in "$STATE"/listen-*.pid; do
        [[ -r $f ]] || continue
        pid=$(head -n1 "$f" 2>/dev/null)
        if [[ $pid =~ ^[0-9]+$ ]] && grep -qa 'listen\.py' "/proc/$pid/cmdline" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null
            for ((i = 0; i < 30; i++)); do
                alive "$pid" || break
                sleep 0.1
            done
            alive "$pid" && kill -KILL "$pid" 2>/dev/null
        fi
    done
    # 2. Anything else still running in this lab's namespaces (started for
    #    this lab only), then the namespaces (which destroys the veths).
    ns_delete "${ALL_NS[@]}"
    rm -rf -- "$STATE" 2>/dev/null
    # The shared $STATE_ROOT stays: removing it when empty raced with
    # another lab's `mkdir -p` under it (parallel tests); /run is a tmpfs.
    set -e
    return 0
}

# ------------------------------------------------------------------ up ---
UP_PREFIX=
on_up_error() {
    local rc=$? line=$1 cmd=$2 f
    trap - ERR
    echo "$PROG: up $UP_PREFIX failed (exit $rc) at line $line: $cmd" >&2
    for f in "${STATE:-/nonexistent}"/listen-*.log; do
        [[ -s $f ]] || continue
        echo "$PROG: $(basename "$f"):" >&2
        sed 's/^/    /' "$f" >&2
    done
    lab_down "$UP_PREFIX"
    exit 1
}





# A target namespace $1 on router subnet N ($4): veth $2 (target side) /
# $3 (router side), 198.18.N.2/24 + 2001:db8:18:N::2/64, router .1 / ::1.
target_link() {
    local ns=$1 ift=$2 ifr=$3 n=$4
    ip link add "$ift" netns "$ns" type veth peer name "$ifr" netns "$NS_R"
    nsx "$NS_R" ip addr add "198.18.$n.1/24" dev "$ifr"
    nsx "$NS_R" ip addr add "2001:db8:18:$n::1/64" dev "$ifr" nodad
    nsx "$NS_R" ip link set "$ifr" up
    nsx "$ns" ip addr add "198.18.$n.2/24" dev "$ift"
    nsx "$ns" ip addr add "2001:db8:18:$n::2/64" dev "$ift" nodad
    nsx "$ns" ip link set "$ift" up
    nsx "$ns" ip route add default via "198.18.$n.1" dev "$ift"
    nsx "$ns" ip -6 route add default via "2001:db8:18:$n::1" dev "$ift"
}

# Start listen.py in namespace $1 (name $2 for its pid/log files) on ports $3...
start_listener() {
    local ns=$1 name=$2; shift 2
    ip netns exec "$ns" setsid "$PY" "$LAB_DIR/listen.py" --pidfile "$STATE/listen-$name.pid" "$@" \
        </dev/null >"$STATE/listen-$name.log" 2>&1 &
}

# Wait (<= 10 s) until namespace $1 listens on every port $2...
wait_listening() {
    local ns=$1; shift
    local i p ok listening
    for ((i = 0; i < 100; i++)); do
        listening=$(nsx "$ns" ss -Hltn 2>/dev/null | awk '{print $4}')
        ok=1
        for p in "$@"; do
            grep -Eq "[:.]$p\$" <<<"$listening" || { ok=0; break; }
        done
        ((ok)) && return 0
        sleep 0.1
    done
    fail "no listener on $* in $ns after 10 s"
}

lab_up() {
    UP_PREFIX=$1
    names "$1"
    lab_down "$1"
    trap 'on_up_error $LINENO "$BASH_COMMAND"' ERR
    PY=$(pick_python)
    command -v tc >/dev/null || fail "tc (iproute2) not found"
    mkdir -p "$STATE"

    local ns ipt
    for ns in "${ALL_NS[@]}"; do
        ip netns add "$ns"
        ns_base_sysctls "$ns"
    done
    nsx "$NS_R" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1

    # Client <-> router: 198.18.0.0/24, 2001:db8:18:0::/64.
    ip link add "$IF_C" netns "$NS_C" type veth peer name "$IF_RC" netns "$NS_R"
    nsx "$NS_C" ip addr add 198.18.0.2/24 dev "$IF_C"
    nsx "$NS_C" ip addr add 2001:db8:18:0::2/64 dev "$IF_C" nodad
    nsx "$NS_C" ip link set "$IF_C" up
    nsx "$NS_C" ip route add default via 198.18.0.1 dev "$IF_C"
    nsx "$NS_C" ip -6 route add default via 2001:db8:18:0::1 dev "$IF_C"
    nsx "$NS_R" ip addr add 198.18.0.1/24 dev "$IF_RC"
    nsx "$NS_R" ip addr add 2001:db8:18:0::1/64 dev "$IF_RC" nodad
    nsx "$NS_R" ip link set "$IF_RC" up

    target_link "$NS_VM" "$IF_V" "$IF_RV" 1
    target_link "$NS_FW" "$IF_F" "$IF_RF" 2
    target_link "$NS_H" "$IF_H" "$IF_RH" 3   # 198.18.3.99 / ::99: nobody
    target_link "$NS_S" "$IF_S" "$IF_RS" 4
    target_link "$NS_B" "$IF_B" "$IF_RB" 5

    # Routes of the router: one prefix each.
    nsx "$NS_R" ip route add unreachable 198.18.8.0/24
    nsx "$NS_R" ip route add prohibit 198.18.9.0/24
    nsx "$NS_R" ip route add blackhole 198.18.10.0/24
    nsx "$NS_R" ip -6 route add unreachable 2001:db8:18:8::/64
    nsx "$NS_R" ip -6 route add prohibit 2001:db8:18:9::/64
    nsx "$NS_R" ip -6 route add blackhole 2001:db8:18:a::/64

    # Cloud VM: INPUT policy DROP, 22 and 443 open (a security group /
    # "ufw default deny" host). IPv6 lets neighbour discovery in, or the
    # router could not reach it at all.
    for ipt in iptables ip6tables; do
        nsx "$NS_VM" "$ipt" -w -A INPUT -i lo -j ACCEPT
        nsx "$NS_VM" "$ipt" -w -A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
        nsx "$NS_VM" "$ipt" -w -A INPUT -p tcp --dport 22 -j ACCEPT
        nsx "$NS_VM" "$ipt" -w -A INPUT -p tcp --dport 443 -j ACCEPT
    done
    local t
    for t in 133 134 135 136; do
        nsx "$NS_VM" ip6tables -w -A INPUT -p ipv6-icmp --icmpv6-type "$t" -j ACCEPT
    done
    nsx "$NS_VM" iptables -w -P INPUT DROP
    nsx "$NS_VM" ip6tables -w -P INPUT DROP

    # firewalld's default zone (public: ssh and dhcpv6-client), as its
    # iptables backend writes it: established/related, lo, invalid dropped,
    # ICMP allowed, the zone's services, then REJECT with host-prohibited
    # (IPv6 adm-prohibited).
    for ipt in iptables ip6tables; do
        nsx "$NS_FW" "$ipt" -w -A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
        nsx "$NS_FW" "$ipt" -w -A INPUT -i lo -j ACCEPT
        nsx "$NS_FW" "$ipt" -w -A INPUT -m conntrack --ctstate INVALID -j DROP
    done
    nsx "$NS_FW" iptables -w -A INPUT -p icmp -j ACCEPT
    nsx "$NS_FW" ip6tables -w -A INPUT -p ipv6-icmp -j ACCEPT
    nsx "$NS_FW" ip6tables -w -A INPUT -d fe80::/64 -p udp --dport 546 -m conntrack --ctstate NEW -j ACCEPT
    for ipt in iptables ip6tables; do
        nsx "$NS_FW" "$ipt" -w -A INPUT -p tcp --dport 22 -m conntrack --ctstate NEW -j ACCEPT
    done
    nsx "$NS_FW" iptables -w -A INPUT -j REJECT --reject-with icmp-host-prohibited
    nsx "$NS_FW" ip6tables -w -A INPUT -j REJECT --reject-with icmp6-adm-prohibited
    nsx "$NS_FW" iptables -w -A FORWARD -j REJECT --reject-with icmp-host-prohibited
    nsx "$NS_FW" ip6tables -w -A FORWARD -j REJECT --reject-with icmp6-adm-prohibited

    # Host behind the filtering router: no firewall of its own (closed ports
    # answer RST); the router rejects 2002 (admin-prohibited) and resets
    # 2003 on the way in, like lab.sh's 9002/9003.
    # Only for the host's own address: the absent address on the same
    # subnet gets no rule.
    for ipt in iptables ip6tables; do
        local adm=icmp-admin-prohibited dst=198.18.3.2
        [[ $ipt == ip6tables ]] && adm=icmp6-adm-prohibited dst=2001:db8:18:3::2
        nsx "$NS_R" "$ipt" -w -A FORWARD -i "$IF_RC" -o "$IF_RH" -d "$dst" -p tcp --dport 2002 -j REJECT --reject-with "$adm"
        nsx "$NS_R" "$ipt" -w -A FORWARD -i "$IF_RC" -o "$IF_RH" -d "$dst" -p tcp --dport 2003 -j REJECT --reject-with tcp-reset
    done

    # Slow lossy link: tbf 4 Mbit, 20 ms queue, on both ends of the veth
    # (this kernel has no netem), and 1 % random loss each way in the
    # router's FORWARD chain.
    nsx "$NS_R" tc qdisc add dev "$IF_RS" root tbf rate 4mbit burst 32kbit latency 20ms
    nsx "$NS_S" tc qdisc add dev "$IF_S" root tbf rate 4mbit burst 32kbit latency 20ms
    for ipt in iptables ip6tables; do
        nsx "$NS_R" "$ipt" -w -A FORWARD -i "$IF_RC" -o "$IF_RS" -m statistic --mode random --probability 0.01 -j DROP
        nsx "$NS_R" "$ipt" -w -A FORWARD -i "$IF_RS" -o "$IF_RC" -m statistic --mode random --probability 0.01 -j DROP
    done

    # A host that sends at most 200 resets a second, 200 at once: what
    # FreeBSD and macOS do for closed ports by default
    # (net.inet.icmp.icmplim=200); probes beyond it get no answer.
    for ipt in iptables ip6tables; do
        nsx "$NS_B" "$ipt" -w -A OUTPUT -p tcp --tcp-flags RST RST -m limit --limit 200/second --limit-burst 200 -j ACCEPT
        nsx "$NS_B" "$ipt" -w -A OUTPUT -p tcp --tcp-flags RST RST -j DROP
    done

    wait_link_up "$NS_C" "$IF_C"
    local pair
    for pair in "$NS_R:$IF_RC" "$NS_R:$IF_RV" "$NS_R:$IF_RF" "$NS_R:$IF_RH" "$NS_R:$IF_RS" \
        "$NS_R:$IF_RB" "$NS_VM:$IF_V" "$NS_FW:$IF_F" "$NS_H:$IF_H" "$NS_S:$IF_S" "$NS_B:$IF_B"; do
        wait_link_up "${pair%%:*}" "${pair#*:}"
    done
    for ns in "${ALL_NS[@]}"; do
        wait_v6_ready "$ns"
    done

    start_listener "$NS_VM" vm 22 443
    start_listener "$NS_FW" fw 22
    start_listener "$NS_H" h 22 80 443
    start_listener "$NS_S" slow 22 80 443 2000
    start_listener "$NS_B" bsd 22
    wait_listening "$NS_VM" 22 443
    wait_listening "$NS_FW" 22
    wait_listening "$NS_H" 22 80 443
    wait_listening "$NS_S" 22 80 443 2000
    wait_listening "$NS_B" 22

    # End to end through the router, both families, one open port of each
    # host (<= 4 tries of <= 3 s: the slow link loses 1 % each way). Only
    # open ports: no ICMP error is spent before the caller's first probe.
    local url i ok
    fetch_each "$NS_C" 4 3 http://198.18.1.2:443/ 'http://[2001:db8:18:1::2]:443/' \
        http://198.18.2.2:22/ 'http://[2001:db8:18:2::2]:22/' \
        http://198.18.3.2:80/ 'http://[2001:db8:18:3::2]:80/' \
        http://198.18.4.2:2000/ 'http://[2001:db8:18:4::2]:2000/' \
        http://198.18.5.2:22/ 'http://[2001:db8:18:5::2]:22/'

    trap - ERR
    echo "real-world lab $P up: ${ALL_NS[*]}"
}

# ---------------------------------------------------------------- main ---
[[ $# -eq 2 ]] || usage
[[ $(id -u) -eq 0 ]] || die "must run as root"
check_prefix "$2"
case $1 in
    up) lab_up "$2" ;;
    down) lab_down "$2" ;;
    *) usage ;;
esac
