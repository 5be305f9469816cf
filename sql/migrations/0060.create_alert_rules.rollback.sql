drop table alerts.rules cascade;
