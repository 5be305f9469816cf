-- When each rule was last evaluated live. alerts.evaluate(t) reads every reading of a rule's
-- series since this time (so a spike between two evaluations is seen) and refuses a t earlier
-- than it (state only moves forward; replaying the past is alerts.backtest()).
-- Written only by alerts.evaluate().
create table alerts.rule_evaluations (
    rule_id integer not null,
    last_evaluated_at timestamptz not null,
    constraint rule_evaluations_pkey primary key (rule_id),
    constraint rule_evaluations_rule_id_fkey foreign key (rule_id)
    references alerts.rules (rule_id) on delete cascade
);

comment on table alerts.rule_evaluations is
'The time of each rule''s last live evaluation (alerts.evaluate): the start of the next '
'evaluation''s reading window, and the earliest time the next evaluation may take.';
comment on column alerts.rule_evaluations.rule_id is 'The rule (alerts.rules).';
comment on column alerts.rule_evaluations.last_evaluated_at is
'Evaluation time given to the last alerts.evaluate() that evaluated the rule.';

grant select on alerts.rule_evaluations to tsfleet_ingest, tsfleet_analyst;
grant insert, update on alerts.rule_evaluations to tsfleet_ingest;
