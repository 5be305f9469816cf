drop table telemetry.devices cascade;
