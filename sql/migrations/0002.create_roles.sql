-- Least-privilege group roles (NOLOGIN): grant them to login users.
--   tsfleet_owner    runs migrations and owns nothing else special (document: deploy as a member)
--   tsfleet_ingest   loads and processes data (EXECUTE on ingest functions, no DDL)
--   tsfleet_analyst  reads the public views
--   tsfleet_grafana  reads alert and dashboard views only
-- Roles are cluster-wide: another database may already have created them.
-- Object grants live beside each function and view (re-applied); schema usage is here.
do $$
declare
    role_name text;
begin
    foreach role_name in array array[
        'tsfleet_owner', 'tsfleet_ingest', 'tsfleet_analyst', 'tsfleet_grafana'
    ] loop
        if not exists (select from pg_catalog.pg_roles where rolname = role_name) then
            execute format('create role %I nologin', role_name);
        end if;
    end loop;
end;
$$;

comment on role tsfleet_owner is 'tsfleet: runs migrations (yoyo apply) and owns the schema.';
comment on role tsfleet_ingest is 'tsfleet: loaders and consumers; may load and process data.';
comment on role tsfleet_analyst is 'tsfleet: read-only access to the public views.';
comment on role tsfleet_grafana is 'tsfleet: read-only access to alert and dashboard views.';

grant usage on schema telemetry, ingest, rollups, quality, alerts, ops to tsfleet_ingest;
grant usage on schema telemetry, rollups, quality, alerts, ops to tsfleet_analyst;
grant usage on schema telemetry, rollups, quality, alerts, ops to tsfleet_grafana;
grant usage on schema _tsfleet to tsfleet_ingest, tsfleet_analyst, tsfleet_grafana;
