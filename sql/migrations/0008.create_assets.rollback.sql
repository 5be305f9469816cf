drop table telemetry.assets cascade;
