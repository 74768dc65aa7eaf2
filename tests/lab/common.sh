# Shell helpers shared by lab.sh (the deterministic lab) and real.sh (the
# real-world profile); sourced by both, with PROG set by the sourcing script.

die() { echo "$PROG: $*" >&2; exit 1; }

ns_exists() { [[ -e "/run/netns/$1" ]]; }

nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

fail() { echo "$PROG: $*" >&2; false; }

# Wait (<= 5 s) until link $2 in namespace $1 is operationally UP. A fresh
# veth gets carrier at once, but the kernel's linkwatch applies it up to
# ~1 s later; until then the device keeps the noop qdisc (drops everything
# it would send) and IPv6 leaves its addresses tentative. Without this wait
# the router silently ignored the client's first neighbour solicitation.
wait_link_up() {
    local i
    for ((i = 0; i < 50; i++)); do
        [[ $(nsx "$1" cat "/sys/class/net/$2/operstate" 2>/dev/null) == up ]] && return 0
        sleep 0.1
    done
    fail "link $2 in $1 not up after 5 s"
}

# Wait (<= 5 s) until no IPv6 address in namespace $1 is tentative.
wait_v6_ready() {
    local i
    for ((i = 0; i < 50; i++)); do
        [[ -z $(nsx "$1" ip -6 addr show tentative) ]] && return 0
        sleep 0.1
    done
    fail "IPv6 addresses in $1 still tentative after 5 s"
}

ns_base_sysctls() {
    local ns=$1
    nsx "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
    nsx "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.default.disable_ipv6=0
    nsx "$ns" sysctl -qw net.ipv6.conf.all.accept_ra=0 net.ipv6.conf.default.accept_ra=0
    # New namespaces inherit IPv4 devconf from the host; pin what matters.
    nsx "$ns" sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
    nsx "$ns" ip link set lo up
}

# Ends every process in namespaces $@ (TERM, then KILL after 1 s) and
# deletes them (which destroys their veths). Never fails.
ns_delete() {
    local ns pids i
    for ns in "$@"; do
        ns_exists "$ns" || continue
        pids=$(ip netns pids "$ns" 2>/dev/null)
        if [[ -n $pids ]]; then
            # shellcheck disable=SC2086
            kill -TERM $pids 2>/dev/null
            for ((i = 0; i < 10; i++)); do
                pids=$(ip netns pids "$ns" 2>/dev/null)
                [[ -z $pids ]] && break
                sleep 0.1
            done
            # shellcheck disable=SC2086
            [[ -n $pids ]] && kill -KILL $pids 2>/dev/null
        fi
        ip netns del "$ns" 2>/dev/null
    done
}

# fetch_each NS TRIES SECONDS URL...: each URL fetched from namespace NS
# (curl, at most TRIES tries of SECONDS each, 0.2 s apart), or fail naming
# the first that could not be.
fetch_each() {
    local ns=$1 tries=$2 secs=$3 url i ok
    shift 3
    for url in "$@"; do
        ok=0
        for ((i = 0; i < tries; i++)); do
            if nsx "$ns" curl -gsf -o /dev/null --max-time "$secs" "$url"; then ok=1; break; fi
            sleep 0.2
        done
        ((ok)) || { fail "client cannot fetch $url"; return 1; }
    done
}
