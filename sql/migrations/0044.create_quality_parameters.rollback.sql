drop table quality.parameters cascade;
