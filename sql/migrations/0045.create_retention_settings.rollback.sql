-- Remove retention policies this setting created (Community), then the setting itself.
do $$
begin
    if current_setting('timescaledb.license', true) = 'timescale' then
        perform public.remove_retention_policy('telemetry.readings', if_exists => true);
        perform public.remove_retention_policy('telemetry.asset_readings', if_exists => true);
    end if;
end;
$$;
drop table ops.retention_settings cascade;
