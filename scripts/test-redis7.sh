#!/usr/bin/env bash
# The Redis-facing tests (store, ingest scripts, fan-out, feeds, Redis faults, Sentinel, Cluster,
# WAIT; not the fan-out crash tests, whose processes would double this pass for the same scripts)
# on another redis-server than the embedded 6.2: Debian's /usr/bin/redis-server (7.x) unless
# ALERTHUB_TEST_REDIS_SERVER names one. Run after scripts/test.sh (it uses the same .venv).
set -euo pipefail
cd "$(dirname "$0")/.."
export ALERTHUB_TEST_REDIS_SERVER="${ALERTHUB_TEST_REDIS_SERVER:-/usr/bin/redis-server}"
"$ALERTHUB_TEST_REDIS_SERVER" --version
# tests/store/test_connect_tls.py skips where the server has no TLS; Debian's has, so here a
# skip is a failure.
if ldd "$ALERTHUB_TEST_REDIS_SERVER" | grep -q libssl; then export ALERTHUB_TEST_REQUIRE_TLS=1; fi
.venv/bin/python -m pytest -q \
    tests/store \
    tests/api/test_alerts.py \
    tests/api/test_unavailable.py \
    tests/delivery/test_fanout.py \
    tests/delivery/test_feeds.py \
    tests/faults/test_redis_kill.py \
    tests/faults/test_redis_sentinel.py \
    tests/faults/test_redis_cluster.py \
    tests/faults/test_replicas_ack.py \
    "$@"
