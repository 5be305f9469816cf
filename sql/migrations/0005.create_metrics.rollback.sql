drop table telemetry.metrics cascade;
