drop table alerts.deliveries cascade;
drop table alerts.sinks cascade;
