#!/usr/bin/env bash
# The main job end to end on the throwaway database in $DATABASE_URL (set by `make demo`).
# One section per stage; each stage's owner keeps its section short and self-explaining.
set -euo pipefail
cd "$(dirname "$0")/.."
tsfleet=.venv/bin/tsfleet

echo "== migrate"
"$tsfleet" migrate

# --- assets: two pumps fed by two sample devices (issue 3) ---
echo
echo "== assets: link device-abc-123 -> Pump A and device-abc-124 -> Pump B (data/samples/assets)"
psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -q -f data/samples/assets/pumps.sql

# --- load: sample data for every input format (issue 4) ---
echo
echo "== load: sample data for every input format (data/samples, made by scripts/make_samples.py)"
"$tsfleet" load instruments data/samples/instruments
"$tsfleet" load battery data/samples/battery
"$tsfleet" load messages - < data/samples/messages/messages.jsonl
"$tsfleet" load csv data/samples/generic/narrow.csv
"$tsfleet" load csv --layout wide data/samples/generic/wide.csv
echo "-- loading the same files again changes nothing (skipped):"
"$tsfleet" load battery data/samples/battery

# --- refresh rollups (issue 5) ---
echo
echo "== refresh rollups (continuous aggregates on Community, tables on Apache), then export"
"$tsfleet" refresh
export_dir="$(mktemp -d)"
"$tsfleet" export rollups --day 2026-01-26 --out "$export_dir"
echo "-- one instrument-day document (docs/analysts.md explains every field):"
head -c 600 "$export_dir/instrument_GH1-01_20260126.json"; echo " ..."
rm -rf "$export_dir"

echo
echo "== assets: mapped, derived and health readings written by the loads above"
psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -P pager=off -c "
select asset_key, metric_name, count(*) as readings, round(avg(value)::numeric, 2) as mean
from telemetry.asset_readings_named group by 1, 2 order by 1, 2;" -c "
select asset_key, latest_health_score, latest_health_at, latest_health_source
from telemetry.assets order by 1;"

# --- capture: a verified bundle of one sample day (issue 7) ---
echo
echo "== capture: device-abc-123 temperature on 2026-01-26 at 1 h bins, then verify the bundle"
bundle="$(mktemp -d)/capture"
"$tsfleet" capture --devices device-abc-123 --metrics temperature \
    --start 2026-01-26T00:00:00Z --end 2026-01-27T00:00:00Z --bin 1h --fill hold --out "$bundle"
"$tsfleet" bundle verify "$bundle"
rm -rf "$(dirname "$bundle")"

# --- alerts: evaluate and deliver once (issue 6) ---
echo
echo "== alerts: evaluate the rules (alerts.rules) at the newest sample reading, list open alerts"
"$tsfleet" alerts evaluate --at data
"$tsfleet" alerts list

# --- simulate: a now-relative fleet with planted anomalies (issue 16) ---
echo
echo "== simulate: a demo fleet's last 27 h (seed 1, ending now), five planted anomalies;"
echo "   each rule replayed over the range (alerts.backtest) says where it caught them"
"$tsfleet" simulate --seed 1 --report
echo "-- evaluated live at now: the runner's first evaluation sees the newest values, so the"
echo "   silent device and the flags fire at once; the others are pending for their rule's for:"
"$tsfleet" alerts evaluate
"$tsfleet" alerts list

echo
echo "== status"
"$tsfleet" status
