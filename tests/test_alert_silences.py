"""Silences like Alertmanager's: =, !=, =~, !~ on any label, a window, who and why; the
runner, alerts.active_alerts and `tsfleet alerts silences` honour them; old rows still work."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import psycopg
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.types.json import Jsonb

from loader import migrate
from loader.alerts.matchers import parse_matcher, render_matcher
from loader.cli import main
from tests.alerts_support import T0, device, only_rules, reading, refresh_rollups, set_rule

SOC = "StateOfChargePercentage"
LABELS = {"alertname": "low_battery", "rule": "low_battery", "device": "gh-01",
          "tenant": "north", "severity": "warning", "metric": SOC}


def m(name: str, value: str, regex: bool = False, equal: bool = True) -> dict:
    return {"name": name, "value": value, "isRegex": regex, "isEqual": equal}


def matching(conn: psycopg.Connection, matchers: list[dict], labels: dict = LABELS) -> bool:
    with conn.transaction(force_rollback=True):
        conn.execute("select alerts.silence(%s, %s, 'bob', null, %s)",
                     [Jsonb(matchers), T0 + timedelta(hours=1), T0 - timedelta(hours=1)])
        row = conn.execute("select alerts.matching_silence(%s, %s)", [Jsonb(labels), T0]
                           ).fetchone()
    return row[0] is not None


@pytest.mark.parametrize(("matchers", "expected"), [
    ([m("device", "gh-01")], True),
    ([m("device", "gh-0")], False),
    # Alertmanager refuses a silence of negative matchers alone: they match missing labels.
    ([m("rule", "low_battery"), m("device", "gh-01", equal=False)], False),
    ([m("rule", "low_battery"), m("device", "gh-02", equal=False)], True),
    ([m("device", "gh-.*", regex=True)], True),
    ([m("device", "gh", regex=True)], False),  # anchored: the whole value must match
    ([m("rule", "low_.*", regex=True), m("device", "gh-0[0-9]", regex=True, equal=False)],
     False),
    ([m("rule", "low_battery"), m("tenant", "south|west", regex=True, equal=False)], True),
    ([m("device", "gh-01"), m("severity", "critical")], False),  # all must match
    ([m("device", "gh-01"), m("severity", "critical", equal=False)], True),
    ([m("team", "", equal=True), m("device", "gh-01")], True),  # missing label = ""
    ([m("team", ".+", regex=True)], False),
    ([m("alertname", "low_battery")], True),
])
def test_matchers_match_as_alertmanagers_do(conn: psycopg.Connection, matchers: list[dict],
                                            expected: bool) -> None:
    assert matching(conn, matchers) is expected


def test_a_silence_outside_its_window_matches_nothing(conn: psycopg.Connection) -> None:
    conn.execute("select alerts.silence(%s, %s, 'bob', 'later', %s)",
                 [Jsonb([m("device", "gh-01")]), T0 + timedelta(hours=2), T0 + timedelta(hours=1)])
    at = conn.execute("select alerts.matching_silence(%s, %s)", [Jsonb(LABELS), T0]).fetchone()
    inside = conn.execute("select alerts.matching_silence(%s, %s)",
                          [Jsonb(LABELS), T0 + timedelta(minutes=90)]).fetchone()
    assert at == (None,) and inside[0] is not None


@pytest.mark.parametrize(("matchers", "message"), [
    ([], "at least one matcher"),
    ([m("team", "", equal=True)], "all match the empty string"),
    ([m("team", ".*", regex=True)], "all match the empty string"),
    ([m("device", "gh-01", equal=False)], "all match the empty string"),
    ([m("9lives", "x")], "no valid label name"),
    ([{"name": "device"}], "has no value"),
])
def test_invalid_silences_are_refused_with_the_reason(conn: psycopg.Connection,
                                                      matchers: list, message: str) -> None:
    with pytest.raises(psycopg.errors.RaiseException, match=message):
        conn.execute("select alerts.silence(%s, now() + interval '1 hour', 'bob')",
                     [Jsonb(matchers)])


def test_an_invalid_regular_expression_is_refused_when_the_silence_is_made(
    conn: psycopg.Connection,
) -> None:
    with pytest.raises(psycopg.errors.InvalidRegularExpression):
        conn.execute("select alerts.silence(%s, now() + interval '1 hour', 'bob')",
                     [Jsonb([m("device", "gh-(", regex=True)])])


def test_the_old_object_form_still_creates_equality_matchers(conn: psycopg.Connection) -> None:
    conn.execute("select alerts.silence('{\"device\": \"gh-01\", \"rule\": \"low_battery\"}',"
                 " now() + interval '1 hour', 'bob')")
    assert conn.execute("select matchers from alerts.silences").fetchone()[0] == [
        m("device", "gh-01"), m("rule", "low_battery")]


def test_migration_0075_turns_old_silences_into_matchers_that_mute_the_same(
    empty_db_url: str,
) -> None:
    migrate.apply(empty_db_url)
    rolled = []
    while "0075.alter_alert_silences_matchers" not in rolled:
        rolled += migrate.rollback(empty_db_url, count=1)
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        conn.execute("insert into alerts.silences (matchers, ends_at, created_by)"
                     " values ('{\"device\": \"gh-01\", \"tenant\": \"north\"}',"
                     " now() + interval '1 hour', 'old')")
    migrate.apply(empty_db_url)
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        [(matchers,)] = conn.execute("select matchers from alerts.silences").fetchall()
        assert matchers == [m("device", "gh-01"), m("tenant", "north")]
        hit = conn.execute("select alerts.matching_silence(%s, now())", [Jsonb(LABELS)]
                           ).fetchone()[0]
        miss = conn.execute("select alerts.matching_silence(%s, now())",
                            [Jsonb({**LABELS, "tenant": "south"})]).fetchone()[0]
    assert hit is not None and miss is None


def test_the_runner_and_the_views_honour_regex_and_negative_silences(
    db_url: str, conn: psycopg.Connection,
) -> None:
    only_rules(conn, "low_battery")
    set_rule(conn, "low_battery", for_interval=timedelta(0))
    for key in ("gh-01", "gh-02", "lab-01"):
        device(conn, key, "battery")
        reading(conn, key, SOC, T0, 10)
    refresh_rollups(conn)
    cli = CliRunner()
    env = {"DATABASE_URL": db_url}
    result = cli.invoke(main, ["alerts", "silence", "--match", 'device=~"gh-.*"',
                               "--match", "device!=gh-02", "--for", "1000d", "--by", "bob",
                               "--comment", "greenhouse maintenance"], env=env)
    assert result.exit_code == 0, result.output
    assert 'device=~"gh-.*", device!="gh-02"' in result.output
    conn.execute("update alerts.silences set starts_at = %s", [T0 - timedelta(hours=1)])
    conn.execute("select alerts.evaluate(%s)", [T0])
    muted = dict(conn.execute("select payload -> 'labels' ->> 'device', silence_id is not null"
                              " from alerts.notifications").fetchall())
    assert muted == {"gh-01": True, "gh-02": False, "lab-01": False}
    silenced = dict(conn.execute("select subject, is_silenced from alerts.active_alerts"
                                 ).fetchall())
    assert silenced == muted
    result = cli.invoke(main, ["alerts", "silences", "--json"], env=env)
    assert result.exit_code == 0, result.output
    [listed] = json.loads(result.output)
    assert listed["state"] == "active" and listed["created_by"] == "bob"
    assert listed["comment"] == "greenhouse maintenance"
    assert listed["matching_open_alerts"] == 1
    text = cli.invoke(main, ["alerts", "silences"], env=env).output
    assert 'device=~"gh-.*"' in text
    result = cli.invoke(main, ["alerts", "silence", "--match", "device=~gh-(", "--for", "1h",
                               "--by", "bob"], env=env)
    assert result.exit_code == 2 and "regular expression" in result.output
    result = cli.invoke(main, ["alerts", "silence", "--match", "device~gh", "--for", "1h",
                               "--by", "bob"], env=env)
    assert result.exit_code == 2 and "LABEL=~REGEX" in result.output


label_names = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,10}", fullmatch=True)
label_values = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)


@given(name=label_names, value=label_values, regex=st.booleans(), equal=st.booleans())
def test_rendered_matchers_parse_back_to_themselves(name: str, value: str, regex: bool,
                                                    equal: bool) -> None:
    matcher = m(name, value, regex, equal)
    assert parse_matcher(render_matcher(matcher)) == matcher


def test_unquoted_matchers_parse_like_amtool() -> None:
    assert parse_matcher("severity!=info") == m("severity", "info", equal=False)
    assert parse_matcher("tenant!~test|dev") == m("tenant", "test|dev", True, False)
    assert parse_matcher("device = gh-01") == m("device", "gh-01")
    with pytest.raises(ValueError, match=re.escape("LABEL!=VALUE")):
        parse_matcher("=x")


def _compiles(pattern: str) -> bool:
    try:
        re.compile(pattern)
    except re.error:
        return False
    return True


regex_parts = st.sampled_from(["a", "b", "-", ".", ".*", "a+", "b?", "[ab]", "[^a]", "(a|b)",
                               "|", "x{1,2}", "\\d", "gh-", "(gh|lab)-0[0-9]"])
patterns = st.lists(regex_parts, max_size=5).map("".join).filter(_compiles)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pattern=patterns, value=st.text("abx-gh0l19", max_size=7), equal=st.booleans())
def test_regex_matchers_agree_with_a_reference_of_alertmanagers_anchored_match(
    conn: psycopg.Connection, pattern: str, value: str, equal: bool,
) -> None:
    # Alertmanager (Go RE2) matches ^(?:pattern)$; Python's fullmatch is the reference here.
    expected = (re.fullmatch(f"(?:{pattern})", value) is not None) == equal
    got = conn.execute("select _tsfleet.label_matches(%s, %s)",
                       [value, Jsonb(m("device", pattern, regex=True, equal=equal))]).fetchone()
    assert got[0] is expected
