-- Drop the device rollups (continuous aggregates on Community, tables on Apache), dependents
-- first, with their policies, and forget what 0041 recorded.
do $$
declare
    target text;
begin
    foreach target in array array[
        'rollups.instrument_daily', 'rollups.battery_soc_daily',
        'rollups.device_metrics_daily', 'rollups.device_metrics_hourly'
    ] loop
        if exists (
            select from timescaledb_information.continuous_aggregates as ca
            where format('%I.%I', ca.view_schema, ca.view_name) = target
        ) then
            execute format('drop materialized view %s cascade', target);
        else
            execute format('drop table if exists %s cascade', target);
        end if;
        delete from _tsfleet.setup_log as sl
        where sl.feature in ('continuous_aggregate', 'compression') and sl.object_name = target;
        delete from _tsfleet.rollup_definitions as rd where rd.rollup_name = target;
    end loop;
end;
$$;
