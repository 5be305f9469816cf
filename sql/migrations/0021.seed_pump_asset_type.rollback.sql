-- Fails (foreign key) while assets of type pump exist: delete or retype them first.
delete from telemetry.health_rules as hr
using telemetry.asset_types as aty
where
    hr.asset_type_id = aty.asset_type_id
    and aty.asset_type_key = 'pump';
delete from telemetry.asset_types
where asset_type_key = 'pump';
