-- Outliers among the readings of a window [p_start, p_end): outside the metric's valid range,
-- or far from the series' own baseline by robust z-score: z = 0.6745 (value - median) / MAD
-- over the baseline window that ends at p_end (Iglewicz and Hoaglin). Parameters:
-- quality.parameters.
-- Couples with: telemetry.metrics.valid_min/valid_max, quality.parameters, and the settings
-- note in 20_quality_10_intervals.sql (plpgsql, custom plans, jit off, definer).

create or replace function quality.outliers_between(p_start timestamptz, p_end timestamptz)
returns table (
    recorded_at timestamptz,
    device_id integer,
    device_key text,
    metric_id integer,
    metric_name text,
    value double precision,
    outlier_kind text,
    valid_min double precision,
    valid_max double precision,
    baseline_median double precision,
    baseline_mad double precision,
    robust_z numeric
)
language plpgsql
stable
security definer
set search_path = pg_catalog, pg_temp
set plan_cache_mode = force_custom_plan
set jit = off
as $$
#variable_conflict use_column
declare
    params quality.parameters;
    baseline_since timestamptz;
    z_threshold double precision;
    min_readings integer;
begin
    if p_start is null or p_end is null or p_start >= p_end then
        raise exception 'quality.outliers_between: need p_start < p_end, got [%, %)',
            p_start, p_end;
    end if;
    select p.* into params from quality.parameters as p;
    baseline_since := p_end - params.baseline_window;
    z_threshold := params.outlier_z_threshold;
    min_readings := params.baseline_min_readings;

    return query
    with
    baseline_readings as (
        select
            r.device_id,
            r.metric_id,
            r.value
        from telemetry.readings as r
        where r.recorded_at >= baseline_since and r.recorded_at < p_end
    ),

    medians as (
        select
            b.device_id,
            b.metric_id,
            count(*) as baseline_count,
            percentile_cont(0.5) within group (order by b.value) as baseline_median
        from baseline_readings as b
        group by b.device_id, b.metric_id
    ),

    baselines as (
        select
            me.device_id,
            me.metric_id,
            me.baseline_count,
            me.baseline_median,
            percentile_cont(0.5) within group (
                order by abs(b.value - me.baseline_median)
            ) as baseline_mad
        from medians as me
        inner join baseline_readings as b
            on me.device_id = b.device_id and me.metric_id = b.metric_id
        group by me.device_id, me.metric_id, me.baseline_count, me.baseline_median
    ),

    checked as (
        select
            r.recorded_at,
            r.device_id,
            r.metric_id,
            r.value,
            m.valid_min,
            m.valid_max,
            bl.baseline_median,
            bl.baseline_mad,
            case
                when bl.baseline_count >= min_readings and bl.baseline_mad > 0
                    then 0.6745 * (r.value - bl.baseline_median) / bl.baseline_mad
            end as robust_z
        from telemetry.readings as r
        inner join telemetry.metrics as m on r.metric_id = m.metric_id
        left join baselines as bl
            on r.device_id = bl.device_id and r.metric_id = bl.metric_id
        where r.recorded_at >= p_start and r.recorded_at < p_end
    )

    select
        c.recorded_at,
        c.device_id,
        d.device_key,
        c.metric_id,
        m.metric_name,
        c.value,
        case
            when c.value < c.valid_min or c.value > c.valid_max then 'out_of_range'
            else 'baseline'
        end as outlier_kind,
        c.valid_min,
        c.valid_max,
        c.baseline_median,
        c.baseline_mad,
        pg_catalog.round(c.robust_z::numeric, 2) as robust_z
    from checked as c
    inner join telemetry.devices as d on c.device_id = d.device_id
    inner join telemetry.metrics as m on c.metric_id = m.metric_id
    where
        c.value < c.valid_min
        or c.value > c.valid_max
        or abs(c.robust_z) > z_threshold;
end;
$$;

comment on function quality.outliers_between(timestamptz, timestamptz) is
'Readings of [p_start, p_end) outside their metric''s valid range (out_of_range) or far from '
'the series'' median over the baseline window ending at p_end by robust z-score (baseline); '
'parameters in quality.parameters. Reads only those windows'' chunks; jit off.';

grant execute on function quality.outliers_between(timestamptz, timestamptz)
to tsfleet_analyst, tsfleet_grafana;

-- The last outlier_lookback up to now(): quality.outliers_between over that window.
create or replace view quality.outliers as
select
    o.recorded_at,
    o.device_id,
    o.device_key,
    o.metric_id,
    o.metric_name,
    o.value,
    o.outlier_kind,
    o.valid_min,
    o.valid_max,
    o.baseline_median,
    o.baseline_mad,
    o.robust_z
from quality.parameters as p
cross join lateral quality.outliers_between(
    pg_catalog.now() - p.outlier_lookback, pg_catalog.now()
) as o;

comment on view quality.outliers is
'Recent readings outside their metric''s valid range (out_of_range) or far from the series'' '
'trailing median by robust z-score (baseline); parameters in quality.parameters: '
'quality.outliers_between(now() - outlier_lookback, now()).';
comment on column quality.outliers.recorded_at is 'Time of the reading.';
comment on column quality.outliers.device_id is 'Device (telemetry.devices).';
comment on column quality.outliers.device_key is 'External device id.';
comment on column quality.outliers.metric_id is 'Metric (telemetry.metrics).';
comment on column quality.outliers.metric_name is 'Metric name.';
comment on column quality.outliers.value is 'The reading''s value.';
comment on column quality.outliers.outlier_kind is
'out_of_range (outside valid_min..valid_max, checked first) or baseline (robust z-score).';
comment on column quality.outliers.valid_min is 'Metric''s smallest plausible value.';
comment on column quality.outliers.valid_max is 'Metric''s largest plausible value.';
comment on column quality.outliers.baseline_median is
'Median of the series over the trailing baseline window.';
comment on column quality.outliers.baseline_mad is
'Median absolute deviation from baseline_median over the same window.';
comment on column quality.outliers.robust_z is
'0.6745 * (value - baseline_median) / baseline_mad; NULL without a usable baseline.';

grant select on quality.outliers to tsfleet_analyst, tsfleet_grafana;
