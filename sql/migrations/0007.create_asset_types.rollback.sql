drop table telemetry.asset_types cascade;
