drop table if exists alerts.rule_evaluations cascade;
