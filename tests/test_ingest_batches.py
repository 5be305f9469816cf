"""The batch contract: the library entry point for raw stream messages, processing in the same
transaction, and a rollup refresh after the commit that can warn but never undo."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from loader.ingest import LoadOptions
from loader.stream.messages import RawMessage
from loader.stream.sink import RejectedMessage, write_messages
from tests.ingest_support import (
    batches,
    message,
    readings,
    rejects,
    run_load,
    run_load_json,
    scalar,
    write_csv,
)


def raw(*messages: object, first: int = 101) -> list[RawMessage]:
    return [RawMessage("telemetry.normalized.v1", None, json.dumps(m).encode(), first + n)
            for n, m in enumerate(messages)]


def test_write_messages_writes_raw_payloads_as_one_batch(conn: psycopg.Connection) -> None:
    good = message("m-1")
    bad = {"deviceId": "device-abc-123", "timestamp": "2026-01-28T14:30:00Z", "metrics": {}}
    counts = write_messages(conn, raw(good, bad, message("m-1")), source_name="nats:test")
    assert (counts.messages, counts.messages_inserted, counts.messages_duplicate,
            counts.readings_inserted, counts.rejected) == (3, 1, 1, 4, 1)
    assert counts.poison == [RejectedMessage(102, "messageId",
                                             "required field messageId is missing")]
    assert rejects(conn)[0][:3] == ("nats:test", 102, "messageId")
    (batch,) = batches(conn)
    assert (batch["source_kind"], batch["source_name"], batch["checksum"], batch["status"]) == (
        "nats", "nats:test", None, "committed")
    again = write_messages(conn, raw(message("m-1")), source_name="nats:test")
    assert (again.readings_inserted, again.messages_duplicate) == (0, 1)


def test_a_batch_of_poison_only_commits_its_rejects(conn: psycopg.Connection) -> None:
    counts = write_messages(conn, [RawMessage(None, None, b"{not json", 7),
                                   RawMessage(None, None, b"\xff", 8)], source_name="nats:t")
    assert [(p.sequence, p.reason[:12]) for p in counts.poison] == [
        (8, "payload is n"), (7, "invalid JSON")]
    assert [b["status"] for b in batches(conn)] == ["committed"]
    assert readings(conn) == []


def test_write_messages_needs_an_autocommit_connection(db_url: str) -> None:
    with psycopg.connect(db_url) as plain, pytest.raises(ValueError, match="autocommit"):
        write_messages(plain, raw(message("m-1")), source_name="x")


def replace_process_batch(conn: psycopg.Connection, body: str) -> None:
    """A test double for ingest.process_batch (another subject's function) in this test's
    throwaway database."""
    conn.execute("drop function if exists ingest.process_batch(bigint)")
    conn.execute(
        "create function ingest.process_batch(p_batch_id bigint)"
        " returns table (asset_rows_inserted bigint, assets_updated bigint)"
        " language plpgsql as $$ begin " + body + " end; $$")


def test_processing_runs_in_the_batch_transaction(db_url: str, conn: psycopg.Connection,
                                                  tmp_path: Path) -> None:
    conn.execute("create table public.process_calls (batch_id bigint, readings bigint)")
    replace_process_batch(conn, """
        insert into public.process_calls
        select p_batch_id, count(*) from telemetry.readings where batch_id = p_batch_id;
        return query select 7::bigint, 1::bigint;""")
    path = write_csv(tmp_path / "g.csv", ["time", "device", "metric", "value"],
                     [["2026-01-26T00:00:00Z", "m1", "power_w", "1"],
                      ["2026-01-26T00:01:00Z", "m1", "power_w", "2"]])
    report = run_load(db_url, "csv", str(path), "--json")
    assert report.exit_code == 0, report.output
    assert '"asset_rows_inserted": 7' in report.stdout
    # It saw the batch's readings (same transaction, after the insert).
    assert conn.execute("select * from public.process_calls").fetchall() == [(1, 2)]


def test_a_processing_failure_rolls_the_whole_batch_back(db_url: str, conn: psycopg.Connection,
                                                         tmp_path: Path) -> None:
    replace_process_batch(conn, "raise exception 'mapping exploded';")
    path = write_csv(tmp_path / "g.csv", ["time", "device", "metric", "value"],
                     [["2026-01-26T00:00:00Z", "m1", "power_w", "1"]])
    result = run_load(db_url, "csv", str(path))
    assert result.exit_code == 1
    assert "mapping exploded" in result.output
    assert readings(conn) == []
    assert scalar(conn, "select count(*) from telemetry.devices") == 0
    assert [b["status"] for b in batches(conn)] == ["failed"]


def test_a_failed_rollup_refresh_is_a_warning_and_keeps_the_load(
        db_url: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    conn.execute("create or replace procedure rollups.refresh_after_load(p_batch_id bigint)"
                 " language plpgsql as $$ begin raise exception 'rollups are down'; end; $$")
    path = write_csv(tmp_path / "g.csv", ["time", "device", "metric", "value"],
                     [["2026-01-26T00:00:00Z", "m1", "power_w", "1"]])
    result = run_load(db_url, "csv", str(path))
    assert result.exit_code == 0
    assert "warning: batch 1 is committed, but refreshing its rollups failed" in result.output
    assert "rollups are down" in result.output
    assert len(readings(conn)) == 1
    assert [b["status"] for b in batches(conn)] == ["committed"]


def test_old_message_receipts_can_be_pruned_but_not_recent_ones(conn: psycopg.Connection
                                                                ) -> None:
    write_messages(conn, raw(message("m-old"), message("m-new", timestamp="2026-01-28T15:00:00Z")),
                   source_name="nats:test")
    conn.execute("update ingest.message_receipts set received_at = now() - interval '40 days'"
                 " where message_id = 'm-old'")
    assert scalar(conn, "select ingest.prune_message_receipts(interval '30 days')") == 1
    assert conn.execute("select message_id from ingest.message_receipts").fetchall() == [
        ("m-new",)]
    with pytest.raises(psycopg.errors.RaiseException, match="younger than 1 day"):
        conn.execute("select ingest.prune_message_receipts(interval '1 hour')")


def test_a_member_of_tsfleet_ingest_can_load(db_url: str, conn: psycopg.Connection,
                                             tmp_path: Path) -> None:
    import uuid
    from urllib.parse import urlsplit, urlunsplit

    role = f"loader_{uuid.uuid4().hex[:8]}"
    conn.execute(sql.SQL("create role {} login in role tsfleet_ingest").format(
        sql.Identifier(role)))
    try:
        parts = urlsplit(db_url)
        url = urlunsplit(parts._replace(netloc=f"{role}@{parts.hostname}:{parts.port}"))
        path = write_csv(tmp_path / "g.csv", ["time", "device", "metric", "value"],
                         [["2026-01-26T00:00:00Z", "m1", "power_w", "1"],
                          ["bad", "m1", "power_w", "2"]])
        result = run_load(url, "csv", str(path), "--tenant", "acme")
        assert result.exit_code == 0, result.output
        assert "warning" not in result.output
        again = run_load(url, "csv", str(path), "--tenant", "acme")
        assert "skipped" in again.output
        messages_result = load_messages_as(url)
        assert messages_result == (4, 0)
        assert len(readings(conn)) == 5
    finally:
        conn.execute(sql.SQL("drop owned by {}").format(sql.Identifier(role)))
        conn.execute(sql.SQL("drop role {}").format(sql.Identifier(role)))


def load_messages_as(url: str) -> tuple[int, int]:
    with psycopg.connect(url, autocommit=True) as member:
        counts = write_messages(member, raw(message("m-1")), source_name="nats:test")
    return counts.readings_inserted, counts.rejected


def test_progress_reports_bytes_up_to_the_whole_file(conn: psycopg.Connection,
                                                     tmp_path: Path) -> None:
    from loader.formats.generic_csv import CsvLayout, open_generic_csv
    from loader.ingest import load_source

    path = write_csv(tmp_path / "g.csv", ["time", "device", "metric", "value"],
                     [[f"2026-01-26T00:{n:02d}:00Z", "m1", "power_w", str(n)] for n in range(50)])
    seen: list[int] = []
    result = load_source(conn, open_generic_csv(path, CsvLayout(), None),
                         LoadOptions(progress=seen.append))
    assert result.status == "committed" and result.rows_inserted == 50
    assert seen and seen == sorted(seen) and seen[-1] == path.stat().st_size


def test_a_load_of_several_files_refreshes_the_rollups_once_at_the_end(
        db_url: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    """The batches queue their refresh at commit; the queue is drained once after the last
    file, one refresh per joined range, not one per file's batch (a folder of daily files
    re-aggregated each day's buckets once per file)."""
    header = ["time", "device", "metric", "value"]
    paths = [write_csv(tmp_path / f"{day}.csv", header,
                       [[f"2026-01-{day}T{hour:02d}:00:00Z", "m1", "power_w", str(hour)]
                        for hour in range(24)])
             for day in (10, 11, 20)]
    out = run_load_json(db_url, "csv", *map(str, paths))
    assert [b["refresh_seconds"] for b in out["batches"]] == [0, 0, 0]
    assert out["totals"]["rollup_ranges_refreshed"] == 2
    assert out["totals"]["refresh_seconds"] > 0
    assert scalar(conn, "select count(*) from _tsfleet.rollup_refresh_queue") == 0
    daily = conn.execute("select to_char(bucket_start at time zone 'UTC', 'DD'), reading_count"
                         " from rollups.device_metrics_daily order by 1").fetchall()
    assert daily == [("10", 24), ("11", 24), ("20", 24)]
