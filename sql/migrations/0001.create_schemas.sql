-- Schemas that hold tsfleet. Public nouns are the API (grants go to them); _tsfleet is private.
-- Functions and views are not created here: post-apply.py re-applies sql/functions and
-- sql/views after every `yoyo apply`. This migration holds only containers and bookkeeping.
create extension if not exists timescaledb;

create schema telemetry;
comment on schema telemetry is
'Devices, assets, metrics and their readings (hypertables), plus readable views for psql.';

create schema ingest;
comment on schema ingest is
'Ingest batches, rejected rows and the functions that loaders call to load and process data.';

create schema rollups;
comment on schema rollups is
'Hourly and daily summaries (continuous aggregates on Community, materialized views on Apache).';

create schema quality;
comment on schema quality is
'Data-quality views: completeness, gaps, freshness and outliers.';

create schema alerts;
comment on schema alerts is
'Alert rules, condition views (the Grafana contract), alert episodes and the notification outbox.';

create schema ops;
comment on schema ops is
'Operations: capabilities of the server, sizes, compression and job status, settings.';

create schema _tsfleet;
comment on schema _tsfleet is
'Private helpers of tsfleet. Not an API: names and signatures may change in any release.';

-- Written by post-apply.py: the digest of sql/functions + sql/views last applied, so an
-- unchanged tree is not re-applied (a second `yoyo apply` changes nothing).
create table _tsfleet.reapply_state (
    singleton boolean primary key default true,
    files_digest text not null,
    managed_objects integer not null,
    applied_at timestamptz not null default now(),
    constraint reapply_state_singleton_check check (singleton)
);
comment on table _tsfleet.reapply_state is
'One row: digest of the function and view files last re-applied, and how many objects they made.';

-- Written by edition-aware migrations: what each one did on this server, and why.
create table _tsfleet.setup_log (
    feature text not null,
    object_name text not null,
    status text not null,
    detail text not null,
    recorded_at timestamptz not null default now(),
    constraint setup_log_pkey primary key (feature, object_name),
    constraint setup_log_status_check check (status in ('enabled', 'skipped'))
);
comment on table _tsfleet.setup_log is
'What edition-aware migrations enabled or skipped on this server (shown by ops.capabilities).';
