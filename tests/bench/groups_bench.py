#!/usr/bin/python3
"""groups_bench.py: the consumer-group figures of `make bench` (issue 3).

    groups_bench.py settle  -b HOST:PORT -t TOPIC [-p 64] [--small 8] [--large 32]
                            [--cycles 2] [-X key=value]...
        One process holds up to --large confluent-kafka (librdkafka) consumers in one
        group, polled round-robin. It lets --small consumers settle, then adds
        large-small more and times until the group settles again (grow), then closes
        those (in parallel, as a scale-down would) and times until the --small left
        settle (shrink). Settled: every live member holds a non-empty assignment, the
        assignments split the topic's partitions exactly (each once), and that stays
        so for --stable seconds; the time counted ends where that stable state began.
        With eager protocols (range, the default) an assignment seen by all members at
        once is one generation's. --cycles repeats grow+shrink; the best counts.

    groups_bench.py create -b HOST:PORT -t TOPIC [-p 64]
        Creates the topic with CreateTopics (Kafka 0.9 has no CreateTopics: run.sh uses
        kafka-topics.sh there).

    groups_bench.py commits -b HOST:PORT -t TOPIC [--groups 1000] [--secs 10]
                            [--conns 4] [--window 64] [--warmup 1]
        Offset commits per second sustained over --groups groups: OffsetCommit v2 with
        generation -1 and an empty member id (a "simple" commit, which Kafka 0.9 also
        takes), one partition per request, round-robin over the groups, pipelined over
        --conns connections with --window requests in flight on each. Counts the
        answers between --warmup and --warmup+--secs; any non-zero error code is
        counted and fails the run. Afterwards every group's offset is read back with
        OffsetFetch v1 and must be the last one acknowledged.

The last line on stdout is "RESULT mode=... key=value ..." like tests/bench/loadgen;
progress goes to stderr. The exit status is non-zero when a run could not complete.
Needs /usr/bin/python3 (Debian's python3-confluent-kafka).
"""

import argparse
import os
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))

import groups_util as g  # noqa: E402


def log(msg):
    sys.stderr.write("[groups_bench] %s\n" % msg)
    sys.stderr.flush()


def xconf(pairs):
    out = {}
    for kv in pairs or []:
        key, _, val = kv.partition("=")
        out[key] = val
    return out


# ---- settle -----------------------------------------------------------------------------


class Member:
    def __init__(self, conf, topic, idx):
        from confluent_kafka import Consumer

        self.idx = idx
        self.cur = set()
        self.c = Consumer(dict(conf, **{"client.id": "bench-%d" % idx}))
        self.closed = False
        self.c.subscribe([topic], on_assign=self._assign, on_revoke=self._revoke, on_lost=self._revoke)

    def _assign(self, c, tps):
        self.cur |= {tp.partition for tp in tps}

    def _revoke(self, c, tps):
        self.cur -= {tp.partition for tp in tps}

    def poll(self):
        m = self.c.poll(0)
        if m is not None and m.error():
            log("member %d: %s" % (self.idx, m.error()))

    def close(self):
        self.c.close()
        self.closed = True


def split_exactly(members, partitions):
    seen = []
    for m in members:
        if not m.cur:
            return False
        seen.extend(m.cur)
    return len(seen) == partitions and set(seen) == set(range(partitions))


def wait_settled(members, partitions, t0, stable_s, timeout_s, what):
    """Poll the members round-robin until split_exactly holds for stable_s; return the
    seconds from t0 to the start of that stable state."""
    since = None
    deadline = t0 + timeout_s
    while True:
        for m in members:
            m.poll()
        now = time.monotonic()
        if split_exactly(members, partitions):
            if since is None:
                since = now
            elif now - since >= stable_s:
                return since - t0
        else:
            since = None
        if now > deadline:
            sizes = sorted(len(m.cur) for m in members)
            raise RuntimeError("%s: not settled after %.0f s (assignment sizes %s)" % (what, timeout_s, sizes))
        time.sleep(0.002)


def settle(args):
    conf = {
        "bootstrap.servers": args.bootstrap,
        "group.id": "bench-settle-%d-%d" % (os.getpid(), int(time.time())),
        "enable.auto.commit": False,
        "auto.offset.reset": "latest",
        "session.timeout.ms": 10000,
        "heartbeat.interval.ms": 1000,
        "socket.timeout.ms": 10000,
        "log.connection.close": False,
    }
    conf.update(xconf(args.X))
    members = [Member(conf, args.topic, i) for i in range(args.small)]
    t0 = time.monotonic()
    initial = wait_settled(members, args.partitions, t0, args.stable, args.timeout, "initial %d" % args.small)
    log("initial %d members settled in %.2f s" % (args.small, initial))
    grows, shrinks = [], []
    nxt = args.small
    try:
        for cyc in range(args.cycles):
            t0 = time.monotonic()
            extra = []
            for _ in range(args.large - args.small):
                extra.append(Member(conf, args.topic, nxt))
                nxt += 1
            members += extra
            grow = wait_settled(members, args.partitions, t0, args.stable, args.timeout,
                                "grow %d->%d" % (args.small, args.large))
            log("cycle %d: grow %d->%d settled in %.2f s" % (cyc + 1, args.small, args.large, grow))
            grows.append(grow)

            stay = members[:args.small]
            t0 = time.monotonic()
            closers = [threading.Thread(target=m.close, daemon=True) for m in extra]
            for th in closers:
                th.start()
            shrink = wait_settled(stay, args.partitions, t0, args.stable, args.timeout,
                                  "shrink %d->%d" % (args.large, args.small))
            for th in closers:
                th.join(30)
            members = stay
            log("cycle %d: shrink %d->%d settled in %.2f s" % (cyc + 1, args.large, args.small, shrink))
            shrinks.append(shrink)
    finally:
        closers = [threading.Thread(target=m.close, daemon=True) for m in members if not m.closed]
        for th in closers:
            th.start()
        for th in closers:
            th.join(30)
    print("RESULT mode=settle grow_s=%.2f shrink_s=%.2f initial_s=%.2f grow_all=%s shrink_all=%s "
          "small=%d large=%d partitions=%d cycles=%d" % (
              min(grows), min(shrinks), initial, ",".join("%.2f" % x for x in grows),
              ",".join("%.2f" % x for x in shrinks), args.small, args.large, args.partitions, args.cycles))


# ---- commits ----------------------------------------------------------------------------


def wait_coordinator(host, port, group, timeout=60):
    """FindCoordinator v0 until it answers 0 (Kafka 0.9 creates __consumer_offsets first)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            with g.GroupConn(host, port, timeout=10) as c:
                r = c.find_coordinator(group, version=0)
            last = r["error_code"]
            if last == 0:
                return r
        except (OSError, g.k.DecodeError) as e:
            last = repr(e)
        time.sleep(0.5)
    raise RuntimeError("no group coordinator after %d s (last %s)" % (timeout, last))


def commits(args):
    host, port = args.bootstrap.rsplit(":", 1)
    port = int(port)
    names = ["bench-commit-%d-%04d" % (os.getpid(), i) for i in range(args.groups)]
    wait_coordinator(host, port, names[0])
    # Request body = prefix(group) + int64 offset + suffix; the offset changes per request.
    prefixes = []
    for i, name in enumerate(names):
        full = g.offset_commit_request(2, name, {args.topic: {i % args.partitions: (0, "")}})
        prefixes.append(full[:-(8 + 2)])
    suffix = g.string("")
    client_id = g.string("groups-bench")
    acked = [-1] * args.groups  # last acknowledged offset per group
    stats = {"ok": 0, "err": 0, "window_ok": 0}
    lock = threading.Lock()
    stop = threading.Event()
    t_start = time.monotonic()
    w0, w1 = t_start + args.warmup, t_start + args.warmup + args.secs
    errors = []

    def worker(shard):
        import socket

        sock = socket.create_connection((host, port), timeout=30)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buf = bytearray()
        cid = 0
        inflight = {}
        off = 0
        gi = 0
        myidx = list(range(shard, args.groups, args.conns))
        ok = err = wok = 0
        try:
            while True:
                out = []
                if not stop.is_set():
                    while len(inflight) < args.window:
                        j = myidx[gi]
                        gi += 1
                        if gi == len(myidx):
                            gi = 0
                            off += 1
                        cid += 1
                        body = prefixes[j] + struct.pack(">q", off) + suffix
                        payload = struct.pack(">hhi", g.OFFSET_COMMIT, 2, cid) + client_id + body
                        out.append(struct.pack(">i", len(payload)) + payload)
                        inflight[cid] = (j, off)
                if out:
                    sock.sendall(b"".join(out))
                if not inflight:
                    break
                chunk = sock.recv(1 << 20)
                if not chunk:
                    raise RuntimeError("connection closed by the broker")
                buf += chunk
                now = time.monotonic()
                while len(buf) >= 4:
                    n = struct.unpack_from(">i", buf)[0]
                    if len(buf) < 4 + n:
                        break
                    frame = bytes(buf[4:4 + n])
                    del buf[:4 + n]
                    rcid = struct.unpack_from(">i", frame)[0]
                    j, o = inflight.pop(rcid)
                    res = g.decode_offset_commit(2, frame[4:])
                    if list(res.values()) == [0]:
                        ok += 1
                        if w0 <= now < w1:
                            wok += 1
                        if o > acked[j]:
                            acked[j] = o
                    else:
                        err += 1
                if now >= w1:
                    stop.set()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))
            stop.set()
        finally:
            sock.close()
            with lock:
                stats["ok"] += ok
                stats["err"] += err
                stats["window_ok"] += wok

    threads = [threading.Thread(target=worker, args=(s,), daemon=True) for s in range(args.conns)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(args.warmup + args.secs + 60)
    if errors:
        raise RuntimeError("commit workers failed: %s" % errors[:3])
    rate = stats["window_ok"] / args.secs
    log("%d commits acknowledged (%d in the %.0f s window), %d errors" % (
        stats["ok"], stats["window_ok"], args.secs, stats["err"]))

    # Read every group's offset back: it must be the last acknowledged one.
    reqs = [(g.OFFSET_FETCH, 1, g.offset_fetch_request(1, names[i], {args.topic: [i % args.partitions]}))
            for i in range(args.groups)]
    res = g.pipelined(port, reqs, conns=args.conns, window=args.window, timeout=120, host=host)
    wrong = 0
    for i, body in enumerate(res):
        got = g.decode_offset_fetch(1, body)["offsets"].get((args.topic, i % args.partitions))
        if got is None or got[0] != acked[i] or got[2] != 0:
            wrong += 1
            if wrong <= 3:
                log("group %s: fetched %r, last acknowledged %d" % (names[i], got, acked[i]))
    print("RESULT mode=commits commits_per_s=%.0f groups=%d conns=%d window=%d secs=%.0f acked=%d errors=%d "
          "wrong_readback=%d" % (rate, args.groups, args.conns, args.window, args.secs, stats["ok"],
                                 stats["err"], wrong))
    if stats["err"] or wrong:
        sys.exit(1)


def create(args):
    from confluent_kafka.admin import AdminClient, NewTopic

    a = AdminClient({"bootstrap.servers": args.bootstrap})
    fut = a.create_topics([NewTopic(args.topic, args.partitions, 1)], operation_timeout=30)[args.topic]
    try:
        fut.result(60)
    except Exception as e:  # noqa: BLE001
        if "TOPIC_ALREADY_EXISTS" not in str(e):
            raise RuntimeError("CreateTopics %s: %s" % (args.topic, e))
    md = a.list_topics(args.topic, timeout=30).topics[args.topic]
    if md.error is not None or len(md.partitions) != args.partitions:
        raise RuntimeError("topic %s: %s, %d partitions" % (args.topic, md.error, len(md.partitions)))
    print("RESULT mode=create topic=%s partitions=%d" % (args.topic, args.partitions))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("mode", choices=["settle", "commits", "create"])
    ap.add_argument("-b", "--bootstrap", required=True)
    ap.add_argument("-t", "--topic", required=True)
    ap.add_argument("-p", "--partitions", type=int, default=64)
    ap.add_argument("-X", action="append", help="librdkafka key=value (settle)")
    ap.add_argument("--small", type=int, default=8)
    ap.add_argument("--large", type=int, default=32)
    ap.add_argument("--cycles", type=int, default=2)
    ap.add_argument("--stable", type=float, default=2.0)
    ap.add_argument("--timeout", type=float, default=90.0)
    ap.add_argument("--groups", type=int, default=1000)
    ap.add_argument("--secs", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--conns", type=int, default=4)
    ap.add_argument("--window", type=int, default=64)
    args = ap.parse_args()
    try:
        if args.mode == "settle":
            settle(args)
        elif args.mode == "create":
            create(args)
        else:
            commits(args)
    except RuntimeError as e:
        log("FAILED: %s" % e)
        sys.exit(1)


if __name__ == "__main__":
    main()
