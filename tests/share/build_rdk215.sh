#!/usr/bin/env bash
# build_rdk215.sh: build librdkafka 2.15.1 (preview KIP-932 share consumer) from the
# source bundled in @confluentinc/kafka-javascript@1.10.1, into tests/.deps/rdk215.
# Idempotent: does nothing when the library is already installed.
set -euo pipefail

cd "$(dirname "$0")/../.."
root="$PWD"
prefix="$root/tests/.deps/rdk215"
src="$root/tests/.deps/kafka-javascript-1.10.1"

if [ -f "$prefix/lib/librdkafka.so" ] && [ -f "$prefix/include/librdkafka/rdkafka.h" ] &&
   grep -q rd_kafka_share_consumer_new "$prefix/include/librdkafka/rdkafka.h"; then
    exit 0
fi

mkdir -p "$root/tests/.deps"
if [ ! -d "$src/package/deps/librdkafka" ]; then
    echo "build_rdk215.sh: fetching @confluentinc/kafka-javascript@1.10.1"
    rm -rf "$src"
    mkdir -p "$src"
    (cd "$src" && npm pack --silent @confluentinc/kafka-javascript@1.10.1 >/dev/null &&
        tar xzf confluentinc-kafka-javascript-1.10.1.tgz)
fi

echo "build_rdk215.sh: building librdkafka into $prefix"
cd "$src/package/deps/librdkafka"
chmod +x configure lds-gen.py packaging/tools/*.sh 2>/dev/null || true
./configure --prefix="$prefix" --disable-gssapi --disable-zstd --disable-lz4-ext >/dev/null
make -j2 libs >/dev/null
make install-subdirs >/dev/null
echo "build_rdk215.sh: done"
