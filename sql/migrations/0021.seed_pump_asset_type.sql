-- The default asset type `pump`: its input metrics, the derived power_consumption (W) and the
-- default health rules. Formulas are validated by the asset_types trigger
-- (sql/functions/30_formulas.sql), which the re-apply step creates after this migration's first
-- run; the test suite checks that this seed passes it.
insert into telemetry.asset_types (asset_type_key, display_name, telemetry_schema, description)
values (
    'pump',
    'Pump',
    '{"metrics": ["power_input", "power_current", "motor_temperature", "vibration"],
      "derived_metrics": [
        {"name": "power_consumption", "formula": "power_input * power_current", "unit": "W"}
      ]}',
    'Default pump: power input (V) and current (A) give power_consumption (W); health from '
    'motor temperature, vibration and power consumption.'
);

insert into telemetry.health_rules (
    asset_type_id, rule_group, tier, metric_name, comparison, threshold, penalty, description
)
select
    aty.asset_type_id,
    r.rule_group,
    r.tier,
    r.metric_name,
    r.comparison,
    r.threshold,
    r.penalty,
    r.description
from telemetry.asset_types as aty
cross join (
    values
    (
        'motor_temperature', 1, 'motor_temperature', '>', 80.0, 30.0,
        'Motor overheating'
    ),
    (
        'motor_temperature', 2, 'motor_temperature', '>', 70.0, 10.0,
        'Motor running hot'
    ),
    ('vibration', 1, 'vibration', '>', 5.0, 20.0, 'Excess vibration'),
    (
        'power_consumption', 1, 'power_consumption', '<', 10.0, 40.0,
        'Power consumption too low (dry running or stalled)'
    )
) as r (rule_group, tier, metric_name, comparison, threshold, penalty, description)
where aty.asset_type_key = 'pump';
