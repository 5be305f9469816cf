-- Capture bundles (issue 7): the fixed time grid, binning and gap filling behind
-- `tsfleet capture`. Edition-neutral on purpose: time_bucket (with the window start as origin)
-- and generate_series only, no time_bucket_gapfill/locf (Community-only), so both editions
-- return the same rows and a capture gives the same bytes on either.
-- Couples with: loader/capture/grid.py (reads these columns by name), docs/capture.md.

-- Checks the arguments shared by the capture functions; raises invalid_parameter_value (22023)
-- with a message meant for the user of `tsfleet capture`.
create or replace function _tsfleet.check_capture_arguments(
    series_kind text,
    series_keys text[],
    metric_names text[],
    window_start timestamptz,
    window_end timestamptz
)
returns void
language plpgsql
stable
set search_path = pg_catalog, pg_temp
as $$
declare
    unknown text[];
begin
    if series_kind is null or series_kind not in ('device', 'asset') then
        raise exception 'tsfleet: series kind must be device or asset, not %', series_kind
        using errcode = '22023';
    end if;
    if coalesce(cardinality(series_keys), 0) = 0 then
        raise exception 'tsfleet: name at least one %', series_kind using errcode = '22023';
    end if;
    if coalesce(cardinality(metric_names), 0) = 0 then
        raise exception 'tsfleet: name at least one metric' using errcode = '22023';
    end if;
    if window_start is null or window_end is null or window_end <= window_start then
        raise exception 'tsfleet: the window end (%) must be after its start (%)',
        window_end, window_start
        using errcode = '22023';
    end if;
    if series_kind = 'device' then
        select array_agg(distinct k.key_name order by k.key_name) into unknown
        from unnest(series_keys) as k (key_name)
        where not exists (
            select from telemetry.devices as d where d.device_key = k.key_name
        );
    else
        select array_agg(distinct k.key_name order by k.key_name) into unknown
        from unnest(series_keys) as k (key_name)
        where not exists (
            select from telemetry.assets as a where a.asset_key = k.key_name
        );
    end if;
    if unknown is not null then
        raise exception 'tsfleet: unknown %(s): %', series_kind, array_to_string(unknown, ', ')
        using errcode = '22023',
        hint = format('Known %ss are in telemetry.%ss (column %s_key).',
            series_kind, series_kind, series_kind);
    end if;
    select array_agg(distinct k.key_name order by k.key_name) into unknown
    from unnest(metric_names) as k (key_name)
    where not exists (
        select from telemetry.metrics as m where m.metric_name = k.key_name
    );
    if unknown is not null then
        raise exception 'tsfleet: unknown metric(s): %', array_to_string(unknown, ', ')
        using errcode = '22023',
        hint = 'Known metrics are in telemetry.metrics (column metric_name).';
    end if;
end;
$$;

comment on function _tsfleet.check_capture_arguments(
    text, text[], text[], timestamptz, timestamptz
) is
'Raises invalid_parameter_value (22023) for a bad capture kind, window, device, asset or metric.';

grant execute on function _tsfleet.check_capture_arguments(
    text, text[], text[], timestamptz, timestamptz
) to tsfleet_analyst, tsfleet_ingest;

-- One row per series (key x metric, the full cross product) and bin of the grid
-- [window_start, window_end) in steps of bin_width, gaps included. reading_count = 0 marks a
-- gap; value is then filled as fill_mode says (nan: NaN, zero: 0, hold: the last binned value
-- before it in the window, NaN when there is none; none: NULL). Means and sums are computed in
-- numeric, so the result does not depend on the order rows are read in (parallel plans, chunks).
-- expected_count is how many readings a full bin holds: bin_width / the device's
-- nominal_interval, else / the median interval between the series' readings in the window
-- (expected_from says which; NULL when the series has fewer than two readings there).
-- security definer: analysts may read every reading through telemetry.readings_named but have
-- no SELECT on the base hypertables, which this function reads by id (index scans). It returns
-- nothing the views do not already show, for keys the caller names.
create or replace function telemetry.bin_readings(
    series_kind text,
    series_keys text[],
    metric_names text[],
    window_start timestamptz,
    window_end timestamptz,
    bin_width interval,
    aggregate_name text default 'mean',
    fill_mode text default 'nan'
)
returns table (
    series_key text,
    tenant_key text,
    asset_type_key text,
    metric_name text,
    unit text,
    valid_min double precision,
    valid_max double precision,
    bin_start timestamptz,
    value double precision,
    reading_count integer,
    out_of_range_count integer,
    expected_count integer,
    expected_from text
)
language plpgsql
stable
security definer
set search_path = pg_catalog, pg_temp
set timezone = 'UTC'
as $$
#variable_conflict use_column
declare
    bin_seconds numeric := extract(epoch from bin_width);
begin
    perform _tsfleet.check_capture_arguments(
        series_kind, series_keys, metric_names, window_start, window_end
    );
    if bin_width is null or bin_seconds <= 0 or extract(month from bin_width) <> 0 then
        raise exception 'tsfleet: the bin must be a positive fixed length (seconds to days), not %',
        bin_width
        using errcode = '22023';
    end if;
    if mod(extract(epoch from window_end - window_start), bin_seconds) <> 0 then
        raise exception 'tsfleet: the window % to % is not a whole number of % bins',
        window_start, window_end, bin_width
        using errcode = '22023',
        hint = 'Move the end so that end - start is a multiple of the bin.';
    end if;
    if aggregate_name is null or aggregate_name not in ('mean', 'last', 'min', 'max', 'sum') then
        raise exception 'tsfleet: aggregate must be mean, last, min, max or sum, not %',
        aggregate_name
        using errcode = '22023';
    end if;
    if fill_mode is null or fill_mode not in ('nan', 'zero', 'hold', 'none') then
        raise exception 'tsfleet: fill must be nan, zero, hold or none, not %', fill_mode
        using errcode = '22023';
    end if;

    return query
    with
    series as (
        select
            d.device_id as series_id,
            d.device_key as series_key,
            t.tenant_key,
            null::text as asset_type_key,
            d.nominal_interval
        from telemetry.devices as d
        inner join telemetry.tenants as t on d.tenant_id = t.tenant_id
        where series_kind = 'device' and d.device_key = any(series_keys)
        union all
        select
            a.asset_id as series_id,
            a.asset_key as series_key,
            t.tenant_key,
            aty.asset_type_key,
            null::interval as nominal_interval
        from telemetry.assets as a
        inner join telemetry.tenants as t on a.tenant_id = t.tenant_id
        inner join telemetry.asset_types as aty on a.asset_type_id = aty.asset_type_id
        where series_kind = 'asset' and a.asset_key = any(series_keys)
    ),

    series_metrics as (
        select
            s.series_id,
            s.series_key,
            s.tenant_key,
            s.asset_type_key,
            s.nominal_interval,
            m.metric_id,
            m.metric_name,
            m.unit,
            m.valid_min,
            m.valid_max
        from series as s
        cross join telemetry.metrics as m
        where m.metric_name = any(metric_names)
    ),

    source_rows as (
        select
            sm.series_id,
            sm.metric_id,
            r.recorded_at,
            r.value,
            0 as source_device_id,
            (r.value < sm.valid_min or r.value > sm.valid_max) as is_out_of_range,
            sm.nominal_interval is null as needs_median
        from series_metrics as sm
        inner join telemetry.readings as r
            on sm.series_id = r.device_id and sm.metric_id = r.metric_id
        where
            series_kind = 'device'
            and r.recorded_at >= window_start
            and r.recorded_at < window_end
        union all
        select
            sm.series_id,
            sm.metric_id,
            ar.recorded_at,
            ar.value,
            ar.source_device_id,
            (ar.value < sm.valid_min or ar.value > sm.valid_max) as is_out_of_range,
            true as needs_median
        from series_metrics as sm
        inner join telemetry.asset_readings as ar
            on sm.series_id = ar.asset_id and sm.metric_id = ar.metric_id
        where
            series_kind = 'asset'
            and ar.recorded_at >= window_start
            and ar.recorded_at < window_end
    ),

    -- The grid (one empty row per series and bin) and the readings (bucketed) in one set,
    -- aggregated once: every bin of every series comes out, gaps with reading_count = 0.
    -- (A left join of the grid to binned readings made the planner pick a quadratic merge join.)
    grid_and_rows as (
        select
            sm.series_id,
            sm.metric_id,
            gs.bin_start,
            null::timestamptz as recorded_at,
            null::float8 as value,
            null::integer as source_device_id,
            false as is_out_of_range
        from series_metrics as sm
        cross join
            generate_series(window_start, window_end - bin_width, bin_width) as gs (bin_start)
        union all
        select
            sr.series_id,
            sr.metric_id,
            public.time_bucket(bin_width, sr.recorded_at, window_start) as bin_start,
            sr.recorded_at,
            sr.value,
            sr.source_device_id,
            sr.is_out_of_range
        from source_rows as sr
    ),

    binned as (
        select
            gar.series_id,
            gar.metric_id,
            gar.bin_start,
            case aggregate_name
                when 'mean' then
                    (avg(gar.value::numeric) filter (where aggregate_name = 'mean'))::float8
                when 'sum' then
                    (sum(gar.value::numeric) filter (where aggregate_name = 'sum'))::float8
                when 'min' then min(gar.value) filter (where aggregate_name = 'min')
                when 'max' then max(gar.value) filter (where aggregate_name = 'max')
                else
                    (array_agg(
                        gar.value order by gar.recorded_at desc, gar.source_device_id desc
                    ) filter (
                        where aggregate_name = 'last' and gar.recorded_at is not null
                    ))[1]
            end as value,
            count(gar.recorded_at)::integer as reading_count,
            count(*) filter (where gar.is_out_of_range)::integer as out_of_range_count
        from grid_and_rows as gar
        group by gar.series_id, gar.metric_id, gar.bin_start
    ),

    steps as (
        select
            sr.series_id,
            sr.metric_id,
            sr.recorded_at - lag(sr.recorded_at) over (
                partition by sr.series_id, sr.metric_id order by sr.recorded_at
            ) as step
        from source_rows as sr
        where sr.needs_median
    ),

    median_steps as (
        select
            st.series_id,
            st.metric_id,
            percentile_cont(0.5) within group (
                order by extract(epoch from st.step)
            ) as median_seconds
        from steps as st
        where st.step > interval '0'
        group by st.series_id, st.metric_id
    ),

    gridded as (
        select
            sm.series_id,
            sm.metric_id,
            sm.series_key,
            sm.tenant_key,
            sm.asset_type_key,
            sm.metric_name,
            sm.unit,
            sm.valid_min,
            sm.valid_max,
            b.bin_start,
            b.value,
            b.reading_count,
            b.out_of_range_count,
            case
                when sm.nominal_interval is not null
                    then floor(bin_seconds / extract(epoch from sm.nominal_interval))::integer
                when ms.median_seconds is not null
                    then floor(bin_seconds / ms.median_seconds::numeric)::integer
            end as expected_count,
            case
                when sm.nominal_interval is not null then 'nominal_interval'
                when ms.median_seconds is not null then 'median_interval'
            end as expected_from,
            -- Bins up to and including the last one with readings share a hold group.
            count(*) filter (where b.reading_count > 0) over (
                partition by sm.series_id, sm.metric_id order by b.bin_start
            ) as hold_group
        from series_metrics as sm
        inner join binned as b
            on sm.series_id = b.series_id and sm.metric_id = b.metric_id
        left join median_steps as ms
            on sm.series_id = ms.series_id and sm.metric_id = ms.metric_id
    ),

    final as (
        select
            gr.series_key,
            gr.tenant_key,
            gr.asset_type_key,
            gr.metric_name,
            gr.unit,
            gr.valid_min,
            gr.valid_max,
            gr.bin_start,
            case
                when gr.reading_count > 0 then gr.value
                when fill_mode = 'zero' then 0::float8
                when fill_mode = 'hold' then coalesce(
                    first_value(gr.value) over (
                        partition by gr.series_id, gr.metric_id, gr.hold_group
                        order by gr.bin_start
                    ),
                    'NaN'::float8
                )
                when fill_mode = 'nan' then 'NaN'::float8
            end as value,
            gr.reading_count,
            gr.out_of_range_count,
            gr.expected_count,
            gr.expected_from
        from gridded as gr
    )

    select
        f.series_key,
        f.tenant_key,
        f.asset_type_key,
        f.metric_name,
        f.unit,
        f.valid_min,
        f.valid_max,
        f.bin_start,
        f.value,
        f.reading_count,
        f.out_of_range_count,
        f.expected_count,
        f.expected_from
    from final as f
    order by f.series_key collate "C", f.metric_name collate "C", f.bin_start;
end;
$$;

comment on function telemetry.bin_readings(
    text, text[], text[], timestamptz, timestamptz, interval, text, text
) is
'Readings of devices or assets x metrics on a fixed grid, gap-filled (nan, zero, hold, none).';

grant execute on function telemetry.bin_readings(
    text, text[], text[], timestamptz, timestamptz, interval, text, text
) to tsfleet_analyst, tsfleet_ingest;

-- The raw rows a capture read, as a count and a sha256 over one canonical line per row
-- (UTC time with microseconds, series key, metric, shortest exact value, quality, and for
-- assets the source device), sorted bytewise. Ids are not used, so the checksum compares
-- databases. Builds the text in memory: fine for capture-sized windows.
-- security definer: as telemetry.bin_readings (analysts read readings through views only).
create or replace function telemetry.summarize_capture_sources(
    series_kind text,
    series_keys text[],
    metric_names text[],
    window_start timestamptz,
    window_end timestamptz
)
returns table (row_count bigint, rows_sha256 text)
language plpgsql
stable
security definer
set search_path = pg_catalog, pg_temp
set timezone = 'UTC'
set extra_float_digits = 1
as $$
#variable_conflict use_column
begin
    perform _tsfleet.check_capture_arguments(
        series_kind, series_keys, metric_names, window_start, window_end
    );
    return query
    with
    device_lines as (
        select
            d.device_key as series_key,
            m.metric_name,
            r.recorded_at,
            '' as source_key,
            r.value,
            r.quality
        from telemetry.readings as r
        inner join telemetry.devices as d on r.device_id = d.device_id
        inner join telemetry.metrics as m on r.metric_id = m.metric_id
        where
            series_kind = 'device'
            and d.device_key = any(series_keys)
            and m.metric_name = any(metric_names)
            and r.recorded_at >= window_start
            and r.recorded_at < window_end
    ),

    asset_lines as (
        select
            a.asset_key as series_key,
            m.metric_name,
            ar.recorded_at,
            d.device_key as source_key,
            ar.value,
            ar.quality
        from telemetry.asset_readings as ar
        inner join telemetry.assets as a on ar.asset_id = a.asset_id
        inner join telemetry.metrics as m on ar.metric_id = m.metric_id
        inner join telemetry.devices as d on ar.source_device_id = d.device_id
        where
            series_kind = 'asset'
            and a.asset_key = any(series_keys)
            and m.metric_name = any(metric_names)
            and ar.recorded_at >= window_start
            and ar.recorded_at < window_end
    ),

    all_lines as (
        select * from device_lines
        union all
        select * from asset_lines
    ),

    -- Lines ordered within each series first, then series in bytewise key order: the same
    -- bytes as one ordered string_agg over all rows, in about half the time.
    per_series as (
        select
            al.series_key,
            al.metric_name,
            count(*) as row_count,
            string_agg(
                concat_ws(
                    ',',
                    to_char(al.recorded_at, 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                    al.series_key,
                    al.metric_name,
                    al.value::text,
                    al.quality,
                    al.source_key
                ),
                E'\n'
                order by al.recorded_at, al.source_key collate "C"
            ) as lines
        from all_lines as al
        group by al.series_key, al.metric_name
    )

    select
        coalesce(sum(ps.row_count), 0)::bigint as row_count,
        encode(
            sha256(convert_to(coalesce(string_agg(
                ps.lines,
                E'\n'
                order by ps.series_key collate "C", ps.metric_name collate "C"
            ), ''), 'UTF8')),
            'hex'
        ) as rows_sha256
    from per_series as ps;
end;
$$;

comment on function telemetry.summarize_capture_sources(
    text, text[], text[], timestamptz, timestamptz
) is
'Count and sha256 of the raw readings a capture of these series and window reads.';

grant execute on function telemetry.summarize_capture_sources(
    text, text[], text[], timestamptz, timestamptz
) to tsfleet_analyst, tsfleet_ingest;
