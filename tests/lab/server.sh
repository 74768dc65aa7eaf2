#!/usr/bin/env bash
# synscope's server lab: what happens after the handshake.
#
#   server.sh up PREFIX     build it (replaces one of the same PREFIX)
#   server.sh down PREFIX   tear it down (idempotent, never fails)
#
# Namespaces: PREFIX-sc (client), PREFIX-sr (router), PREFIX-ss (server),
# PREFIX-sp (a host behind a SYN proxy). Veths are made inside the
# namespaces: nothing is added to the root namespace, no packet leaves.
#
#   client 198.51.100.2, 2001:db8:1::2 -- router -- server 198.18.2.2, 2001:db8:7::2
#                                             \---- proxied 198.18.3.2, 2001:db8:8::2
#
# Server (tests/lab/behave.py, and listen.py on 22 and 80):
#   7001 accepts, then resets (SO_LINGER 0)     7002 accepts, then closes
#   7003 accepts, sends a banner, keeps it open 7004 accepts, waits silently
#   7005 backlog 0, never accepts, its queue full: new SYNs are dropped
#   9000 DROP (INPUT): a firewall's drop at the host, to tell from 7005
# Proxied host: iptables SYNPROXY answers the SYN of every TCP port; only
#   22 and 80 are served (listen.py), the rest reset after the handshake.
# Needs root, iproute2, iptables/ip6tables, python3.
set -Eeuo pipefail

LAB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
source "$LAB_DIR/common.sh"
PROG=server.sh
STATE_ROOT=/run/synscope-lab

usage() {
    echo "usage: $PROG up|down PREFIX   (PREFIX: 1-10 chars of [A-Za-z0-9_], starting alnum)" >&2
    exit 2
}

names() {
    P=$1
    NS_C="${P}-sc"; NS_R="${P}-sr"; NS_S="${P}-ss"; NS_P="${P}-sp"
    IF_C="${P}sc"; IF_RC="${P}src"
    IF_RS="${P}srs"; IF_S="${P}ss"
    IF_RP="${P}srp"; IF_P="${P}sp"
    STATE="$STATE_ROOT/$P-server"
}

down() {
    names "$1"
    set +e
    ns_delete "$NS_C" "$NS_R" "$NS_S" "$NS_P"
    rm -rf -- "$STATE" 2>/dev/null
    # The shared $STATE_ROOT stays: removing it when empty raced with
    # another lab's `mkdir -p` under it (parallel tests); /run is a tmpfs.
    set -e
    return 0
}

UP_PREFIX=
on_up_error() {
    local rc=$? line=$1 cmd=$2
    trap - ERR
    echo "$PROG: up $UP_PREFIX failed (exit $rc) at line $line: $cmd" >&2
    for f in "$STATE"/*.log; do
        [[ -s $f ]] && { echo "$PROG: $f:" >&2; sed 's/^/    /' "$f" >&2; }
    done
    down "$UP_PREFIX"
    exit 1
}

# start NS PIDFILE LOG CMD...: runs CMD detached in NS, waits (<= 10 s)
# for its pid file.
start() {
    local ns=$1 pidfile=$2 log=$3 i
    shift 3
    ip netns exec "$ns" setsid "$@" </dev/null >"$log" 2>&1 &
    for ((i = 0; i < 100; i++)); do
        [[ -s $pidfile ]] && return 0
        sleep 0.1
    done
    fail "$* in $ns did not start within 10 s"
}

up() {
    UP_PREFIX=$1
    names "$1"
    down "$1"
    trap 'on_up_error $LINENO "$BASH_COMMAND"' ERR
    local PY=/usr/bin/python3 ns ipt
    [[ -x $PY ]] || PY=$(command -v python3)
    mkdir -p "$STATE"
    for ns in "$NS_C" "$NS_R" "$NS_S" "$NS_P"; do
        ip netns add "$ns"
        ns_base_sysctls "$ns"
    done
    nsx "$NS_R" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
    ip link add "$IF_C" netns "$NS_C" type veth peer name "$IF_RC" netns "$NS_R"
    ip link add "$IF_S" netns "$NS_S" type veth peer name "$IF_RS" netns "$NS_R"
    ip link add "$IF_P" netns "$NS_P" type veth peer name "$IF_RP" netns "$NS_R"

    nsx "$NS_C" ip addr add 198.51.100.2/24 dev "$IF_C"
    nsx "$NS_C" ip addr add 2001:db8:1::2/64 dev "$IF_C" nodad
    nsx "$NS_C" ip link set "$IF_C" up
    nsx "$NS_C" ip route add default via 198.51.100.1 dev "$IF_C"
    nsx "$NS_C" ip -6 route add default via 2001:db8:1::1 dev "$IF_C"

    nsx "$NS_R" ip addr add 198.51.100.1/24 dev "$IF_RC"
    nsx "$NS_R" ip addr add 2001:db8:1::1/64 dev "$IF_RC" nodad
    nsx "$NS_R" ip addr add 198.18.2.1/24 dev "$IF_RS"
    nsx "$NS_R" ip addr add 2001:db8:7::1/64 dev "$IF_RS" nodad
    nsx "$NS_R" ip addr add 198.18.3.1/24 dev "$IF_RP"
    nsx "$NS_R" ip addr add 2001:db8:8::1/64 dev "$IF_RP" nodad
    for ns in "$IF_RC" "$IF_RS" "$IF_RP"; do nsx "$NS_R" ip link set "$ns" up; done

    nsx "$NS_S" ip addr add 198.18.2.2/24 dev "$IF_S"
    nsx "$NS_S" ip addr add 2001:db8:7::2/64 dev "$IF_S" nodad
    nsx "$NS_S" ip link set "$IF_S" up
    nsx "$NS_S" ip route add default via 198.18.2.1 dev "$IF_S"
    nsx "$NS_S" ip -6 route add default via 2001:db8:7::1 dev "$IF_S"
    nsx "$NS_S" iptables -w -A INPUT -p tcp --dport 9000 -j DROP
    nsx "$NS_S" ip6tables -w -A INPUT -p tcp --dport 9000 -j DROP

    nsx "$NS_P" ip addr add 198.18.3.2/24 dev "$IF_P"
    nsx "$NS_P" ip addr add 2001:db8:8::2/64 dev "$IF_P" nodad
    nsx "$NS_P" ip link set "$IF_P" up
    nsx "$NS_P" ip route add default via 198.18.3.1 dev "$IF_P"
    nsx "$NS_P" ip -6 route add default via 2001:db8:8::1 dev "$IF_P"
    # SYNPROXY for every TCP port arriving on the link (the kernel's own
    # recipe: untracked SYNs answered with a cookie SYN-ACK; the connection
    # is opened to the local stack only once the client's ACK comes).
    nsx "$NS_P" sysctl -qw net.netfilter.nf_conntrack_tcp_loose=0 2>/dev/null \
        || { nsx "$NS_P" iptables -w -t raw -S >/dev/null; nsx "$NS_P" sysctl -qw net.netfilter.nf_conntrack_tcp_loose=0; }
    nsx "$NS_P" sysctl -qw net.ipv4.tcp_syncookies=1 net.ipv4.tcp_timestamps=1
    for ipt in iptables ip6tables; do
        nsx "$NS_P" "$ipt" -w -t raw -A PREROUTING -i "$IF_P" -p tcp --syn -j CT --notrack
        nsx "$NS_P" "$ipt" -w -A INPUT -i "$IF_P" -p tcp -m conntrack --ctstate INVALID,UNTRACKED \
            -j SYNPROXY --sack-perm --timestamp --wscale 7 --mss 1460
        nsx "$NS_P" "$ipt" -w -A INPUT -i "$IF_P" -p tcp -m conntrack --ctstate INVALID -j DROP
    done

    wait_link_up "$NS_C" "$IF_C"
    for ns in "$IF_RC" "$IF_RS" "$IF_RP"; do wait_link_up "$NS_R" "$ns"; done
    wait_link_up "$NS_S" "$IF_S"
    wait_link_up "$NS_P" "$IF_P"
    for ns in "$NS_C" "$NS_R" "$NS_S" "$NS_P"; do wait_v6_ready "$ns"; done

    start "$NS_S" "$STATE/listen.pid" "$STATE/listen.log" \
        "$PY" "$LAB_DIR/listen.py" --pidfile "$STATE/listen.pid" 22 80
    start "$NS_S" "$STATE/behave.pid" "$STATE/behave.log" \
        "$PY" "$LAB_DIR/behave.py" --pidfile "$STATE/behave.pid" \
        7001:reset 7002:close 7003:banner 7004:silent 7005:backlog
    start "$NS_P" "$STATE/proxied.pid" "$STATE/proxied.log" \
        "$PY" "$LAB_DIR/listen.py" --pidfile "$STATE/proxied.pid" 22 80

    # End to end, both families, through the router (and the SYN proxy).
    fetch_each "$NS_C" 3 2 'http://198.18.2.2:80/' 'http://[2001:db8:7::2]:80/' \
        'http://198.18.3.2:80/' 'http://[2001:db8:8::2]:80/'
    trap - ERR
    echo "server lab $P up: client $NS_C; server 198.18.2.2 / 2001:db8:7::2; SYN proxy 198.18.3.2 / 2001:db8:8::2"
}

[[ $# -eq 2 ]] || usage
[[ $(id -u) -eq 0 ]] || die "must run as root"
[[ $2 =~ ^[A-Za-z0-9][A-Za-z0-9_]{0,9}$ ]] || die "invalid PREFIX '$2'"
case $1 in
    up) up "$2" ;;
    down) down "$2" ;;
    *) usage ;;
esac
