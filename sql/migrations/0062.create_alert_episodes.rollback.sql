drop table alerts.episodes cascade;
