drop table telemetry.readings cascade;
