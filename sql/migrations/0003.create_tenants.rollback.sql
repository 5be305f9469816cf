drop table telemetry.tenants cascade;
