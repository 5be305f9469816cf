drop table alerts.notifications cascade;
