do $$
begin
    perform public.set_chunk_time_interval('telemetry.readings', interval '1 day');
    perform public.set_chunk_time_interval('telemetry.asset_readings', interval '1 day');
end;
$$;

comment on table telemetry.readings is
'Device readings, narrow: one value per time, device and metric (hypertable, 1-day chunks).';
