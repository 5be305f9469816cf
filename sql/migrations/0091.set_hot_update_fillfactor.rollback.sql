alter table telemetry.assets reset (fillfactor);
alter table telemetry.devices reset (fillfactor);
