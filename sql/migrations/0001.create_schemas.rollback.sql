-- Drops everything tsfleet owns. The timescaledb extension stays: it may predate tsfleet.
drop schema if exists _tsfleet cascade;
drop schema if exists ops cascade;
drop schema if exists alerts cascade;
drop schema if exists quality cascade;
drop schema if exists rollups cascade;
drop schema if exists ingest cascade;
drop schema if exists telemetry cascade;
