// group_pair.js: two kafkajs 2.2.4 consumers in one consumer group against Sluice.
// Usage: node group_pair.js BOOTSTRAP TOPIC GROUP PARTITIONS PER_PARTITION
//   Both consumers subscribe (fromBeginning) and run eachMessage. Consumer 0 commits with
//   kafkajs' autoCommit (after each batch); consumer 1 has autoCommit off and commits each
//   message itself with commitOffsets(). Once their GROUP_JOIN assignments split the
//   PARTITIONS partitions between them (and stay so for a second), a kafkajs producer sends
//   PER_PARTITION messages to every partition; when all have arrived (plus a second for
//   duplicates) both consumers disconnect.
//   Prints one JSON line: {"received":[{"m","p","o","v"}], "assignments":[[...],[...]],
//   "joins":N, "settle_ms":..}. Exits 1 with a message on stderr on failure or timeout.
'use strict';
const { Kafka, logLevel } = require('kafkajs');

const [bootstrap, topic, groupId, partsArg, perArg] = process.argv.slice(2);
if (!bootstrap || !topic || !groupId || !partsArg || !perArg) {
  console.error('usage: node group_pair.js BOOTSTRAP TOPIC GROUP PARTITIONS PER_PARTITION');
  process.exit(2);
}
const P = parseInt(partsArg, 10);
const PER = parseInt(perArg, 10);
const TOTAL = P * PER;

const kafka = new Kafka({
  clientId: 'sluice-e2e-group',
  brokers: [bootstrap],
  logLevel: logLevel.ERROR,
  connectionTimeout: 5000,
  requestTimeout: 15000,
  retry: { retries: 8, initialRetryTime: 100 },
});

const sleep = ms => new Promise(r => setTimeout(r, ms));
const received = [];
const latest = [null, null];
let joins = 0;

async function waitFor(pred, ms, what) {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error('timed out waiting for ' + what);
    await sleep(50);
  }
}

function split() {
  if (!latest[0] || !latest[1]) return null;
  const all = latest[0].concat(latest[1]).sort((a, b) => a - b);
  if (latest[0].length === 0 || latest[1].length === 0 || all.length !== P) return null;
  for (let i = 0; i < P; i++) if (all[i] !== i) return null;
  return JSON.stringify(latest);
}

async function main() {
  const t0 = Date.now();
  const consumers = [0, 1].map(i => {
    const c = kafka.consumer({
      groupId,
      sessionTimeout: 10000,
      rebalanceTimeout: 20000,
      heartbeatInterval: 500,
      maxWaitTimeInMs: 200,
      retry: { retries: 8, initialRetryTime: 100 },
    });
    c.on(c.events.GROUP_JOIN, e => {
      joins++;
      latest[i] = (e.payload.memberAssignment[topic] || []).slice().sort((a, b) => a - b);
    });
    return c;
  });
  try {
    for (const [i, c] of consumers.entries()) {
      await c.connect();
      await c.subscribe({ topic, fromBeginning: true });
      await c.run({
        autoCommit: i === 0,
        eachMessage: async ({ partition, message }) => {
          if (i === 1) {
            const next = (BigInt(message.offset) + 1n).toString();
            await c.commitOffsets([{ topic, partition, offset: next }]);
          }
          received.push({ m: i, p: partition, o: message.offset, v: message.value.toString() });
        },
      });
    }
    // Settled: both assignments split the partitions, unchanged for a second.
    let seen = null;
    let since = 0;
    await waitFor(() => {
      const s = split();
      if (s !== seen) { seen = s; since = Date.now(); }
      return s !== null && Date.now() - since >= 1000;
    }, 45000, 'the two kafkajs members to split ' + P + ' partitions (latest ' + JSON.stringify(latest) + ')');
    const settleMs = Date.now() - t0;
    const settled = JSON.parse(seen);

    const producer = kafka.producer();
    await producer.connect();
    const messages = [];
    for (let p = 0; p < P; p++) {
      for (let j = 0; j < PER; j++) messages.push({ partition: p, value: `js-${p}-${j}` });
    }
    await producer.send({ topic, acks: -1, messages });
    await producer.disconnect();

    await waitFor(() => received.length >= TOTAL, 40000, TOTAL + ' messages (have ' + received.length + ')');
    await sleep(1000);
    if (split() !== JSON.stringify(settled)) {
      throw new Error('the group rebalanced while consuming: ' + JSON.stringify(latest));
    }
    for (const c of consumers) await c.disconnect();
    console.log(JSON.stringify({ received, assignments: settled, joins, settle_ms: settleMs }));
  } catch (e) {
    for (const c of consumers) {
      try { await c.disconnect(); } catch (e2) { /* ignore */ }
    }
    throw e;
  }
}

main().then(() => process.exit(0), e => {
  console.error('group_pair.js failed: ' + (e && e.stack ? e.stack : e));
  console.error('received ' + received.length + ', latest assignments ' + JSON.stringify(latest));
  process.exit(1);
});
