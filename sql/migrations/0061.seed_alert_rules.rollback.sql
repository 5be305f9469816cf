delete from alerts.rules as r
where r.rule_key in (
    'low_battery', 'temperature_out_of_range', 'humidity_drift', 'repeated_quality_anomalies',
    'stale_device', 'high_volume_fleet', 'high_volume_device', 'low_asset_health',
    'poor_completeness'
);
