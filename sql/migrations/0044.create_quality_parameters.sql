-- Parameters of the data-quality views (sql/views/20_quality_*.sql): one row, change it with
-- UPDATE. Couples with: quality.* views, alert rules that read them.
create table quality.parameters (
    singleton boolean not null default true,
    gap_interval_factor double precision not null default 3,
    interval_sample_size integer not null default 100,
    completeness_lookback interval not null default interval '7 days',
    recent_from_raw interval not null default interval '3 hours',
    gap_lookback interval not null default interval '7 days',
    event_rate_lookback interval not null default interval '1 hour',
    baseline_window interval not null default interval '24 hours',
    outlier_lookback interval not null default interval '24 hours',
    outlier_z_threshold double precision not null default 3.5,
    baseline_min_readings integer not null default 10,
    updated_at timestamptz not null default now(),
    constraint parameters_pkey primary key (singleton),
    constraint parameters_singleton_check check (singleton),
    constraint parameters_gap_interval_factor_check check (gap_interval_factor > 1),
    constraint parameters_interval_sample_size_check check (interval_sample_size >= 2),
    constraint parameters_outlier_z_threshold_check check (outlier_z_threshold > 0),
    constraint parameters_baseline_min_readings_check check (baseline_min_readings >= 3)
);
comment on table quality.parameters is
'Parameters of the data-quality views (one row; change with UPDATE, no migration needed).';
comment on column quality.parameters.gap_interval_factor is
'A silence longer than this many nominal intervals is a gap (quality.gaps).';
comment on column quality.parameters.interval_sample_size is
'Newest readings per device and metric used to learn the nominal interval (median spacing).';
comment on column quality.parameters.completeness_lookback is
'How far back quality.completeness_hourly reports hours.';
comment on column quality.parameters.recent_from_raw is
'Hours this recent are counted from raw readings, older ones from rollups.device_metrics_hourly.';
comment on column quality.parameters.gap_lookback is 'How far back quality.gaps looks.';
comment on column quality.parameters.event_rate_lookback is
'How far back quality.event_rate reports minutes.';
comment on column quality.parameters.baseline_window is
'Trailing window (ending now) of the robust baseline: median and MAD per device and metric.';
comment on column quality.parameters.outlier_lookback is
'Readings this recent are checked by quality.outliers.';
comment on column quality.parameters.outlier_z_threshold is
'|robust z| above this is an outlier (z = 0.6745 (x - median) / MAD; 3.5 per Iglewicz-Hoaglin).';
comment on column quality.parameters.baseline_min_readings is
'Fewer baseline readings than this: no baseline outliers for the series.';

insert into quality.parameters (singleton) values (true);

grant select on quality.parameters to tsfleet_analyst, tsfleet_grafana, tsfleet_ingest;
