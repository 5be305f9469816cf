-- Edition-aware: compression is a Community-edition (Timescale License) feature. On the
-- Apache edition this migration succeeds, skips, and says so (NOTICE + _tsfleet.setup_log).
-- Policy age: the database setting tsfleet.compress_after if set, else 7 days.
-- Couples with: ops.capabilities, ops.set_compression_policy().
do $$
declare
    target regclass;
    compress_after interval := coalesce(
        nullif(current_setting('tsfleet.compress_after', true), '')::interval,
        interval '7 days'
    );
begin
    foreach target in array array[
        'telemetry.readings'::regclass, 'telemetry.asset_readings'::regclass
    ] loop
        if current_setting('timescaledb.license', true) = 'timescale' then
            execute format(
                'alter table %s set (timescaledb.compress, '
                'timescaledb.compress_segmentby = %L, timescaledb.compress_orderby = %L)',
                target,
                case
                    when target = 'telemetry.readings'::regclass then 'device_id, metric_id'
                    else 'asset_id, metric_id'
                end,
                'recorded_at desc'
            );
            perform public.add_compression_policy(target, compress_after, if_not_exists => true);
            insert into _tsfleet.setup_log (feature, object_name, status, detail)
            values (
                'compression', target::text, 'enabled',
                format('compress chunks older than %s', compress_after)
            );
            raise notice 'tsfleet: compression enabled on % (chunks older than %)',
            target, compress_after;
        else
            insert into _tsfleet.setup_log (feature, object_name, status, detail)
            values (
                'compression', target::text, 'skipped',
                'TimescaleDB Apache edition: compression needs the Community edition'
            );
            raise notice 'tsfleet: compression skipped on % (TimescaleDB Apache edition)', target;
        end if;
    end loop;
end;
$$;
