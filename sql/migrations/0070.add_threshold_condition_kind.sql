-- A generic threshold condition: params {"metric": M, "above": X} or {"metric": M, "below": X},
-- optional clear_threshold (hysteresis) and lookback. Users alert on any metric without bending
-- a specific kind (issue 13).
alter table alerts.rules drop constraint rules_condition_kind_check;
alter table alerts.rules add constraint rules_condition_kind_check check (condition_kind in (
    'low_battery', 'temperature_range', 'humidity_drift', 'quality_anomalies',
    'stale_device', 'high_volume', 'low_asset_health', 'poor_completeness', 'threshold'
));
-- A threshold rule names its metric and exactly one side.
alter table alerts.rules add constraint rules_threshold_params_check check (
    condition_kind <> 'threshold'
    or (
        params ? 'metric'
        and ((params ? 'above') <> (params ? 'below'))
    )
);
