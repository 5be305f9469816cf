"""Stream ingestion: a NATS JetStream consumer that writes through the loaders' batch path.

Modules: settings (what the command line chose), pipeline (the decisions, without I/O: ack,
nak, dead-letter, write again in halves), consumer (the loop that carries them out),
jetstream (connection, durable pull consumer, advisories), fetch (pull requests), database
(the database side), sink (raw payloads through the loaders' one-transaction batch write:
the database decodes them), messages (the raw message), retrying (tenacity
backoff), deadletter (rejects + dead-letter subject), outbox (telemetry.asset.v1 events,
published after commit), refresh (rollups for the accumulated time range), streams (stream
setup), stats (counters and the event log).
"""
