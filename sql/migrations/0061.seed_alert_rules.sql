-- Default rules, one per condition the issue names. Operators UPDATE them (thresholds, timing)
-- or add more specific ones (scope device_type/device/asset...); disabling is is_enabled = false.
insert into alerts.rules (
    rule_key, condition_kind, params, severity, for_interval, keep_firing_for, annotations
) values
(
    'low_battery', 'low_battery',
    '{"metric": "StateOfChargePercentage", "threshold": 20, "clear_threshold": 25,
      "lookback": "1 hour"}',
    'warning', interval '5 minutes', interval '5 minutes',
    '{"summary": "Battery {{device}} state of charge is {{value}} %",
      "runbook_url": "https://github.com/tsfleet/tsfleet/blob/main/docs/alerts.md#low_battery"}'
),
(
    'temperature_out_of_range', 'temperature_range',
    '{"metric": "temperature_c", "min": 5, "max": 35, "clear_min": 6, "clear_max": 34,
      "lookback": "2 hours"}',
    'warning', interval '10 minutes', interval '10 minutes',
    '{"summary": "{{device}} temperature is {{value}} C, outside the allowed range",
      "runbook_url":
      "https://github.com/tsfleet/tsfleet/blob/main/docs/alerts.md#temperature_range"}'
),
(
    'humidity_drift', 'humidity_drift',
    '{"metric": "humidity_pct", "window": "1 hour", "baseline_offset": "24 hours",
      "threshold": 15, "clear_threshold": 10}',
    'warning', interval '30 minutes', interval '30 minutes',
    '{"summary": "{{device}} humidity drifted {{value}} points from its baseline",
      "runbook_url":
      "https://github.com/tsfleet/tsfleet/blob/main/docs/alerts.md#humidity_drift"}'
),
(
    'repeated_quality_anomalies', 'quality_anomalies',
    '{"threshold": 3, "last_readings": 10, "window": "6 hours", "clear_threshold": 1}',
    'warning', interval '0', interval '0',
    '{"summary": "{{device}} {{metric}}: {{value}} non-good quality flags in its last readings",
      "runbook_url":
      "https://github.com/tsfleet/tsfleet/blob/main/docs/alerts.md#quality_anomalies"}'
),
(
    'stale_device', 'stale_device',
    '{"max_age": "5 minutes", "interval_multiple": 3, "ignore_after": "7 days"}',
    'warning', interval '0', interval '0',
    '{"summary": "{{device}} sent nothing for {{value}} s",
      "runbook_url": "https://github.com/tsfleet/tsfleet/blob/main/docs/alerts.md#stale_device"}'
),
(
    'high_volume_fleet', 'high_volume',
    '{"per": "fleet", "threshold": 1000, "window": "1 minute"}',
    'info', interval '2 minutes', interval '2 minutes',
    '{"summary": "The fleet sends {{value}} readings per minute",
      "runbook_url": "https://github.com/tsfleet/tsfleet/blob/main/docs/alerts.md#high_volume"}'
),
(
    'high_volume_device', 'high_volume',
    '{"per": "device", "threshold": 1000, "window": "1 minute"}',
    'warning', interval '2 minutes', interval '2 minutes',
    '{"summary": "{{device}} sends {{value}} readings per minute",
      "runbook_url": "https://github.com/tsfleet/tsfleet/blob/main/docs/alerts.md#high_volume"}'
),
(
    'low_asset_health', 'low_asset_health',
    '{"threshold": 50, "clear_threshold": 60, "max_age": "1 day"}',
    'critical', interval '10 minutes', interval '10 minutes',
    '{"summary": "Asset {{asset}} health score is {{value}}",
      "runbook_url":
      "https://github.com/tsfleet/tsfleet/blob/main/docs/alerts.md#low_asset_health"}'
),
(
    'poor_completeness', 'poor_completeness',
    '{"threshold": 80, "clear_threshold": 90}',
    'info', interval '0', interval '0',
    '{"summary": "{{device}} {{metric}} delivered {{value}} % of expected readings last hour",
      "runbook_url":
      "https://github.com/tsfleet/tsfleet/blob/main/docs/alerts.md#poor_completeness"}'
);
