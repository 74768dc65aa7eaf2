#!/usr/bin/env bash
# synscope network-namespace lab.
#
#   lab.sh up PREFIX     build client / router / target namespaces
#   lab.sh down PREFIX   tear them down (idempotent, never fails)
#
# Namespaces: ${PREFIX}-c (client), ${PREFIX}-r (router), ${PREFIX}-t (target).
# Veths are created directly inside the namespaces, so nothing is ever added
# to the root namespace and no packet can leave the lab.
# See tests/lab/README.md for the topology and the expected verdicts.
# Needs root, iproute2, iptables/ip6tables, python3.
set -Eeuo pipefail

LAB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
source "$LAB_DIR/common.sh"
STATE_ROOT=/run/synscope-lab
PROG=lab.sh


usage() {
    echo "usage: $PROG up|down PREFIX   (PREFIX: 1-10 chars of [A-Za-z0-9_], starting alnum)" >&2
    exit 2
}

check_prefix() {
    # Interface names are ${PREFIX}c, ${PREFIX}rc, ${PREFIX}rt, ${PREFIX}t:
    # at most 12 chars, below the 15-char IFNAMSIZ limit.
    [[ $1 =~ ^[A-Za-z0-9][A-Za-z0-9_]{0,9}$ ]] \
        || die "invalid PREFIX '$1' (1-10 chars of [A-Za-z0-9_], starting with a letter or digit)"
}

names() {
    P=$1
    NS_C="${P}-c"; NS_R="${P}-r"; NS_T="${P}-t"
    NS_R2="${P}-r2"; NS_T2="${P}-t2"   # the far target, two routers away
    IF_C="${P}c"      # client side of client<->router veth
    IF_RC="${P}rc"    # router side of client<->router veth
    IF_RT="${P}rt"    # router side of router<->target veth
    IF_T="${P}t"      # target side of router<->target veth
    IF_RF="${P}rf"    # router side of router<->router2 veth
    IF_R2A="${P}ra"   # router2 side of router<->router2 veth
    IF_R2B="${P}rb"   # router2 side of router2<->far target veth
    IF_T2="${P}u"     # far target side of router2<->far target veth
    STATE="$STATE_ROOT/$P"
    PIDFILE="$STATE/listen.pid"
    LOGFILE="$STATE/listen.log"
}


pick_python() {
    if [[ -n ${PYTHON:-} ]]; then echo "$PYTHON"
    elif [[ -x /usr/bin/python3 ]]; then echo /usr/bin/python3
    else command -v python3 || die "python3 not found"
    fi
}

# True while PID runs. A zombie counts as gone: the listener is reparented
# to PID 1 (lab.sh exits long before it), which may reap it only later.
alive() {
    local st
    st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ -n $st && $st != Z ]]
}

# ---------------------------------------------------------------- down ---
lab_down() {
    names "$1"
    set +e
    # 1. The listener, by the pid it recorded itself, after checking that the
    #    pid still belongs to a listen.py process.
    if [[ -r $PIDFILE ]]; then
        local pid
        pid=$(head -n1 "$PIDFILE" 2>/dev/null)
        if [[ $pid =~ ^[0-9]+$ ]] && grep -qa 'listen\.py' "/proc/$pid/cmdline" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null
            local i
            for ((i = 0; i < 30; i++)); do
                alive "$pid" || break
                sleep 0.1
            done
            alive "$pid" && kill -KILL "$pid" 2>/dev/null
        fi
    fi
    # 2. Any other process still running inside this lab's namespaces (they
    #    can only have been started for this lab), then the namespaces.
    #    Deleting a namespace destroys its veth ends.
    ns_delete "$NS_C" "$NS_R" "$NS_T" "$NS_R2" "$NS_T2"
    rm -rf -- "$STATE" 2>/dev/null
    rm -rf -- "/etc/netns/$NS_C" 2>/dev/null
    # The shared $STATE_ROOT stays: removing it when empty raced with
    # another lab's `mkdir -p` under it (parallel tests); /run is a tmpfs.
    set -e
    return 0
}

# ------------------------------------------------------------------ up ---
UP_PREFIX=
on_up_error() {
    local rc=$? line=$1 cmd=$2
    trap - ERR
    echo "$PROG: up $UP_PREFIX failed (exit $rc) at line $line: $cmd" >&2
    if [[ -s ${LOGFILE:-/nonexistent} ]]; then
        echo "$PROG: listener log:" >&2
        sed 's/^/    /' "$LOGFILE" >&2
    fi
    lab_down "$UP_PREFIX"
    exit 1
}





lab_up() {
    UP_PREFIX=$1
    names "$1"
    lab_down "$1"   # a previous lab with the same prefix is replaced
    trap 'on_up_error $LINENO "$BASH_COMMAND"' ERR

    local PY
    PY=$(pick_python)

    mkdir -p "$STATE"

    # Namespaces. DAD off before any interface exists, so links are created
    # with accept_dad=0 and addresses are usable at once.
    local ns
    for ns in "$NS_C" "$NS_R" "$NS_T"; do
        ip netns add "$ns"
        ns_base_sysctls "$ns"
    done

    # Deterministic ICMP errors. icmp_ratelimit=0 alone was not enough
    # (observed on 6.18): the per-destination ICMP limiter and ip_error()
    # (which answers for `unreachable`/`prohibit` routes) share the per-peer
    # token bucket, and with a 0 ms limit every ICMP error leaves that bucket
    # empty, so a route error sent < 1 s after any other ICMP error to the
    # same client was silently dropped. Taking destination-unreachable out of
    # the rate masks (v4 default 6168 = types 3,4,11,12 -> 6160; v6 default
    # 0-1,3-127 -> 0,3-127) skips the per-peer and the global ICMP limiters
    # for those messages. ip_error() keeps its own limiter (root-namespace
    # sysctls net.ipv4.route.error_cost/error_burst, 1 s / 5 s by default:
    # about 5 route errors per client in a burst, then 1/s; IPv4 only). We
    # leave host sysctls alone.
    for ns in "$NS_R" "$NS_T"; do
        nsx "$ns" sysctl -qw net.ipv4.icmp_ratelimit=0 net.ipv6.icmp.ratelimit=0
        nsx "$ns" sysctl -qw net.ipv4.icmp_ratemask=6160 net.ipv6.icmp.ratemask=0,3-127
    done
    nsx "$NS_R" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1

    # Links, created directly inside the namespaces.
    ip link add "$IF_C" netns "$NS_C" type veth peer name "$IF_RC" netns "$NS_R"
    ip link add "$IF_T" netns "$NS_T" type veth peer name "$IF_RT" netns "$NS_R"

    # Client.
    nsx "$NS_C" ip addr add 198.51.100.2/24 dev "$IF_C"
    nsx "$NS_C" ip addr add 2001:db8:1::2/64 dev "$IF_C" nodad
    nsx "$NS_C" ip link set "$IF_C" up
    nsx "$NS_C" ip route add default via 198.51.100.1 dev "$IF_C"
    nsx "$NS_C" ip -6 route add default via 2001:db8:1::1 dev "$IF_C"

    # Router.
    nsx "$NS_R" ip addr add 198.51.100.1/24 dev "$IF_RC"
    nsx "$NS_R" ip addr add 2001:db8:1::1/64 dev "$IF_RC" nodad
    nsx "$NS_R" ip addr add 203.0.113.1/24 dev "$IF_RT"
    nsx "$NS_R" ip addr add 2001:db8:2::1/64 dev "$IF_RT" nodad
    nsx "$NS_R" ip link set "$IF_RC" up
    nsx "$NS_R" ip link set "$IF_RT" up
    nsx "$NS_R" ip route add unreachable 192.0.2.0/25
    nsx "$NS_R" ip route add prohibit 192.0.2.128/25
    nsx "$NS_R" ip -6 route add unreachable 2001:db8:3::/64
    nsx "$NS_R" ip -6 route add prohibit 2001:db8:4::/64

    # Target.
    nsx "$NS_T" ip addr add 203.0.113.2/24 dev "$IF_T"
    nsx "$NS_T" ip addr add 2001:db8:2::2/64 dev "$IF_T" nodad
    nsx "$NS_T" ip link set "$IF_T" up
    nsx "$NS_T" ip route add default via 203.0.113.1 dev "$IF_T"
    nsx "$NS_T" ip -6 route add default via 2001:db8:2::1 dev "$IF_T"

    # Firewall. Target INPUT: 9000 silently dropped, 9001 port-unreachable.
    nsx "$NS_T" iptables  -w -A INPUT -p tcp --dport 9000 -j DROP
    nsx "$NS_T" iptables  -w -A INPUT -p tcp --dport 9001 -j REJECT --reject-with icmp-port-unreachable
    nsx "$NS_T" ip6tables -w -A INPUT -p tcp --dport 9000 -j DROP
    nsx "$NS_T" ip6tables -w -A INPUT -p tcp --dport 9001 -j REJECT --reject-with icmp6-port-unreachable
    # Router FORWARD, client -> target direction only.
    local ipt
    for ipt in iptables ip6tables; do
        local adm=icmp-admin-prohibited
        [[ $ipt == ip6tables ]] && adm=icmp6-adm-prohibited
        nsx "$NS_R" "$ipt" -w -A FORWARD -i "$IF_RC" -o "$IF_RT" -p tcp --dport 9002 -j REJECT --reject-with "$adm"
        nsx "$NS_R" "$ipt" -w -A FORWARD -i "$IF_RC" -o "$IF_RT" -p tcp --dport 9003 -j REJECT --reject-with tcp-reset
        nsx "$NS_R" "$ipt" -w -A FORWARD -i "$IF_RC" -o "$IF_RT" -p tcp --dport 9004 -j DROP
    done

    wait_link_up "$NS_C" "$IF_C"
    wait_link_up "$NS_R" "$IF_RC"
    wait_link_up "$NS_R" "$IF_RT"
    wait_link_up "$NS_T" "$IF_T"
    for ns in "$NS_C" "$NS_R" "$NS_T"; do
        wait_v6_ready "$ns"
    done

    # Listener (one process, IPv4+IPv6 via a dual-stack socket per port). It
    # writes its own pid file once every socket listens. setsid detaches it
    # from the caller's session/terminal; its output goes to a log file so it
    # never holds the caller's stdout/stderr open.
    ip netns exec "$NS_T" setsid "$PY" "$LAB_DIR/listen.py" --pidfile "$PIDFILE" 22 80 443 8080 \
        </dev/null >"$LOGFILE" 2>&1 &
    local lpid=$! i ok=0 listening
    # Poll <= 10 s (normally ready in ~0.1 s; a cold python start can be slow).
    for ((i = 0; i < 100; i++)); do
        if [[ -s $PIDFILE ]]; then
            listening=$(nsx "$NS_T" ss -Hltn 2>/dev/null | awk '{print $4}')
            if grep -Eq '[:.]22$' <<<"$listening" && grep -Eq '[:.]80$' <<<"$listening" \
                && grep -Eq '[:.]443$' <<<"$listening" && grep -Eq '[:.]8080$' <<<"$listening"; then
                ok=1; break
            fi
        elif ! alive "$lpid"; then
            fail "listener (tests/lab/listen.py) exited during startup"
        fi
        sleep 0.1
    done
    ((ok)) || fail "listener in $NS_T not listening on 22,80,443,8080 after 10 s"

    far_up "$PY"

    # End-to-end check through the router, both families (bounded: 3 tries
    # of <= 2 s each). This also resolves client<->router neighbours.
    fetch_each "$NS_C" 3 2 'http://203.0.113.2:80/' 'http://[2001:db8:2::2]:80/' \
        'http://198.18.1.2:80/' 'http://[2001:db8:6::2]:80/'

    # The lab's resolver: dnsmasq on the router, answering only for the
    # lab's own names (no upstream: no query ever leaves the lab), NXDOMAIN
    # for any other *.lab name. The client uses it through
    # /etc/netns/CLIENT-NS/resolv.conf, which `ip netns exec` mounts over
    # /etc/resolv.conf. Optional: without dnsmasq the rest of the lab works.
    if command -v dnsmasq >/dev/null 2>&1; then
        nsx "$NS_R" dnsmasq --conf-file=/dev/null --no-resolv --no-hosts --no-poll \
            --bind-interfaces --listen-address=198.51.100.1 --listen-address=2001:db8:1::1 \
            --local=/lab/ \
            --host-record=target.lab,203.0.113.2,2001:db8:2::2 \
            --host-record=v4only.lab,203.0.113.2 \
            --host-record=v6only.lab,2001:db8:2::2 \
            --host-record=absent.lab,203.0.113.99 \
            --host-record=far.lab,198.18.1.2,2001:db8:6::2 \
            --pid-file="$STATE/dnsmasq.pid" --log-facility="$STATE/dnsmasq.log"
        mkdir -p "/etc/netns/$NS_C"
        printf 'nameserver 198.51.100.1\noptions timeout:1 attempts:2\n' >"/etc/netns/$NS_C/resolv.conf"
    fi

    trap - ERR
    echo "lab $P up: $NS_C $NS_R $NS_T"
}

# The far target: client -> router (hop 1) -> router2 (hop 2) -> far target
# (hop 3), so a drop can be located by hop: the first router drops port
# 9004 on its way there (FORWARD), the far target drops 9000 itself (INPUT).
far_up() {
    local PY=$1 ns
    for ns in "$NS_R2" "$NS_T2"; do
        ip netns add "$ns"
        ns_base_sysctls "$ns"
        nsx "$ns" sysctl -qw net.ipv4.icmp_ratelimit=0 net.ipv6.icmp.ratelimit=0
        nsx "$ns" sysctl -qw net.ipv4.icmp_ratemask=6160 net.ipv6.icmp.ratemask=0,3-127
    done
    nsx "$NS_R2" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
    ip link add "$IF_RF" netns "$NS_R" type veth peer name "$IF_R2A" netns "$NS_R2"
    ip link add "$IF_T2" netns "$NS_T2" type veth peer name "$IF_R2B" netns "$NS_R2"
    nsx "$NS_R" ip addr add 198.18.0.1/24 dev "$IF_RF"
    nsx "$NS_R" ip addr add 2001:db8:5::1/64 dev "$IF_RF" nodad
    nsx "$NS_R" ip link set "$IF_RF" up
    nsx "$NS_R" ip route add 198.18.1.0/24 via 198.18.0.2
    nsx "$NS_R" ip -6 route add 2001:db8:6::/64 via 2001:db8:5::2
    nsx "$NS_R2" ip addr add 198.18.0.2/24 dev "$IF_R2A"
    nsx "$NS_R2" ip addr add 2001:db8:5::2/64 dev "$IF_R2A" nodad
    nsx "$NS_R2" ip addr add 198.18.1.1/24 dev "$IF_R2B"
    nsx "$NS_R2" ip addr add 2001:db8:6::1/64 dev "$IF_R2B" nodad
    nsx "$NS_R2" ip link set "$IF_R2A" up
    nsx "$NS_R2" ip link set "$IF_R2B" up
    nsx "$NS_R2" ip route add default via 198.18.0.1
    nsx "$NS_R2" ip -6 route add default via 2001:db8:5::1
    nsx "$NS_T2" ip addr add 198.18.1.2/24 dev "$IF_T2"
    nsx "$NS_T2" ip addr add 2001:db8:6::2/64 dev "$IF_T2" nodad
    nsx "$NS_T2" ip link set "$IF_T2" up
    nsx "$NS_T2" ip route add default via 198.18.1.1
    nsx "$NS_T2" ip -6 route add default via 2001:db8:6::1
    local ipt
    for ipt in iptables ip6tables; do
        nsx "$NS_R" "$ipt" -w -A FORWARD -i "$IF_RC" -o "$IF_RF" -p tcp --dport 9004 -j DROP
        nsx "$NS_T2" "$ipt" -w -A INPUT -p tcp --dport 9000 -j DROP
    done
    wait_link_up "$NS_R" "$IF_RF"
    wait_link_up "$NS_R2" "$IF_R2A"
    wait_link_up "$NS_R2" "$IF_R2B"
    wait_link_up "$NS_T2" "$IF_T2"
    for ns in "$NS_R2" "$NS_T2"; do
        wait_v6_ready "$ns"
    done
    ip netns exec "$NS_T2" setsid "$PY" "$LAB_DIR/listen.py" --pidfile "$STATE/listen2.pid" 22 80 \
        </dev/null >"$STATE/listen2.log" 2>&1 &
    local i ok=0
    for ((i = 0; i < 100; i++)); do
        if [[ -s $STATE/listen2.pid ]]; then ok=1; break; fi
        sleep 0.1
    done
    ((ok)) || fail "far listener in $NS_T2 did not start within 10 s"
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
