"""Capture bundles: deterministic, gap-aware telemetry exports with a manifest, and their import.

request.py  what to capture (parsed and canonical arguments)
grid.py     the binned, gap-filled grid, computed in SQL (telemetry.bin_readings)
gaps.py     --gaps FILE: injected gaps for testing downstream tools
csvfile.py  one CSV per series, fixed formatting
manifest.py warnings, checksums, canonical JSON
bundle.py   capture a bundle in memory, write it to a folder
verify.py   recompute every checksum of a bundle folder
load.py     import a bundle as readings (one ingest batch)
"""
