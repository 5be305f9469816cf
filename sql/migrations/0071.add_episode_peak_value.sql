-- The worst value an episode reached (lowest for a below-threshold condition, highest
-- otherwise), beside `value`, the value at its last evaluation. Kept by alerts.evaluate().
alter table alerts.episodes add column peak_value double precision;

comment on column alerts.episodes.peak_value is
'Worst value of the condition while the episode was open: the lowest for below-threshold '
'conditions, else the highest.';
