#!/usr/bin/env bash
# run.sh: run the end-to-end suite against $SLUICE_BIN/sluice-broker (default build/bin).
# The Python Kafka clients are Debian packages, so this uses /usr/bin/python3 on purpose.
set -euo pipefail
cd "$(dirname "$0")/../.."
export SLUICE_BIN="${SLUICE_BIN:-build/bin}"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export PYTHONDONTWRITEBYTECODE=1
if [ ! -x "$SLUICE_BIN/sluice-broker" ]; then
    echo "run.sh: $SLUICE_BIN/sluice-broker not found; build it first (make)" >&2
    exit 1
fi
# Extra arguments (test files, -k, -x) replace the default of the whole suite.
[ "$#" -gt 0 ] || set -- tests/e2e
exec /usr/bin/python3 -m pytest -q -p no:cacheprovider "$@"
