alter table alerts.episodes drop column if exists peak_value;
