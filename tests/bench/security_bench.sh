#!/usr/bin/env bash
# security_bench.sh BIN_DIR LOADGEN OUT_DIR: issue 8's figures, each beside its
# ceiling from the same run. Prints RESULT lines (key=value) for run.sh.
#   - produce and consume 1 KiB records over TLS (SSL listener) against plaintext on
#     the same broker, alternating, best of BENCH_SEC_REPS;
#   - SCRAM-SHA-256/512 server-side handshakes per second (tests/bench/scrambench.c),
#     beside the PBKDF2 derivations per second a client must do for each;
#   - ACL decisions with 300,000 principals (tests/bench/aclbench.c), beside one
#     random probe of a hash table of the same size.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN_DIR=$1
LOADGEN=$2
OUT=$3
REPS=${BENCH_SEC_REPS:-3}
RECORDS=${BENCH_SEC_RECORDS:-500000}
SIZE=1024
PRINCIPALS=${BENCH_ACL_PRINCIPALS:-300000}
LOG=$OUT/logs/security.log
TMP=$(mktemp -d /tmp/sluice-secbench.XXXXXX)
PID=
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP"' EXIT
mkdir -p "$OUT/logs"
: >"$LOG"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
field() { sed -n "s/.*[[:space:]]$1=\([^[:space:]]*\).*/\1/p" <<<"$2" | head -n1; }
best() { awk -v a="${1:-0}" -v b="${2:-0}" 'BEGIN{ print (b > a) ? b : a }'; }

# ---- the two benches linked against the broker's objects ----
OBJ=$TMP/obj
mkdir -p "$OBJ"
CFLAGS=(-O2 -g -D_GNU_SOURCE -I"$ROOT/broker/src")
build_bench() { # name sources...
    local name=$1
    shift
    cc "${CFLAGS[@]}" "$ROOT/tests/bench/$name.c" "$@" -lrocksdb -lssl -lcrypto -lpthread -lm \
        -o "$TMP/$name" 2>>"$LOG"
}
S=$ROOT/broker/src
if build_bench scrambench "$S/scram.c" "$S/principals.c" "$S/store.c" "$S/wal.c" "$S/crc32c.c" "$S/log.c"; then
    out=$("$TMP/scrambench" -t 2 -n 20000 2>>"$LOG")
    echo "$out" >>"$LOG"
    for m in 256 512; do
        hs=$(sed -n "s/^scram-sha-$m handshakes\/s: \([0-9.]*\).*/\1/p" <<<"$out")
        pb=$(sed -n "s/^scram-sha-$m pbkdf2\/s (client ceiling): \([0-9.]*\).*/\1/p" <<<"$out")
        echo "RESULT fig=scram mech=$m handshakes_per_s=${hs:-} client_pbkdf2_per_s=${pb:-}"
    done
else
    echo "scrambench did not build" >&2
fi
if build_bench aclbench "$S/acl.c" "$S/store.c" "$S/wal.c" "$S/crc32c.c" "$S/log.c"; then
    mkdir -p "$TMP/acl"
    out=$("$TMP/aclbench" -n "$PRINCIPALS" -d "$TMP/acl" 2>>"$LOG")
    echo "$out" >>"$LOG"
    allowed=$(sed -n 's/.*allowed: write .*prefixed rule) *\([0-9.]*\) ns.*/\1/p' <<<"$out" | head -n1)
    denied=$(sed -n "s/.*denied: read another agent.s .* \([0-9.]*\) ns .*/\1/p" <<<"$out" | head -n1)
    probe=$(sed -n 's/.*ceiling: one probe .* \([0-9.]*\) ns; the hash alone.*/\1/p' <<<"$out" | head -n1)
    rules=$(sed -n 's/.*principals, \([0-9]*\) rules.*/\1/p' <<<"$out" | head -n1)
    mem=$(sed -n 's/.*rule table memory .* \([0-9.]*\) B\/rule .*/\1/p' <<<"$out" | head -n1)
    open=$(sed -n 's/.*acls_open (load [0-9]* rules) *\([0-9.]*\) s.*/\1/p' <<<"$out" | head -n1)
    echo "RESULT fig=acl principals=$PRINCIPALS rules=${rules:-} allowed_ns=${allowed:-} denied_ns=${denied:-}" \
        "probe_ns=${probe:-} bytes_per_rule=${mem:-} open_s=${open:-}"
else
    echo "aclbench did not build" >&2
fi

# ---- TLS throughput on one broker: PLAINTEXT and SSL listeners side by side ----
"$ROOT/tests/security/mkcerts.sh" "$TMP/certs" >>"$LOG" 2>&1
kp=$(free_port)
sp=$(free_port)
ap=$(free_port)
"$BIN_DIR/sluice-broker" --data-dir "$TMP/data" --admin-listen "127.0.0.1:$ap" \
    --set "listeners=PLAINTEXT://127.0.0.1:$kp,SSL://127.0.0.1:$sp" \
    --set "ssl.cert.file=$TMP/certs/server.pem" --set "ssl.key.file=$TMP/certs/server.key" \
    >>"$LOG" 2>&1 </dev/null &
PID=$!
for _ in $(seq 300); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$ap/readyz")" = 200 ] && break
    sleep 0.1
done
curl -s -X POST "http://127.0.0.1:$ap/v1/topics" -d '{"name":"tls-bench","partitions":1}' >>"$LOG"
curl -s -X POST "http://127.0.0.1:$ap/v1/topics" -d '{"name":"plain-bench","partitions":1}' >>"$LOG"
SSLX=(-X security.protocol=SSL -X "ssl.ca.location=$TMP/certs/ca.pem")
declare -A B
for ((r = 1; r <= REPS; r++)); do
    for mode in plain tls; do
        if [ $mode = tls ]; then bs=127.0.0.1:$sp; x=("${SSLX[@]}"); else bs=127.0.0.1:$kp; x=(); fi
        line=$(timeout 300 "$LOADGEN" produce -b "$bs" -t "$mode-bench" -n "$RECORDS" -s "$SIZE" -a 1 \
            "${x[@]}" 2>>"$LOG" | grep '^RESULT' | tail -n1)
        echo "produce $mode #$r: $line" >>"$LOG"
        B[$mode.produce]=$(best "${B[$mode.produce]:-}" "$(field MBps "$line")")
        line=$(timeout 300 "$LOADGEN" consume -b "$bs" -t "$mode-bench" -n "$RECORDS" \
            "${x[@]}" 2>>"$LOG" | grep '^RESULT' | tail -n1)
        echo "consume $mode #$r: $line" >>"$LOG"
        B[$mode.consume]=$(best "${B[$mode.consume]:-}" "$(field MBps "$line")")
    done
done
echo "RESULT fig=tls plain_produce_MBps=${B[plain.produce]} tls_produce_MBps=${B[tls.produce]}" \
    "plain_consume_MBps=${B[plain.consume]} tls_consume_MBps=${B[tls.consume]}"
