#!/usr/bin/env bash
# The main job end to end on the throwaway database in $DATABASE_URL (set by `make demo`).
# One section per stage; each stage's owner keeps its section short and self-explaining.
set -euo pipefail
cd "$(dirname "$0")/.."
tsfleet=.venv/bin/tsfleet

echo "== migrate"
"$tsfleet" migrate

# --- load: sample data for every input format (issue 4) ---

# --- refresh rollups (issue 5) ---

# --- alerts: evaluate and deliver once (issue 6) ---

echo
echo "== status"
"$tsfleet" status
