-- Raw-data retention (ops.retention_settings, migration 0045). Default: keep everything.
-- Community: a retention policy (background job) drops old raw chunks.
-- Apache:    no jobs; ops.apply_retention() (run by `tsfleet refresh`, or cron) drops them,
--            after rolling the range up so that rollups always outlive raw data.
-- Rollups are never dropped by tsfleet. Couples with: _tsfleet.rollup_definitions (refresh
-- windows must lie inside the retained range), 40_rollups_refresh.sql.

create or replace function ops.set_raw_retention(p_drop_after interval)
returns text
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
    is_community boolean := current_setting('timescaledb.license', true) = 'timescale';
    -- Raw data must outlive every rollup refresh window, or a policy refresh would empty
    -- rollup buckets whose raw chunks are gone.
    shortest interval := (
        select max(rd.policy_start_offset) + interval '2 days'
        from _tsfleet.rollup_definitions as rd
    );
    target text;
begin
    if p_drop_after is not null and p_drop_after < coalesce(shortest, interval '0') then
        raise exception 'tsfleet: raw retention % is shorter than the rollup refresh windows',
            p_drop_after
        using hint = format('Keep raw readings at least %s, or NULL to keep them all.', shortest);
    end if;
    for target in
        select rs.hypertable_name from ops.retention_settings as rs order by rs.hypertable_name
    loop
        update ops.retention_settings as rs
        set drop_after = p_drop_after, updated_at = now()
        where rs.hypertable_name = target;
        if is_community then
            perform public.remove_retention_policy(target::regclass, if_exists => true);
            if p_drop_after is not null then
                perform public.add_retention_policy(target::regclass, drop_after => p_drop_after);
            end if;
        end if;
    end loop;
    if p_drop_after is null then
        return 'raw readings are kept forever';
    elsif is_community then
        return format('raw chunks older than %s are dropped by a retention policy', p_drop_after);
    end if;
    return format(
        'raw chunks older than %s are dropped by ops.apply_retention() (Apache edition: no '
        'policies; `tsfleet refresh` runs it)', p_drop_after
    );
end;
$$;

comment on function ops.set_raw_retention(interval) is
'Keep raw readings (device and asset) for this long (NULL: forever, the default). Community: '
'retention policy; Apache: applied by ops.apply_retention(). Rollups are always kept.';

create or replace function ops.apply_retention()
returns table (hypertable_name text, dropped_chunks integer)
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
    setting record;
    def record;
    cutoff timestamptz;
    oldest timestamptz;
begin
    for setting in
        select rs.hypertable_name, rs.drop_after
        from ops.retention_settings as rs
        where rs.drop_after is not null
        order by rs.hypertable_name
    loop
        cutoff := now() - setting.drop_after;
        if current_setting('timescaledb.license', true) is distinct from 'timescale' then
            -- Roll the doomed range up first (tables on Apache), so rollups outlive raw data.
            execute format('select min(s.recorded_at) from %s as s', setting.hypertable_name)
            into oldest;
            if oldest is not null and oldest < cutoff then
                for def in
                    select w.rollup_name, w.window_start, w.window_end
                    from _tsfleet.rollup_refresh_windows(oldest, cutoff) as w
                loop
                    perform _tsfleet.rebuild_rollup_table(
                        def.rollup_name, def.window_start, def.window_end
                    );
                end loop;
            end if;
        end if;
        hypertable_name := setting.hypertable_name;
        select count(*)::integer into dropped_chunks
        from public.drop_chunks(setting.hypertable_name::regclass, older_than => cutoff);
        return next;
    end loop;
end;
$$;

comment on function ops.apply_retention() is
'Drop raw chunks older than ops.retention_settings says, now (Apache: rolls the range up '
'first). Returns the chunks dropped per hypertable. Community policies do this on their own.';
