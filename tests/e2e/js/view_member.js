// view_member.js: one kafkajs 2.2.4 consumer of a shared view, the Node twin of
// view_member.py. Usage: node view_member.js '{"bootstrap","topic","group","name","work_ms"}'
// Prints JSON lines: {"ev":"subscribed"}, {"ev":"msg","p","o","v"} after processing a
// record (its offset is committed after each batch by kafkajs' autoCommit), and
// {"ev":"closed"} after SIGTERM.
'use strict';
const { Kafka, logLevel } = require('kafkajs');

const spec = JSON.parse(process.argv[2]);
const out = ev => process.stdout.write(JSON.stringify(Object.assign(ev, { t: Date.now() / 1000 })) + '\n');
const sleep = ms => new Promise(r => setTimeout(r, ms));

const kafka = new Kafka({
  clientId: spec.name || 'member',
  brokers: [spec.bootstrap],
  logLevel: logLevel.ERROR,
  retry: { retries: 8, initialRetryTime: 100 },
});
const consumer = kafka.consumer({
  groupId: spec.group,
  sessionTimeout: 6000,
  heartbeatInterval: 500,
  maxWaitTimeInMs: 100,
});

async function main() {
  await consumer.connect();
  await consumer.subscribe({ topic: spec.topic, fromBeginning: true });
  out({ ev: 'subscribed' });
  await consumer.run({
    eachMessage: async ({ partition, message }) => {
      if (spec.work_ms) await sleep(spec.work_ms);
      out({ ev: 'msg', p: partition, o: Number(message.offset), v: (message.value || '').toString() });
    },
  });
}

process.on('SIGTERM', async () => {
  try { await consumer.disconnect(); } finally { out({ ev: 'closed' }); process.exit(0); }
});
main().catch(e => { process.stderr.write(String(e) + '\n'); process.exit(1); });
