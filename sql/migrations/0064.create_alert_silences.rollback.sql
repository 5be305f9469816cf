drop table alerts.silences cascade;
