drop table _tsfleet.rollup_refresh_queue cascade;
