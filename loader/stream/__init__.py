"""Stream ingestion: a NATS JetStream consumer that writes through the loaders' batch path.

Modules: settings (what the command line chose), messages (decode and validate one message),
sink (the loaders' one-transaction batch write), deadletter (rejects + dead-letter subject),
outbox (telemetry.asset.v1 events, published after commit), refresh (rollups for the
accumulated time range, every --refresh-interval), streams (JetStream setup),
stats (counters and structured log lines), consumer (the loop that ties them together).
"""
