drop table telemetry.asset_readings cascade;
