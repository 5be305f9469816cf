drop table _tsfleet.rollup_definitions cascade;
