drop table alerts.acknowledgements cascade;
