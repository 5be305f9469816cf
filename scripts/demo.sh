#!/usr/bin/env bash
# The main job end to end on the throwaway database in $DATABASE_URL (set by `make demo`).
set -euo pipefail
cd "$(dirname "$0")/.."
tsfleet=.venv/bin/tsfleet

echo "== migrate"
"$tsfleet" migrate
echo
echo "== status"
"$tsfleet" status
