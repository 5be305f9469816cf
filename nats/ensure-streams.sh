#!/bin/sh
# Create or update tsfleet's JetStream streams with retention limits, before the consumer
# starts (the consumer leaves an existing stream as it is). Run by docker-compose's
# `nats-streams` service with the NATS CLI (nats-box); docs/streaming.md explains the limits.
#   NATS_URL, NATS_USER, NATS_PASSWORD      where and as whom (read by the nats CLI)
#   TSFLEET_STREAM_MAX_AGE                  how long a message is kept, e.g. 7d
#   TSFLEET_STREAM_MAX_BYTES                most bytes a stream keeps, e.g. 1GB (oldest go first)
set -eu
: "${TSFLEET_STREAM_MAX_AGE:?set TSFLEET_STREAM_MAX_AGE (e.g. 7d)}"
: "${TSFLEET_STREAM_MAX_BYTES:?set TSFLEET_STREAM_MAX_BYTES (e.g. 1GB)}"

ensure() {
    name=$1 subject=$2
    if nats stream info "$name" >/dev/null 2>&1; then
        nats stream edit "$name" --force \
            --max-age "$TSFLEET_STREAM_MAX_AGE" --max-bytes "$TSFLEET_STREAM_MAX_BYTES"
    else
        # The 2 minute duplicate window is the consumer's own (loader/stream/streams.py).
        nats stream add "$name" --subjects "$subject" --storage file --retention limits \
            --discard old --replicas 1 --dupe-window 2m --defaults \
            --max-age "$TSFLEET_STREAM_MAX_AGE" --max-bytes "$TSFLEET_STREAM_MAX_BYTES"
    fi
    echo "stream $name ($subject): max age $TSFLEET_STREAM_MAX_AGE, max bytes $TSFLEET_STREAM_MAX_BYTES"
}

ensure TELEMETRY telemetry.normalized.v1
ensure TELEMETRY_DLQ telemetry.dlq
ensure TELEMETRY_ASSET telemetry.asset.v1
