// s3rver.js: start the @20minutes/s3rver fork (a SigV4-checking S3 server) on loopback.
// usage: node s3rver.js DIRECTORY PORT [BUCKET...]   (needs NODE_OPTIONS=--openssl-legacy-provider)
// Prints "ready" once listening. Keys are S3RVER / S3RVER.
const path = require('path');
const S3rver = require(path.join(__dirname, '..', '.deps', 'node_modules', '@20minutes', 's3rver'));
const [directory, port, ...buckets] = process.argv.slice(2);
new S3rver({
  directory,
  address: '127.0.0.1',
  port: Number(port),
  vhostBuckets: false,
  silent: true,
  configureBuckets: buckets.map((name) => ({ name })),
}).run().then(() => console.log('ready'), (err) => { console.error(err); process.exit(1); });
