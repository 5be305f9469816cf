drop table telemetry.health_rules cascade;
