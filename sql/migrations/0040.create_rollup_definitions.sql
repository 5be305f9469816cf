-- The catalog of rollups: one row per rollup, read by the migrations that create them and by
-- rollups.refresh() / rollups.refresh_after_load() (sql/functions/40_rollups_refresh.sql).
-- source_query is the single definition of each rollup: the continuous aggregate's query on
-- the Community edition, and the query that fills the rollup table on the Apache edition.
-- Couples with: migrations 0041-0043 (rows and objects), 40_rollups_refresh.sql.
create table _tsfleet.rollup_definitions (
    rollup_name text not null,
    bucket_width interval not null,
    refresh_order integer not null,
    source_table text not null,
    group_columns text[] not null,
    source_query text not null,
    policy_start_offset interval not null,
    policy_end_offset interval not null,
    policy_schedule interval not null,
    compress_after interval,
    description text not null,
    constraint rollup_definitions_pkey primary key (rollup_name),
    constraint rollup_definitions_refresh_order_key unique (refresh_order),
    constraint rollup_definitions_bucket_width_check check (bucket_width > interval '0'),
    constraint rollup_definitions_policy_window_check check (
        policy_start_offset > policy_end_offset
    )
);
comment on table _tsfleet.rollup_definitions is
'Rollups tsfleet maintains: query, bucket, refresh order, policy window and compression age.';
comment on column _tsfleet.rollup_definitions.rollup_name is
'Qualified name of the rollup (continuous aggregate on Community, table on Apache).';
comment on column _tsfleet.rollup_definitions.refresh_order is
'Refresh sequence: a rollup built on another one refreshes after it.';
comment on column _tsfleet.rollup_definitions.source_table is
'Hypertable or rollup the query reads (its time column decides which loads affect it).';
comment on column _tsfleet.rollup_definitions.group_columns is
'Columns that identify a row besides bucket_start (the unique key of the Apache table).';
comment on column _tsfleet.rollup_definitions.source_query is
'The rollup''s defining SELECT; its first column is bucket_start.';
comment on column _tsfleet.rollup_definitions.policy_start_offset is
'Community refresh policy window start (now - offset); older loads refresh their own range.';
comment on column _tsfleet.rollup_definitions.description is
'COMMENT ON text of the rollup object.';
comment on column _tsfleet.rollup_definitions.compress_after is
'Community: compress rollup chunks older than this; NULL means the rollup is not compressed.';

-- rollups.refresh_after_load() runs as the loader (tsfleet_ingest) and reads the definitions.
grant select on _tsfleet.rollup_definitions to tsfleet_ingest;
