#!/bin/sh
# redis-cluster-bootstrap.sh: form, and on every later run repair, the enterprise tier's Redis Cluster.
#
# Runs as the `{release}-redis-cluster-init` Job (an ArgoCD PostSync hook, so it runs again on every sync)
# and, in repair mode, as the `{release}-redis-cluster-repair` CronJob every minute (Argo CD does not sync
# a healthy, unchanged application, so without it a restarted pod would stay out of the cluster until
# the next sync). Both run inside the redis:7.4.2-alpine image. POSIX sh only (busybox ash, dash): redis-cli, busybox tools and
# musl-utils' getent. It writes no files, so it works on a read-only root filesystem.
#
# Redis holds no durable data here (no RDB, no AOF; it is a cache and stream buffer, durable state is in
# TimescaleDB), and nodes.conf lives on an emptyDir: a rescheduled pod comes back as an EMPTY node that
# knows only itself, with a new node id and usually a new IP. Losing the keys of lost slots is acceptable.
#
# Environment:
#   REDIS_NODES                space-separated host:port list, every pod of the StatefulSet (authoritative)
#   REDIS_CLUSTER_REPLICAS     replicas per master (default 1); masters = nodes / (1 + replicas)
#   REDISCLI_AUTH              optional password (redis-cli reads it from the environment itself)
#   BOOTSTRAP_TIMEOUT_SECONDS  budget for each wait phase and each redis-cli --cluster call (default 300)
#   REDIS_CLUSTER_MODE         bootstrap (default: form, or repair) or repair (repair an existing cluster
#                              only: never create, never reset a node; the sync hook owns those)
#   BOOTSTRAP_LOCK_SECONDS     expiry of the repair lock (default: BOOTSTRAP_TIMEOUT_SECONDS); set it to
#                              the Job's activeDeadlineSeconds so a killed run's lock always expires
#
# What it does (idempotent; safe to run while the cluster serves traffic):
#   1. Resolve every host (getent) and wait until every node answers PING.
#   2. Already healthy -> "cluster already formed", change nothing, exit 0. Healthy means: every node
#      reports cluster_state:ok, 16384 slots assigned and cluster_known_nodes == N, knows every other
#      node, none failed and all connected; all of them agree on masters, replicas and slots; and every
#      slot-owning master has REDIS_CLUSTER_REPLICAS replicas (fewer only when the masters that own
#      slots are too many for the N nodes to give each of them that many). A master that owns slots and
#      has no replica loses its slots' keys, and the cluster its coverage, with its next loss; Redis'
#      own replica migration does not move one to a master whose replica was re-pointed, not failed.
#   3. Every node empty (knows only itself, no slots) -> redis-cli --cluster create, wait for ok.
#   In repair mode, steps 3 and the resets of step 4 are left to the sync hook: exit 0 saying so.
#   4. Otherwise take the repair lock (a key set with SET NX EX through the cluster, on the first of
#      three slots, one per third of the slot space, that is served; released on exit only by its
#      owner). Bootstrap waits for a lock held by someone else; repair mode exits 0 ("another run is
#      repairing"). Re-read the cluster, then repair it (the one that knows the most of our nodes):
#      - nodes clustered on their own (an interrupted create, a split) are reset; if no two of our
#        nodes form a cluster at all, every leftover is reset and the cluster is created afresh;
#      - a replica whose master is gone waits for Redis' own failover (2 x cluster-node-timeout + 5 s;
#        no wait if the master is flagged noaddr, which Redis never fails over), then gets
#        CLUSTER FAILOVER FORCE, and TAKEOVER if even that does not happen (most masters lost);
#      - node ids that are none of our live nodes and are unreachable (fail, fail?, noaddr, disconnected)
#        are forgotten on every member (CLUSTER FORGET);
#      - slots nobody serves any more (a master and all of its replicas were lost; their keys are gone,
#        which is acceptable for a cache) go to fresh nodes joined as new masters (CLUSTER MEET +
#        ADDSLOTSRANGE, keeping the wanted number of masters), or, with no fresh node to spare, to the
#        existing masters through `redis-cli --cluster fix` (its prompts answered "yes");
#      - the remaining fresh nodes join as replicas: `redis-cli --cluster add-node --cluster-slave`,
#        which picks the master with the fewest replicas; member masters without slots or replicas
#        (an interrupted add-node) become replicas the same way (CLUSTER REPLICATE);
#      - then wait for the healthy state of step 2 and require `redis-cli --cluster check` to pass;
#        meanwhile, a slot-owning master with fewer replicas than wanted gets a surplus replica (of a
#        master with more than wanted, or of a master without slots): CLUSTER REPLICATE on that replica,
#        one move at a time, each only once every node agrees on the cluster (not during a formation or
#        a failover) and only if the master it leaves keeps the wanted number of replicas online.
#   Scaling up only adds replicas; moving slots onto new masters is a deliberate
#   `redis-cli --cluster rebalance --cluster-use-empty-masters`, never done here.
#
# Exit 0 on success; otherwise non-zero with one `redis-cluster-bootstrap: ...` line on stderr.

set -u
set -f # no globbing: REDIS_NODES and the lists below are split on blanks only

PROG=redis-cluster-bootstrap
TOTAL_SLOTS=16384
POLL_SECONDS=2
ESC=$(printf '\033') # redis-cli --cluster colours its output even when it is not a terminal

log() { printf '%s: %s\n' "$PROG" "$*"; }
die() {
    printf '%s: %s\n' "$PROG" "$(printf '%s' "$*" | tr '\r\n\t' '   ' | tr -s ' ')" >&2
    exit 1
}
now() { date +%s; }
is_uint() { case $1 in '' | *[!0-9]*) return 1 ;; *) return 0 ;; esac; }
one_line() { printf '%s' "$1" | tr '\r\n' '  ' | tr -s ' ' | sed 's/^ //; s/ $//'; }
getv() { eval "printf '%s' \"\${$1}\""; }

REPLICAS=${REDIS_CLUSTER_REPLICAS:-1}
TIMEOUT=${BOOTSTRAP_TIMEOUT_SECONDS:-300}
MODE=${REDIS_CLUSTER_MODE:-bootstrap}
is_uint "$REPLICAS" || die "REDIS_CLUSTER_REPLICAS must be a non-negative integer, got '$REPLICAS'"
is_uint "$TIMEOUT" && [ "$TIMEOUT" -gt 0 ] || die "BOOTSTRAP_TIMEOUT_SECONDS must be a positive integer, got '$TIMEOUT'"
LOCK_SECONDS=${BOOTSTRAP_LOCK_SECONDS:-$TIMEOUT}
is_uint "$LOCK_SECONDS" && [ "$LOCK_SECONDS" -gt 0 ] ||
    die "BOOTSTRAP_LOCK_SECONDS must be a positive integer, got '$LOCK_SECONDS'"
case $MODE in bootstrap | repair) ;; *) die "REDIS_CLUSTER_MODE must be bootstrap or repair, got '$MODE'" ;; esac
[ -n "$(printf '%s' "${REDIS_NODES:-}" | tr -d ' \t\n')" ] || die "REDIS_NODES is empty"
command -v redis-cli >/dev/null 2>&1 || die "redis-cli not found on PATH"

# Bound every redis-cli call: plain commands by 10 s, --cluster operations (whose "waiting for the
# cluster to join" loop never gives up by itself) by the timeout budget.
if command -v timeout >/dev/null 2>&1; then
    CMD_TMO="timeout 10"
    OP_TMO="timeout $TIMEOUT"
else
    CMD_TMO=""
    OP_TMO=""
fi

# rcli IP PORT ARGS...: one command, reply (and any error) on stdout without CRs.
rcli() {
    rc_h=$1
    rc_p=$2
    shift 2
    $CMD_TMO redis-cli -h "$rc_h" -p "$rc_p" "$@" 2>&1 | tr -d '\r'
}

# cluster_op LABEL ARGS...: run `redis-cli ARGS`, log its headline lines; on failure the tail of its output.
# Answers "yes" to its prompts: `--cluster fix` asks before covering slots even with --cluster-yes.
cluster_op() {
    co_label=$1
    shift
    log "$co_label"
    co_out=$(yes yes | $OP_TMO redis-cli "$@" 2>&1)
    co_rc=$?
    co_out=$(printf '%s\n' "$co_out" | tr -d '\r' | sed "s/${ESC}\[[0-9;]*m//g")
    if [ "$co_rc" -eq 0 ]; then
        printf '%s\n' "$co_out" | grep -E '^(>>>|\[OK\]|\[WARNING\]|\[ERR\]|Automatically selected)' | grep -v '^>>> Covering slot' |
            sed 's/^/    /'
    else
        printf '%s\n' "$co_out" | tail -n 25 | sed 's/^/    | /'
    fi
    return "$co_rc"
}

# ---------------------------------------------------------------------------------------------------
# 1. Parse, resolve, wait for PONG
# ---------------------------------------------------------------------------------------------------

N=0
for entry in $REDIS_NODES; do
    N=$((N + 1))
    host=${entry%:*}
    port=${entry##*:}
    [ "$host" != "$entry" ] && [ -n "$host" ] && is_uint "$port" && [ "$port" -gt 0 ] && [ "$port" -lt 65536 ] ||
        die "REDIS_NODES entry '$entry' is not host:port"
    eval "HOST_$N=\$host; PORT_$N=\$port; IP_$N=''"
done
MASTERS_WANTED=$((N / (REPLICAS + 1)))
[ "$MASTERS_WANTED" -ge 3 ] ||
    die "$N node(s) with $REPLICAS replica(s) per master give $MASTERS_WANTED master(s); Redis Cluster needs at least 3"

is_ipv4() {
    case $1 in '' | *[!0-9.]*) return 1 ;; esac
    printf '%s\n' "$1" | awk -F. 'NF != 4 { exit 1 } { for (i = 1; i <= 4; i++) if ($i == "" || $i > 255) exit 1 }'
}

# resolve HOST: its IPv4 address (or, failing that, the first address getent returns); empty if none.
# IPv4 first: that is what the pods announce (cluster-announce-ip = status.podIP) on single-stack and
# IPv4-primary clusters, while `getent hosts` may list an AAAA record first.
resolve() {
    if is_ipv4 "$1"; then
        printf '%s\n' "$1"
        return
    fi
    { getent ahostsv4 "$1" 2>/dev/null || getent hosts "$1" 2>/dev/null; } | awk '
        $1 ~ /^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$/ { print $1; found = 1; exit }
        NR == 1 { first = $1 }
        END { if (!found && first != "") print first }'
}

i=0
while [ "$i" -lt "$N" ]; do
    i=$((i + 1))
    is_ipv4 "$(getv "HOST_$i")" && continue
    command -v getent >/dev/null 2>&1 || die "getent not found: cannot resolve $(getv "HOST_$i") (needs musl-utils, or IPs in REDIS_NODES)"
    break
done

log "waiting for $N node(s) to resolve and answer PING (timeout ${TIMEOUT}s)"
deadline=$(($(now) + TIMEOUT))
while :; do
    waiting=""
    more=0
    i=0
    while [ "$i" -lt "$N" ]; do
        i=$((i + 1))
        host=$(getv "HOST_$i")
        port=$(getv "PORT_$i")
        ip=$(resolve "$host")
        if [ -z "$ip" ]; then
            eval "IP_$i=''"
            [ -n "$waiting" ] && more=$((more + 1)) || waiting="$host:$port: cannot resolve $host"
            continue
        fi
        eval "IP_$i=\$ip"
        reply=$(rcli "$ip" "$port" PING)
        if [ "$reply" != "PONG" ]; then
            [ -n "$waiting" ] && more=$((more + 1)) ||
                waiting="$host:$port ($ip): no PONG ($(one_line "${reply:-no reply}"))"
        fi
    done
    [ -z "$waiting" ] && break
    [ "$more" -gt 0 ] && waiting="$waiting; and $more more node(s)"
    [ "$(now)" -ge "$deadline" ] && die "timed out after ${TIMEOUT}s waiting for node $waiting"
    sleep "$POLL_SECONDS"
done

ADDRS=""
i=0
while [ "$i" -lt "$N" ]; do
    i=$((i + 1))
    a="$(getv "IP_$i"):$(getv "PORT_$i")"
    case " $ADDRS " in *" $a "*) die "two REDIS_NODES entries resolve to the same address $a" ;; esac
    ADDRS="$ADDRS${ADDRS:+ }$a"
done
log "all $N node(s) answer: $ADDRS"

# ---------------------------------------------------------------------------------------------------
# Cluster state helpers
# ---------------------------------------------------------------------------------------------------

# snapshot: per node i: ID_i, STATE_i, ASSIGNED_i, KNOWN_i, NODES_i (CLUSTER NODES), FRESH_i; LIVE_IDS.
# shellcheck disable=SC2015,SC2034 # "a && b || die" is meant; the s_* values are stored through eval
snapshot() {
    LIVE_IDS=""
    s_i=0
    while [ "$s_i" -lt "$N" ]; do
        s_i=$((s_i + 1))
        s_ip=$(getv "IP_$s_i")
        s_port=$(getv "PORT_$s_i")
        s_id=$(rcli "$s_ip" "$s_port" CLUSTER MYID)
        case $s_id in
            *[!0-9a-f]* | '') die "node $(getv "HOST_$s_i"):$s_port ($s_ip): CLUSTER MYID failed: $(one_line "$s_id")" ;;
        esac
        case " $LIVE_IDS " in *" $s_id "*) die "node $(getv "HOST_$s_i"):$s_port has the same node id as another node ($s_id)" ;; esac
        LIVE_IDS="$LIVE_IDS${LIVE_IDS:+ }$s_id"
        s_info=$(rcli "$s_ip" "$s_port" CLUSTER INFO)
        s_state=$(printf '%s\n' "$s_info" | sed -n 's/^cluster_state://p')
        s_assigned=$(printf '%s\n' "$s_info" | sed -n 's/^cluster_slots_assigned://p')
        s_known=$(printf '%s\n' "$s_info" | sed -n 's/^cluster_known_nodes://p')
        is_uint "$s_assigned" && is_uint "$s_known" ||
            die "node $(getv "HOST_$s_i"):$s_port ($s_ip): CLUSTER INFO failed: $(one_line "$s_info")"
        s_nodes=$(rcli "$s_ip" "$s_port" CLUSTER NODES)
        s_fresh=0
        [ "$s_known" -eq 1 ] && [ "$s_assigned" -eq 0 ] && s_fresh=1
        eval "ID_$s_i=\$s_id; STATE_$s_i=\$s_state; ASSIGNED_$s_i=\$s_assigned; KNOWN_$s_i=\$s_known"
        eval "NODES_$s_i=\$s_nodes; FRESH_$s_i=\$s_fresh"
    done
}

# node_formed I: 0 if node I sees the complete cluster of exactly our N nodes (and every node id in
# NEW_REPLICAS as a replica): state ok, every slot assigned, none failed, all connected.
NEW_REPLICAS=""
node_formed() {
    [ "$(getv "STATE_$1")" = ok ] && [ "$(getv "ASSIGNED_$1")" -eq "$TOTAL_SLOTS" ] &&
        [ "$(getv "KNOWN_$1")" -eq "$N" ] || return 1
    getv "NODES_$1" | awk -v live="$LIVE_IDS" -v replicas="$NEW_REPLICAS" '
        BEGIN {
            n = split(live, a, " "); for (k = 1; k <= n; k++) want[a[k]] = 1
            n = split(replicas, a, " "); for (k = 1; k <= n; k++) rep[a[k]] = 1
        }
        NF < 8 { next }
        { seen[$1] = 1 }
        $3 ~ /fail|noaddr|handshake/ || $8 != "connected" { bad = 1 }
        ($1 in rep) && $3 !~ /slave/ { bad = 1 }
        $3 ~ /master/ && NF == 8 { empty[$1] = 1 }
        $4 != "-" { followed[$4] = 1 }
        END {
            for (k in want) if (!(k in seen)) bad = 1
            for (k in empty) if (!(k in followed)) bad = 1
            exit bad
        }'
}

# replica_plan I: in node I's view, the replicas each slot-owning master lacks, and the move that fixes
# one. Wanted per slot-owning master: REPLICAS, or fewer when the masters that own slots are so many that
# the N nodes cannot give each of them REPLICAS (then as many as all of them can have). Prints nothing
# when every slot-owning master has its replicas; otherwise one line
#   "short <master> <has> <wanted> [<replica> <from-master> <from-has>]"
# naming the master that lacks the most (then the lowest id) and, if there is one, a surplus replica to
# move to it: one of a slot-less master, else one of the master with the most replicas above the wanted
# number (then the lowest ids). Moving it never leaves a slot-owning master below the wanted number.
replica_plan() {
    getv "NODES_$1" | awk -v n="$N" -v r="$REPLICAS" '
        NF < 8 || $3 ~ /fail|noaddr|handshake/ { next }
        $3 ~ /master/ {
            for (f = 9; f <= NF; f++) if ($f !~ /^\[/) { owner[$1] = 1; break }
            if (!($1 in owner)) slotless[$1] = 1
            next
        }
        $3 ~ /slave/ && $4 != "-" { count[$4]++; of[$1] = $4 }
        END {
            m = 0; for (k in owner) m++
            if (m == 0) exit
            w = r; if (m * (1 + r) > n) w = int((n - m) / m)
            short = ""
            for (k in owner) {
                c = count[k] + 0
                if (c < w && (short == "" || c < sc || (c == sc && k < short))) { short = k; sc = c }
            }
            if (short == "") exit
            rep = ""; from = ""; fc = -1
            for (x in of) {
                mm = of[x]
                if (mm in slotless) c = 1000000
                else if ((mm in owner) && count[mm] > w) c = count[mm]
                else continue
                if (c > fc || (c == fc && (mm < from || (mm == from && x < rep)))) { rep = x; from = mm; fc = c }
            }
            line = "short " short " " sc " " w
            if (rep != "") line = line " " rep " " from " " ((from in slotless) ? 0 : fc)
            print line
        }'
}

# unhealthy_summary: why the cluster is not healthy, from the first node that says so.
unhealthy_summary() {
    u_i=0
    while [ "$u_i" -lt "$N" ]; do
        u_i=$((u_i + 1))
        node_formed "$u_i" && continue
        printf '%s' "node $(getv "HOST_$u_i"):$(getv "PORT_$u_i") reports cluster_state=$(getv "STATE_$u_i")"
        printf '%s' " slots_assigned=$(getv "ASSIGNED_$u_i") known_nodes=$(getv "KNOWN_$u_i")"
        printf '%s' " (want ok, $TOTAL_SLOTS, $N, all of them connected, none failed)"
        return
    done
    u_i=0
    while [ "$u_i" -lt "$N" ]; do
        u_i=$((u_i + 1))
        # shellcheck disable=SC2086 # the plan is a list of words
        set -- $(replica_plan "$u_i")
        [ "$#" -ge 4 ] || continue
        printf '%s' "master $2 has $3 replica(s), $4 wanted per slot-owning master (in the view of"
        printf '%s' " $(getv "HOST_$u_i"):$(getv "PORT_$u_i"))"
        [ "$#" -ge 7 ] || printf '%s' "; no surplus replica to move to it"
        return
    done
    printf '%s' "the nodes do not agree yet on masters, replicas and slots"
}

# topology I: node I's view of who is master or replica of whom, and which slots each master serves.
topology() {
    getv "NODES_$1" | awk 'NF >= 8 {
        s = ""
        for (f = 9; f <= NF; f++) if ($f !~ /^\[/) s = s " " $f
        print $1, ($3 ~ /master/) ? "master" : "slave", $4 s
    }' | sort
}

# all_formed: every node sees the complete cluster and all of them agree on the topology.
all_formed() {
    h_i=0
    while [ "$h_i" -lt "$N" ]; do
        h_i=$((h_i + 1))
        node_formed "$h_i" || return 1
        h_topology=$(topology "$h_i")
        [ "$h_i" -eq 1 ] && h_first=$h_topology
        [ "$h_topology" = "$h_first" ] || return 1
    done
}

# all_healthy: the definition of healthy. Every node: cluster_state ok, all 16384 slots assigned, our N
# nodes known, connected and none failed; all of them agree on masters, replicas and slots; and every
# slot-owning master has REPLICAS replicas (see replica_plan). (They agree: node 1's view is everyone's.)
all_healthy() {
    all_formed && [ -z "$(replica_plan 1)" ]
}

# members_in_view I: how many of our live node ids node I knows (whatever their flags).
members_in_view() {
    getv "NODES_$1" | awk -v live="$LIVE_IDS" '
        BEGIN { n = split(live, a, " "); for (k = 1; k <= n; k++) want[a[k]] = 1 }
        ($1 in want) && $3 !~ /handshake/ { c++ }
        END { print c + 0 }'
}

# pick_anchor: ANCHOR = the clustered node whose view has the most live members, then the most slots.
pick_anchor() {
    ANCHOR=0
    ANCHOR_MEMBERS=0
    p_best=-1
    p_i=0
    while [ "$p_i" -lt "$N" ]; do
        p_i=$((p_i + 1))
        [ "$(getv "FRESH_$p_i")" -eq 1 ] && continue
        p_members=$(members_in_view "$p_i")
        p_score=$((p_members * 100000 + $(getv "ASSIGNED_$p_i")))
        if [ "$p_score" -gt "$p_best" ]; then
            p_best=$p_score
            ANCHOR=$p_i
            ANCHOR_MEMBERS=$p_members
        fi
    done
}

addr_of() { printf '%s:%s' "$(getv "IP_$1")" "$(getv "PORT_$1")"; }
name_of() { printf '%s:%s' "$(getv "HOST_$1")" "$(getv "PORT_$1")"; }
fresh_list() {
    f_out=""
    f_i=0
    while [ "$f_i" -lt "$N" ]; do
        f_i=$((f_i + 1))
        [ "$(getv "FRESH_$f_i")" -eq 1 ] && f_out="$f_out${f_out:+ }$f_i"
    done
    printf '%s' "$f_out"
}

# reset_node I: make node I an empty, unclustered node again (new node id). Its keys are dropped.
reset_node() {
    rcli "$(getv "IP_$1")" "$(getv "PORT_$1")" FLUSHALL >/dev/null
    r_reply=$(rcli "$(getv "IP_$1")" "$(getv "PORT_$1")" CLUSTER RESET HARD)
    [ "$r_reply" = OK ] || die "node $(name_of "$1"): CLUSTER RESET HARD failed: $(one_line "$r_reply")"
}

# stale_ids: "id has_slots noaddr" for every node id that is none of our live nodes and is unreachable,
# in the view of any clustered node (fail, fail?, noaddr, or a disconnected link).
stale_ids() {
    st_all=""
    st_i=0
    while [ "$st_i" -lt "$N" ]; do
        st_i=$((st_i + 1))
        [ "$(getv "FRESH_$st_i")" -eq 1 ] && continue
        st_all="$st_all
$(getv "NODES_$st_i")"
    done
    printf '%s\n' "$st_all" | awk -v live="$LIVE_IDS" '
        BEGIN { n = split(live, a, " "); for (k = 1; k <= n; k++) L[a[k]] = 1 }
        NF < 8 || ($1 in L) || $3 ~ /handshake|myself/ { next }
        $3 ~ /fail|noaddr/ || $8 == "disconnected" {
            s = 0
            for (f = 9; f <= NF; f++) if ($f !~ /^\[/) s = 1
            if (!($1 in S) || s) S[$1] = s
            if ($3 ~ /noaddr/) A[$1] = 1
        }
        END { for (k in S) print k, S[k], (k in A) ? 1 : 0 }'
}

# forget ID: CLUSTER FORGET on every clustered node (nodes that never knew it answer "Unknown node").
forget() {
    fg_i=0
    while [ "$fg_i" -lt "$N" ]; do
        fg_i=$((fg_i + 1))
        [ "$(getv "FRESH_$fg_i")" -eq 1 ] && continue
        fg_reply=$(rcli "$(getv "IP_$fg_i")" "$(getv "PORT_$fg_i")" CLUSTER FORGET "$1")
        case $fg_reply in
            OK | *"Unknown node"*) ;;
            *) log "warning: CLUSTER FORGET $1 on $(name_of "$fg_i"): $(one_line "$fg_reply")" ;;
        esac
    done
}

# forget_stale: forget every stale id that no live replica still follows. Sets BLOCKED to the
# "replica-index:stale-master-id:has_slots:noaddr" entries that must be resolved first.
forget_stale() {
    BLOCKED=""
    fs_list=$(stale_ids)
    [ -n "$fs_list" ] || return 0
    fs_followed=""
    fs_i=0
    while [ "$fs_i" -lt "$N" ]; do
        fs_i=$((fs_i + 1))
        [ "$(getv "FRESH_$fs_i")" -eq 1 ] && continue
        fs_master=$(getv "NODES_$fs_i" | awk '$3 ~ /myself/ { print $4; exit }')
        fs_flags=$(printf '%s\n' "$fs_list" | awk -v id="$fs_master" '$1 == id { print $2 ":" $3; exit }')
        if [ -n "$fs_flags" ]; then
            BLOCKED="$BLOCKED${BLOCKED:+ }$fs_i:$fs_master:$fs_flags"
            fs_followed="$fs_followed $fs_master"
        fi
    done
    for fs_id in $(printf '%s\n' "$fs_list" | awk '{ print $1 }'); do
        case "$fs_followed " in *" $fs_id "*) continue ;; esac
        log "forgetting lost node $fs_id"
        forget "$fs_id"
    done
}

node_timeout_ms() {
    nt=$(rcli "$(getv "IP_$1")" "$(getv "PORT_$1")" CONFIG GET cluster-node-timeout | sed -n 2p)
    is_uint "$nt" && printf '%s' "$nt" || printf '15000'
}

# index_of ID: our node index with that node id, or nothing.
index_of() {
    io_i=0
    while [ "$io_i" -lt "$N" ]; do
        io_i=$((io_i + 1))
        [ "$(getv "ID_$io_i")" = "$1" ] && printf '%s' "$io_i" && return
    done
}

# rebalance_replicas: move ONE surplus replica (CLUSTER REPLICATE, on the replica itself) to a
# slot-owning master that has fewer than the wanted replicas (replica_plan), and only while the cluster
# is complete and every node agrees on it: never while it is being formed, while a failover (or an
# earlier move) is still spreading, nor with a node failed. The master it leaves must keep at least the
# wanted number of replicas online (its INFO replication), so no master is left without one on the way;
# the next move waits until every node has learnt this one.
RB_WAITING=""
rebalance_replicas() {
    all_formed || return 0
    # shellcheck disable=SC2086 # the plan is a list of words
    set -- $(replica_plan 1)
    [ "$#" -ge 7 ] || return 0
    rb_master=$2
    rb_has=$3
    rb_want=$4
    rb_rep=$5
    rb_from=$6
    rb_from_has=$7
    rb_r=$(index_of "$rb_rep")
    rb_t=$(index_of "$rb_master")
    rb_f=$(index_of "$rb_from")
    [ -n "$rb_r" ] && [ -n "$rb_t" ] && [ -n "$rb_f" ] || return 0
    # The nodes' own views are current where another's may lag: the replica must still follow that
    # master, and the master that lacks one must still be a master that owns slots.
    rcli "$(getv "IP_$rb_r")" "$(getv "PORT_$rb_r")" CLUSTER NODES |
        awk -v m="$rb_from" '$3 ~ /myself/ && $3 ~ /slave/ && $4 == m { f = 1 } END { exit !f }' || return 0
    rcli "$(getv "IP_$rb_t")" "$(getv "PORT_$rb_t")" CLUSTER NODES |
        awk '$3 ~ /myself/ && $3 ~ /master/ && NF > 8 { f = 1 } END { exit !f }' || return 0
    if [ "$rb_from_has" -gt 0 ]; then
        rb_info=$(rcli "$(getv "IP_$rb_f")" "$(getv "PORT_$rb_f")" INFO replication)
        rb_online=$(printf '%s\n' "$rb_info" | grep -c '^slave[0-9]*:.*state=online')
        if ! printf '%s\n' "$rb_info" | grep -q '^role:master$' || [ "$rb_online" -le "$rb_want" ]; then
            [ "$RB_WAITING" = "$rb_f" ] ||
                log "master $(name_of "$rb_f") has $rb_online replica(s) online: waiting before moving one of them"
            RB_WAITING=$rb_f
            return 0
        fi
        rb_left="which keeps $((rb_from_has - 1))"
    else
        rb_left="which owns no slots"
    fi
    log "master $(name_of "$rb_t") owns slots and has $rb_has replica(s), $rb_want wanted:" \
        "CLUSTER REPLICATE on replica $(name_of "$rb_r") moves it from master $(name_of "$rb_f") ($rb_left)"
    rb_reply=$(rcli "$(getv "IP_$rb_r")" "$(getv "PORT_$rb_r")" CLUSTER REPLICATE "$rb_master")
    [ "$rb_reply" = OK ] || log "warning: $(name_of "$rb_r"): $(one_line "$rb_reply")"
}

# wait_healthy LABEL [rebalance]: poll until the cluster is healthy (forgetting stale ids meanwhile, and
# with "rebalance" moving surplus replicas one at a time to masters that lack one), else die.
wait_healthy() {
    wh_deadline=$(($(now) + TIMEOUT))
    while :; do
        snapshot
        all_healthy && return 0
        [ "$(now)" -ge "$wh_deadline" ] && die "$1: cluster not healthy after ${TIMEOUT}s: $(unhealthy_summary)"
        [ "${2:-}" = rebalance ] && rebalance_replicas
        forget_stale
        sleep "$POLL_SECONDS"
    done
}

final_check() {
    cluster_op "redis-cli --cluster check $(addr_of "$1")" --cluster check "$(addr_of "$1")" ||
        die "redis-cli --cluster check $(addr_of "$1") failed"
}

# ---------------------------------------------------------------------------------------------------
# 2./3. Already formed, or create from nothing
# ---------------------------------------------------------------------------------------------------

snapshot
if all_healthy; then
    log "cluster already formed: $N nodes, $TOTAL_SLOTS slots, state ok; nothing to do"
    exit 0
fi

# The repair lock: one key, written through the cluster (redis-cli -c follows MOVED), on the first of
# these that is served. Their slots (3447, 6018, 11573) lie in different thirds of the slot space, so
# losing one master and its replica leaves another. Nothing else in the platform uses these keys.
LOCK_KEYS="redis-cluster-bootstrap:lock:{lock-a} redis-cluster-bootstrap:lock:{lock-1} redis-cluster-bootstrap:lock:{lock-c}"
LOCK_OWNER="${HOSTNAME:-$PROG}:$$:$(now)"
LOCK_KEY=""
LOCK_AT=""

# lock_try: 0 locked (LOCK_KEY), 1 held by another run (LOCK_HOLDER), 2 no lock key could be written.
lock_try() {
    LOCK_HOLDER=""
    for lk in $LOCK_KEYS; do
        lk_reply=$($CMD_TMO redis-cli -c -h "$LOCK_IP" -p "$LOCK_PORT" SET "$lk" "$LOCK_OWNER" NX EX "$LOCK_SECONDS" 2>&1 | tr -d '\r')
        case $lk_reply in
            OK)
                LOCK_KEY=$lk
                LOCK_AT="$LOCK_IP $LOCK_PORT"
                return 0
                ;;
            '')
                # nil: the key exists. (An empty reply from a timed-out call reads the same: check.)
                LOCK_HOLDER=$($CMD_TMO redis-cli -c -h "$LOCK_IP" -p "$LOCK_PORT" GET "$lk" 2>&1 | tr -d '\r')
                case $LOCK_HOLDER in *:*:*) return 1 ;; esac
                ;;
        esac
    done
    return 2
}

lock_release() {
    [ -n "$LOCK_KEY" ] || return 0
    # shellcheck disable=SC2086 # LOCK_AT is "ip port"
    set -- $LOCK_AT
    $CMD_TMO redis-cli -c -h "$1" -p "$2" EVAL \
        "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0" \
        1 "$LOCK_KEY" "$LOCK_OWNER" >/dev/null 2>&1
    LOCK_KEY=""
}
trap lock_release EXIT

# lock_acquire: called with an existing multi-node cluster (ANCHOR). Bootstrap waits for another run's
# lock; repair mode leaves the work to the run that holds it.
lock_acquire() {
    la_deadline=$(($(now) + TIMEOUT))
    la_announced=0
    while :; do
        LOCK_IP=$(getv "IP_$ANCHOR")
        LOCK_PORT=$(getv "PORT_$ANCHOR")
        lock_try
        la_rc=$?
        case $la_rc in
            0)
                log "repair lock taken ($LOCK_KEY, expires after ${LOCK_SECONDS}s)"
                return 0
                ;;
            2)
                log "warning: no repair lock key could be written (are most slots unserved?); repairing unlocked"
                return 0
                ;;
        esac
        if [ "$MODE" = repair ]; then
            log "another run is repairing the cluster (lock held by ${LOCK_HOLDER:-?}); nothing to do"
            exit 0
        fi
        [ "$(now)" -ge "$la_deadline" ] && die "repair lock still held by ${LOCK_HOLDER:-?} after ${TIMEOUT}s"
        if [ "$la_announced" -eq 0 ]; then
            la_announced=1
            log "waiting for the repair lock held by ${LOCK_HOLDER:-?}"
        fi
        sleep "$POLL_SECONDS"
        snapshot
        if all_healthy; then
            log "cluster healthy (repaired by the lock holder); nothing to do"
            exit 0
        fi
        pick_anchor
        [ "$ANCHOR" -ne 0 ] || return 0
    done
}

create_cluster() {
    # shellcheck disable=SC2086 # ADDRS is a list
    cluster_op "creating the cluster: $N nodes, $REPLICAS replica(s) per master" \
        --cluster create $ADDRS --cluster-replicas "$REPLICAS" --cluster-yes ||
        die "redis-cli --cluster create failed"
    wait_healthy "after create"
    final_check 1
    log "cluster formed: $MASTERS_WANTED masters, $REPLICAS replica(s) each"
    exit 0
}

pick_anchor
# A cluster whose members include no replica at all is one that `redis-cli --cluster create` is still
# forming (it joins every node, then makes the replicas): the repair leaves it to the sync hook, or the
# two would both assign replicas. A real fault always leaves replicas: the restarted nodes come back empty
# (not members), and losing a master and its replica leaves the other pairs.
if [ "$MODE" = repair ] && [ "$ANCHOR" -ne 0 ] && [ "$ANCHOR_MEMBERS" -gt 1 ] &&
    ! getv "NODES_$ANCHOR" | awk '$3 ~ /slave/ { f = 1 } END { exit !f }'; then
    log "no member of the cluster is a replica yet (a formation in progress?): left to the sync hook; nothing done"
    exit 0
fi
if [ "$ANCHOR" -ne 0 ] && [ "$ANCHOR_MEMBERS" -gt 1 ]; then
    lock_acquire
    snapshot
    if all_healthy; then
        log "cluster healthy; nothing to do"
        exit 0
    fi
    pick_anchor
fi
if [ "$ANCHOR" -eq 0 ]; then
    log "all $N nodes are empty"
    if [ "$MODE" = repair ]; then
        log "no cluster to repair: forming it is the sync hook's job (the $PROG Job); nothing done"
        exit 0
    fi
    create_cluster
fi
if [ "$ANCHOR_MEMBERS" -le 1 ]; then
    if [ "$MODE" = repair ]; then
        log "no two nodes form a cluster (an interrupted formation?): left to the sync hook; nothing done"
        exit 0
    fi
    # No two of our nodes form a cluster (an interrupted create, or every other node was lost):
    # start over. Whatever keys the leftovers hold are dropped (acceptable: Redis is a cache here).
    c_i=0
    while [ "$c_i" -lt "$N" ]; do
        c_i=$((c_i + 1))
        [ "$(getv "FRESH_$c_i")" -eq 1 ] && continue
        log "no multi-node cluster exists: resetting leftover node $(name_of "$c_i")"
        reset_node "$c_i"
    done
    snapshot
    create_cluster
fi

# ---------------------------------------------------------------------------------------------------
# 4. Repair around the anchor's cluster
# ---------------------------------------------------------------------------------------------------

log "repairing the cluster of $(name_of "$ANCHOR") ($ANCHOR_MEMBERS of $N nodes are members)"

# Nodes that are clustered but unknown to the anchor's cluster (a split, an interrupted run): reset.
reset_any=0
x_i=0
while [ "$x_i" -lt "$N" ]; do
    x_i=$((x_i + 1))
    [ "$(getv "FRESH_$x_i")" -eq 1 ] && continue
    x_id=$(getv "ID_$x_i")
    if ! getv "NODES_$ANCHOR" | awk -v id="$x_id" '$1 == id { found = 1 } END { exit !found }'; then
        if [ "$MODE" = repair ]; then
            log "node $(name_of "$x_i") is clustered outside the cluster of $(name_of "$ANCHOR"): left to the sync hook"
            exit 0
        fi
        log "node $(name_of "$x_i") is clustered outside the cluster of $(name_of "$ANCHOR"): resetting it"
        reset_node "$x_i"
        reset_any=1
    fi
done
[ "$reset_any" -eq 1 ] && snapshot

# Lost nodes: forget them, except lost masters that a live replica still follows: those need a failover
# first. Redis fails over by itself once the master is marked FAIL (about 2 x cluster-node-timeout);
# it never does for a master flagged noaddr (its address now answers with another node id, e.g. the
# rescheduled pod got the old IP back), nor without a majority of masters. So: wait GRACE seconds
# (none for noaddr), then CLUSTER FAILOVER FORCE (needs a majority of masters), then, GRACE seconds
# later, CLUSTER FAILOVER TAKEOVER (needs nobody).
GRACE=$(($(node_timeout_ms "$ANCHOR") * 2 / 1000 + 5))
phase=0
announced=0
phase_since=$(now)
settle_deadline=$(($(now) + TIMEOUT))
while :; do
    forget_stale
    [ -z "$BLOCKED" ] && break
    [ "$(now)" -ge "$settle_deadline" ] && die "lost master(s) still followed by replicas after ${TIMEOUT}s: $BLOCKED"
    wait_for=$GRACE
    if [ "$phase" -eq 0 ]; then
        case " $BLOCKED" in *:1:1\ * | *:1:1) wait_for=0 ;; esac
        if [ "$wait_for" -gt 0 ] && [ "$announced" -eq 0 ]; then
            announced=1
            log "waiting up to ${GRACE}s for Redis to fail over lost master(s): $BLOCKED"
        fi
    fi
    if [ $(($(now) - phase_since)) -ge "$wait_for" ]; then
        done_masters=""
        for b in $BLOCKED; do
            b_i=${b%%:*}
            b_rest=${b#*:}
            b_master=${b_rest%%:*}
            b_slots=${b_rest#*:}
            b_slots=${b_slots%%:*}
            case " $done_masters " in *" $b_master "*) continue ;; esac
            done_masters="$done_masters $b_master"
            if [ "$b_slots" -eq 0 ]; then
                log "replica $(name_of "$b_i") follows lost slot-less master $b_master: resetting it"
                reset_node "$b_i"
                continue
            fi
            [ "$phase" -eq 0 ] && b_mode=FORCE || b_mode=TAKEOVER
            log "lost master $b_master: CLUSTER FAILOVER $b_mode on its replica $(name_of "$b_i")"
            b_reply=$(rcli "$(getv "IP_$b_i")" "$(getv "PORT_$b_i")" CLUSTER FAILOVER "$b_mode")
            [ "$b_reply" = OK ] || log "warning: $(name_of "$b_i"): $(one_line "$b_reply")"
        done
        phase=$((phase + 1))
        phase_since=$(now)
    fi
    sleep "$POLL_SECONDS"
    snapshot
done
snapshot

# Slots nobody serves: their master and all its replicas are gone (and forgotten above).
slot_owners=$(getv "NODES_$ANCHOR")
assigned=$(getv "ASSIGNED_$ANCHOR")
missing=$((TOTAL_SLOTS - assigned))
masters_with_slots=$(printf '%s\n' "$slot_owners" | awk '$3 ~ /master/ && $3 !~ /fail|noaddr/ {
    for (f = 9; f <= NF; f++) if ($f !~ /^\[/) { c++; break } } END { print c + 0 }')
FRESH=$(fresh_list)
k=0

if [ "$missing" -gt 0 ]; then
    log "$missing slot(s) are unassigned (e.g. a master and all its replicas were lost): their keys are gone"
    need=$((MASTERS_WANTED - masters_with_slots))
    [ "$need" -lt 1 ] && need=1
    # Candidates: members that are empty masters without replicas (left by an interrupted run), then
    # fresh nodes, which first join the cluster (CLUSTER MEET, as add-node would do; add-node itself
    # refuses to work while slots are unassigned).
    empty_masters=""
    e_i=0
    while [ "$e_i" -lt "$N" ]; do
        e_i=$((e_i + 1))
        [ "$(getv "FRESH_$e_i")" -eq 1 ] && continue
        if printf '%s\n' "$slot_owners" | awk -v id="$(getv "ID_$e_i")" '
            $1 == id && $3 ~ /master/ && NF == 8 { empty = 1 }
            $4 == id { followed = 1 }
            END { exit !(empty && !followed) }'; then
            empty_masters="$empty_masters${empty_masters:+ }$e_i"
        fi
    done
    new_masters=""
    k=0
    for f in $empty_masters $FRESH; do
        [ "$k" -ge "$need" ] && break
        k=$((k + 1))
        new_masters="$new_masters${new_masters:+ }$f"
    done
    if [ "$k" -gt 0 ]; then
        anchor_ip=$(getv "IP_$ANCHOR")
        anchor_port=$(getv "PORT_$ANCHOR")
        for f in $new_masters; do
            [ "$(getv "FRESH_$f")" -eq 1 ] || continue
            log "joining fresh node $(name_of "$f") as a new master"
            m_reply=$(rcli "$(getv "IP_$f")" "$(getv "PORT_$f")" CLUSTER MEET "$anchor_ip" "$anchor_port")
            [ "$m_reply" = OK ] || die "node $(name_of "$f"): CLUSTER MEET failed: $(one_line "$m_reply")"
        done
        # Let each new master learn the current slot map before it claims the unassigned slots.
        j_deadline=$(($(now) + TIMEOUT))
        for f in $new_masters; do
            while :; do
                j_info=$(rcli "$(getv "IP_$f")" "$(getv "PORT_$f")" CLUSTER INFO)
                j_assigned=$(printf '%s\n' "$j_info" | sed -n 's/^cluster_slots_assigned://p')
                [ "${j_assigned:-0}" = "$assigned" ] && break
                [ "$(now)" -ge "$j_deadline" ] && die "node $(name_of "$f") did not learn the slot map after ${TIMEOUT}s"
                sleep 1
            done
        done
        plan=$(printf '%s\n' "$slot_owners" | awk -v k="$k" -v total="$TOTAL_SLOTS" '
            NF >= 9 && $3 !~ /fail|noaddr/ {
                for (f = 9; f <= NF; f++) {
                    if ($f ~ /^\[/) continue
                    n = split($f, r, "-"); lo = r[1] + 0; hi = (n > 1) ? r[2] + 0 : lo
                    for (x = lo; x <= hi; x++) used[x] = 1
                }
            }
            END {
                for (x = 0; x < total; x++) if (!(x in used)) miss++
                if (!miss) exit
                per = int((miss + k - 1) / k); j = 1; cnt = 0; start = -1
                for (x = 0; x < total; x++) {
                    if (x in used) { if (start >= 0) { print j, start, prev; start = -1 } continue }
                    if (start < 0) start = x
                    prev = x; cnt++
                    if (cnt == per && j < k) { print j, start, x; start = -1; j++; cnt = 0 }
                }
                if (start >= 0) print j, start, prev
            }')
        k=0
        for f in $new_masters; do
            k=$((k + 1))
            ranges=$(printf '%s\n' "$plan" | awk -v j="$k" '$1 == j { printf "%s %s ", $2, $3 }')
            [ -n "$ranges" ] || continue
            log "assigning unassigned slot range(s) $ranges to $(name_of "$f")"
            # shellcheck disable=SC2086 # ranges is a list of numbers
            a_reply=$(rcli "$(getv "IP_$f")" "$(getv "PORT_$f")" CLUSTER ADDSLOTSRANGE $ranges)
            case $a_reply in *"already busy"*)
                # Served meanwhile (by an unlocked run): the check below verifies the slot map.
                log "warning: $(name_of "$f"): $(one_line "$a_reply")"
                continue
                ;;
            esac
            [ "$a_reply" = OK ] || die "node $(name_of "$f"): CLUSTER ADDSLOTSRANGE failed: $(one_line "$a_reply")"
            rcli "$(getv "IP_$f")" "$(getv "PORT_$f")" CLUSTER BUMPEPOCH >/dev/null
        done
    fi
fi

# Wait until the anchor's cluster agrees on a complete slot map (add-node refuses to work otherwise).
# Unassigned slots with no fresh node to take them, or a check that keeps failing (e.g. slots left
# open by an interrupted migration), are handed to `redis-cli --cluster fix --cluster-yes`: it gives
# unassigned slots to the existing masters. The keys of those slots are lost; acceptable for a cache.
fix_tried=0
c_deadline=$(($(now) + (TIMEOUT < 30 ? TIMEOUT : 30)))
while ! $OP_TMO redis-cli --cluster check "$(addr_of "$ANCHOR")" >/dev/null 2>&1; do
    snapshot
    if [ "$fix_tried" -eq 0 ] && { [ "$(now)" -ge "$c_deadline" ] ||
        { [ "$k" -eq 0 ] && [ "$(getv "ASSIGNED_$ANCHOR")" -lt "$TOTAL_SLOTS" ]; }; }; then
        fix_tried=1
        c_deadline=$(($(now) + TIMEOUT))
        cluster_op "redis-cli --cluster fix --cluster-yes on $(addr_of "$ANCHOR") (keys of lost slots are gone)" \
            --cluster fix "$(addr_of "$ANCHOR")" --cluster-yes || log "warning: redis-cli --cluster fix failed"
        continue
    fi
    [ "$(now)" -ge "$c_deadline" ] && final_check "$ANCHOR"
    sleep "$POLL_SECONDS"
done

# The remaining fresh nodes join as replicas of the masters with the fewest replicas.
snapshot
for f in $(fresh_list); do
    NEW_REPLICAS="$NEW_REPLICAS${NEW_REPLICAS:+ }$(getv "ID_$f")"
    cluster_op "adding fresh node $(name_of "$f") as a replica" \
        --cluster add-node "$(addr_of "$f")" "$(addr_of "$ANCHOR")" --cluster-slave ||
        die "redis-cli --cluster add-node $(addr_of "$f") $(addr_of "$ANCHOR") --cluster-slave failed"
done

# Member masters without slots that nobody follows (an add-node interrupted between its CLUSTER MEET
# and CLUSTER REPLICATE): replicas of the slot-owning master with the fewest replicas.
slotless_masters() {
    getv "NODES_$ANCHOR" | awk '$3 ~ /master/ && $3 !~ /fail|noaddr|handshake/ && NF == 8 { print $1 }'
}
snapshot
if [ "$MODE" = repair ] && [ -n "$(slotless_masters)" ]; then
    # `redis-cli --cluster create` makes its replicas one after the other, and the anchor learns of
    # each by gossip: give a formation in progress time to finish before taking its nodes for ours.
    sleep "$POLL_SECONDS"
    sleep "$POLL_SECONDS"
    snapshot
fi
for e_id in $(slotless_masters); do
    getv "NODES_$ANCHOR" | awk -v id="$e_id" '$4 == id { f = 1 } END { exit !f }' && continue
    e_target=$(getv "NODES_$ANCHOR" | awk '
        $3 ~ /master/ && $3 !~ /fail|noaddr/ && NF > 8 { m[$1] = 0 }
        $4 != "-" { r[$4]++ }
        END { best = ""; for (k in m) { c = r[k] + 0; if (best == "" || c < bc || (c == bc && k < best)) { best = k; bc = c } } print best }')
    e_i=0
    while [ "$e_i" -lt "$N" ]; do
        e_i=$((e_i + 1))
        [ "$(getv "ID_$e_i")" = "$e_id" ] || continue
        [ -n "$e_target" ] || break
        # The node's own view is current where the anchor's may lag: skip it if it follows a master now.
        rcli "$(getv "IP_$e_i")" "$(getv "PORT_$e_i")" CLUSTER NODES |
            awk '$3 ~ /myself/ && $3 ~ /master/ && NF == 8 { f = 1 } END { exit !f }' || break
        log "member master $(name_of "$e_i") has no slots and no replica: CLUSTER REPLICATE $e_target"
        e_reply=$(rcli "$(getv "IP_$e_i")" "$(getv "PORT_$e_i")" CLUSTER REPLICATE "$e_target")
        [ "$e_reply" = OK ] || log "warning: $(name_of "$e_i"): $(one_line "$e_reply")"
    done
done

wait_healthy "after repair" rebalance
final_check "$ANCHOR"
log "cluster repaired: $N nodes, $TOTAL_SLOTS slots, state ok"
exit 0
