drop table telemetry.device_asset_links cascade;
