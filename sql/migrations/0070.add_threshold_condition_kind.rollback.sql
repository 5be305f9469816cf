delete from alerts.rules
where condition_kind = 'threshold';
alter table alerts.rules drop constraint rules_threshold_params_check;
alter table alerts.rules drop constraint rules_condition_kind_check;
alter table alerts.rules add constraint rules_condition_kind_check check (condition_kind in (
    'low_battery', 'temperature_range', 'humidity_drift', 'quality_anomalies',
    'stale_device', 'high_volume', 'low_asset_health', 'poor_completeness'
));
