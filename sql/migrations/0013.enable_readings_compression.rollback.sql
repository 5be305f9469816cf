-- Undo compression where it was enabled: drop the policy, decompress, turn compression off.
do $$
declare
    target regclass;
    chunk regclass;
begin
    foreach target in array array[
        'telemetry.readings'::regclass, 'telemetry.asset_readings'::regclass
    ] loop
        if exists (
            select from _tsfleet.setup_log as sl
            where sl.feature = 'compression' and sl.object_name = target::text
                and sl.status = 'enabled'
        ) then
            perform public.remove_compression_policy(target, if_exists => true);
            for chunk in
                select cc from public.show_chunks(target) as cc
            loop
                perform public.decompress_chunk(chunk, if_compressed => true);
            end loop;
            execute format('alter table %s set (timescaledb.compress = false)', target);
        end if;
        delete from _tsfleet.setup_log as sl
        where sl.feature = 'compression' and sl.object_name = target::text;
    end loop;
end;
$$;
