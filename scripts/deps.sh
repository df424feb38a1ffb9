#!/usr/bin/env bash
# deps.sh: install what building (MODE=build), testing (MODE=test, which includes the
# fuzz toolchain: `make test` ends with `make fuzz-check`) or fuzzing (MODE=fuzz: clang
# and its libFuzzer runtime) Sluice needs.
# Idempotent and quick when everything is already there: only missing Debian packages
# are installed, and apt-get update runs only if something is missing.
set -euo pipefail

mode="${1:-build}"
cd "$(dirname "$0")/.."

build_pkgs=(gcc make pkg-config librocksdb-dev libmicrohttpd-dev libcjson-dev
            libcurl4-openssl-dev libssl-dev)
test_pkgs=(libcmocka-dev librdkafka-dev kcat python3-confluent-kafka python3-kafka
           python3-pytest iperf3)

case "$mode" in
build) want=("${build_pkgs[@]}") ;;
test)
    # `make test` ends with `make fuzz-check`: the fuzz toolchain comes too
    want=("${build_pkgs[@]}" "${test_pkgs[@]}")
    command -v node >/dev/null 2>&1 || want+=(nodejs npm)
    ;;
fuzz) want=("${build_pkgs[@]}" libcmocka-dev) ;;
*) echo "usage: $0 build|test|fuzz" >&2; exit 2 ;;
esac

SUDO=()
[ "$(id -u)" -eq 0 ] || SUDO=(sudo)

updated=0
# Installs those of the given Debian packages that are missing (apt-get update first,
# once).
install_missing() {
    local missing=() p status
    for p in "$@"; do
        status="$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)"
        [ "$status" = "install ok installed" ] || missing+=("$p")
    done
    [ "${#missing[@]}" -gt 0 ] || return 0
    echo "deps.sh: installing ${missing[*]}"
    if [ "$updated" = 0 ]; then
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
        updated=1
    fi
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# Whether clang finds its libFuzzer runtime.
have_libfuzzer() {
    command -v clang >/dev/null 2>&1 &&
        clang -print-file-name="libclang_rt.fuzzer-$(uname -m).a" 2>/dev/null | grep -q /
}

install_missing "${want[@]}"

# clang and libFuzzer for `make fuzz` (and `make test`). Debian ships the runtime in
# libclang-rt-N-dev from clang 14 on, and clang only recommends it, so it is asked for
# by name once clang (and so N) is there.
if [ "$mode" != build ] && ! have_libfuzzer; then
    command -v clang >/dev/null 2>&1 || install_missing clang
    v="$(clang -dumpversion 2>/dev/null | cut -d. -f1)"
    if ! have_libfuzzer && [ -n "$v" ]; then
        [ "$updated" = 1 ] || "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
        updated=1
        if apt-cache show "libclang-rt-$v-dev" >/dev/null 2>&1; then
            install_missing "libclang-rt-$v-dev"
        fi
    fi
    have_libfuzzer || { echo "deps.sh: clang has no libFuzzer runtime" >&2; exit 1; }
fi

if [ "$mode" = test ] && [ ! -d tests/.deps/node_modules/kafkajs ]; then
    echo "deps.sh: installing kafkajs@2.2.4 into tests/.deps"
    mkdir -p tests/.deps
    npm install --no-audit --no-fund --prefix tests/.deps kafkajs@2.2.4
fi

# The S3 server for dataset tests: a SigV4-checking fork of s3rver (tests/s3/s3rver.js).
if [ "$mode" = test ] && [ ! -d tests/.deps/node_modules/@20minutes/s3rver ]; then
    echo "deps.sh: installing @20minutes/s3rver@4.0.4 into tests/.deps"
    mkdir -p tests/.deps
    npm install --no-audit --no-fund --prefix tests/.deps @20minutes/s3rver@4.0.4
fi

# librdkafka 2.15.1 with the preview KIP-932 share consumer (tests/share/).
if [ "$mode" = test ]; then
    tests/share/build_rdk215.sh
fi
