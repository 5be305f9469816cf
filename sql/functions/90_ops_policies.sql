-- Configurable policies on the readings hypertables. Edition-aware: on the Apache edition
-- these report what they skipped instead of failing, like the migrations do.
-- Couples with: migrations 0013 (compression settings), ops.capabilities.

create or replace function ops.set_compression_policy(
    target regclass,
    compress_after interval
)
returns text
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
    if current_setting('timescaledb.license', true) is distinct from 'timescale' then
        raise notice 'tsfleet: compression policy for % skipped (TimescaleDB Apache edition)',
        target;
        return 'skipped: the Apache edition has no compression';
    end if;
    if not exists (
        select from timescaledb_information.compression_settings as cs
        where format('%I.%I', cs.hypertable_schema, cs.hypertable_name)::regclass = target
    ) then
        raise exception 'tsfleet: compression is not enabled on %', target
        using hint = 'Only tsfleet hypertables set up by the migrations have compression.';
    end if;
    perform public.remove_compression_policy(target, if_exists => true);
    perform public.add_compression_policy(target, compress_after);
    update _tsfleet.setup_log as sl
    set detail = format('compress chunks older than %s', compress_after), recorded_at = now()
    where sl.feature = 'compression' and sl.object_name = target::text;
    return format('compress chunks of %s older than %s', target, compress_after);
end;
$$;

comment on function ops.set_compression_policy(regclass, interval) is
'Change the age after which chunks of a tsfleet hypertable are compressed (Community edition).';
