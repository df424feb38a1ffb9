// roundtrip.js: kafkajs 2.2.4 against Sluice. Usage: node roundtrip.js BOOTSTRAP TOPIC MODE
//   produce  create TOPIC (2 partitions) with the admin client, produce keyed messages with
//            headers (plain and GZIP), check fetchTopicOffsets; print the sent messages as JSON
//   consume  consume TOPIC with a consumer group from the beginning and print what arrived
// Exits 0 on success and 1 with a message on stderr on any failure.
'use strict';
const { Kafka, CompressionTypes, logLevel } = require('kafkajs');

const [bootstrap, topic, mode] = process.argv.slice(2);
if (!bootstrap || !topic || !mode) {
  console.error('usage: node roundtrip.js BOOTSTRAP TOPIC produce|consume');
  process.exit(2);
}

const kafka = new Kafka({
  clientId: 'sluice-e2e',
  brokers: [bootstrap],
  logLevel: logLevel.ERROR,
  connectionTimeout: 5000,
  requestTimeout: 15000,
  retry: { retries: 3 },
});

function check(cond, msg) {
  if (!cond) throw new Error('check failed: ' + msg);
}

function messages(n, tag) {
  const out = [];
  for (let i = 0; i < n; i++) {
    out.push({
      partition: i % 2,
      key: `${tag}-key-${i}`,
      value: `${tag}-value-${i}-` + 'x'.repeat(i % 50),
      headers: { h1: `v${i}`, tag },
    });
  }
  return out;
}

async function produce() {
  const admin = kafka.admin();
  await admin.connect();
  const created = await admin.createTopics({ topics: [{ topic, numPartitions: 2 }], waitForLeaders: true });
  check(created === true, 'createTopics returned ' + created);
  const again = await admin.createTopics({ topics: [{ topic, numPartitions: 2 }] });
  check(again === false, 'second createTopics of an existing topic returned ' + again);
  const listed = await admin.listTopics();
  check(listed.includes(topic), 'listTopics misses the topic');

  const producer = kafka.producer({ allowAutoTopicCreation: false });
  await producer.connect();
  const plain = messages(10, 'plain');
  const gz = messages(10, 'gzip');
  const r1 = await producer.send({ topic, acks: -1, messages: plain });
  const r2 = await producer.send({ topic, acks: -1, compression: CompressionTypes.GZIP, messages: gz });
  await producer.disconnect();
  for (const r of [...r1, ...r2]) check(r.errorCode === 0, 'produce error ' + JSON.stringify(r));
  const base = (rs, p) => rs.find((r) => r.partition === p).baseOffset;
  check(base(r1, 0) === '0' && base(r1, 1) === '0', 'first batch baseOffsets ' + JSON.stringify(r1));
  check(base(r2, 0) === '5' && base(r2, 1) === '5', 'second batch baseOffsets ' + JSON.stringify(r2));

  const offs = await admin.fetchTopicOffsets(topic);
  offs.sort((a, b) => a.partition - b.partition);
  check(offs.length === 2, 'fetchTopicOffsets partitions ' + JSON.stringify(offs));
  for (const o of offs) {
    check(o.low === '0' && o.high === '10' && o.offset === '10', 'offsets ' + JSON.stringify(o));
  }
  const meta = await admin.fetchTopicMetadata({ topics: [topic] });
  check(meta.topics.length === 1 && meta.topics[0].partitions.length === 2, 'metadata ' + JSON.stringify(meta));
  await admin.disconnect();
  process.stdout.write(JSON.stringify([...plain, ...gz]) + '\n');
}

async function consume() {
  const want = 20;
  const consumer = kafka.consumer({ groupId: `g-${topic}`, maxWaitTimeInMs: 200 });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  const got = [];
  let done;
  const finished = new Promise((resolve) => { done = resolve; });
  await consumer.run({
    eachMessage: async ({ partition, message }) => {
      const headers = {};
      for (const [k, v] of Object.entries(message.headers || {})) headers[k] = v.toString();
      got.push({ partition, offset: message.offset, key: message.key.toString(),
                 value: message.value.toString(), headers });
      if (got.length >= want) done();
    },
  });
  const timer = setTimeout(done, 30000);
  await finished;
  clearTimeout(timer);
  await consumer.disconnect();
  process.stdout.write(JSON.stringify(got) + '\n');
}

(mode === 'produce' ? produce() : consume()).then(
  () => process.exit(0),
  (err) => { console.error(err && err.stack ? err.stack : String(err)); process.exit(1); },
);
