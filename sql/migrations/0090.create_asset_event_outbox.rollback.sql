drop table if exists ingest.asset_event_outbox cascade;
