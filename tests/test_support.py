"""Support operations: `user show / untrust / reset`, in the API and on the command line,
against a real sqlite store and a real Parquet audit root."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest

from riskengine import Engine
from riskengine.apps.cli import main
from riskengine.testing import CHROME_WIN, IPHONE, PARIS, establish, make_attempt, offline_settings


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "riskengine.toml"
    path.write_text(
        f'[geo]\ncity_db = ""\n[store]\nurl = "sqlite:///{tmp_path / "profiles.db"}"\n'
        f'[audit]\nroot = "{tmp_path / "audit"}"\nflush_seconds = 0.2\n')
    return path


def _engine(tmp_path: Path) -> Engine:
    return Engine(offline_settings(store={"url": f"sqlite:///{tmp_path / 'profiles.db'}"},
                                   audit={"root": str(tmp_path / "audit"), "flush_seconds": 0.2}))


def _admin_rows(root: Path) -> list[tuple[str, str | None, str, str]]:
    return duckdb.connect().sql(
        f"SELECT operation, device_key, actor, note FROM read_parquet('{root}/admin/**/*.parquet') "
        "ORDER BY event_time").fetchall()


def test_summary_explains_a_challenge(tmp_path: Path) -> None:
    with _engine(tmp_path) as engine:
        last = establish(engine, "alice", days=6)
        challenged = engine.score(make_attempt("alice", last + timedelta(days=1), PARIS, IPHONE))
        assert challenged.action == "challenge"
        summary = engine.user_summary("alice", now=last + timedelta(days=1, minutes=1))
    assert summary["known"] and summary["logins"] == 6
    assert [d["logins"] for d in summary["devices"]] == [6]
    # the challenge was never verified, so the profile knows only the established device
    established = summary["recent_decisions"][1]
    assert established["action"] == "allow"
    assert [d["device_key"] for d in summary["devices"]] == [established["device_key"]]
    assert challenged.device_key != established["device_key"]
    assert [c["country"] for c in summary["countries"]] == ["GB"]
    decisions = summary["recent_decisions"]
    assert len(decisions) == 7  # every decision of this user, newest first
    newest = decisions[0]
    assert newest["action"] == "challenge" and newest["decision_id"] == challenged.decision_id
    assert set(newest["reasons"]) >= {"NEW_DEVICE", "NEW_COUNTRY"}
    assert newest["country"] == "FR"
    assert "alice" not in json.dumps(summary["recent_decisions"])  # audit rows are pseudonymised


def test_untrust_withdraws_trust_and_is_audited(tmp_path: Path) -> None:
    with _engine(tmp_path) as engine:
        last = establish(engine, "bob", days=4)
        ts = last + timedelta(days=1)
        d = engine.score(make_attempt("bob", ts, PARIS, IPHONE))
        token = engine.record_outcome(d.decision_id, "verified", channels=["sms"], trust_device=True,
                                      timestamp=ts + timedelta(seconds=20))
        now = ts + timedelta(minutes=5)
        trusted = [x for x in engine.user_summary("bob", now=now)["devices"] if x["trusted"]]
        assert len(trusted) == 1 and trusted[0]["device_key"].startswith("t:")  # the token's device
        token_device = trusted[0]["device_key"]
        again = engine.score(make_attempt("bob", ts + timedelta(minutes=4), PARIS, IPHONE, device_token=token))
        assert again.device_key == token_device

        assert engine.untrust("bob", token_device, actor="sam", reason="ticket 42: lost phone",
                              now=now) == 1
        summary = engine.user_summary("bob", now=now)
        assert not any(x["trusted"] for x in summary["devices"])
        assert len(summary["devices"]) == 3  # browser families + the token device: known, not trusted
        revoked = engine.score(make_attempt("bob", ts + timedelta(minutes=6), PARIS, IPHONE, device_token=token))
        assert "DEVICE_TOKEN_INVALID" in revoked.reason_codes and "TRUSTED_DEVICE" not in revoked.reason_codes
        assert summary["admin_actions"][0]["operation"] == "untrust"
        assert summary["admin_actions"][0]["actor"] == "sam"
        with pytest.raises(ValueError, match="actor"):
            engine.untrust("bob", actor=" ", reason="x")
    assert _admin_rows(tmp_path / "audit") == [("untrust", token_device, "sam", "ticket 42: lost phone")]


def test_unlock_re_enables_a_locked_out_user(tmp_path: Path) -> None:
    with _engine(tmp_path) as engine:
        last = establish(engine, "erin", days=4)
        ts = last + timedelta(days=1)
        for i in range(10):
            engine.record_failure("erin", "203.0.113.9", ts + timedelta(seconds=i))
        locked = engine.score(make_attempt("erin", ts + timedelta(minutes=1), ip="81.2.69.160"))
        assert locked.action == "deny" and "FAILED_ATTEMPTS_EXCESSIVE" in locked.reason_codes
        engine.unlock_user("erin", actor="sam", reason="ticket 44", now=ts + timedelta(minutes=2))
        after = engine.user_summary("erin", now=ts + timedelta(minutes=3))
        assert after["known"] and after["logins"] == 4 and after["failed_passwords_in_window"] == 0
        again = engine.score(make_attempt("erin", ts + timedelta(minutes=3), ip="81.2.69.160"))
        assert again.action == "allow"  # the profile (history, devices) is untouched
    assert ("unlock", None, "sam", "ticket 44") in _admin_rows(tmp_path / "audit")


def test_reset_erases_the_profile_and_steps_up_until_verified(tmp_path: Path) -> None:
    with _engine(tmp_path) as engine:
        last = establish(engine, "carol", days=4)
        ts = last + timedelta(days=1)
        for i in range(10):
            engine.record_failure("carol", "203.0.113.9", ts + timedelta(seconds=i))
        locked = engine.score(make_attempt("carol", ts + timedelta(minutes=1), ua=CHROME_WIN,
                                           ip="81.2.69.160"))
        assert locked.action == "deny" and "FAILED_ATTEMPTS_EXCESSIVE" in locked.reason_codes
        summary = engine.user_summary("carol", now=ts + timedelta(minutes=2))
        assert summary["failed_passwords_in_window"] == 10

        assert engine.reset_user("carol", actor="sam", reason="verified by phone, ticket 43",
                                 now=ts + timedelta(minutes=2)) is True
        after = engine.user_summary("carol", now=ts + timedelta(minutes=3))
        assert after["logins"] == 0 and after["devices"] == [] and after["reset_at"]
        assert after["failed_passwords_in_window"] == 10  # counters are unlock_user's job
        engine.unlock_user("carol", actor="sam", reason="ticket 43", now=ts + timedelta(minutes=3))
        again = engine.score(make_attempt("carol", ts + timedelta(minutes=3), ip="81.2.69.160"))
        assert again.action == "challenge" and "PROFILE_RESET" in again.reason_codes
        engine.record_outcome(again.decision_id, "verified", timestamp=ts + timedelta(minutes=4))
        later = engine.score(make_attempt("carol", ts + timedelta(minutes=5), ip="81.2.69.160"))
        assert "PROFILE_RESET" not in later.reason_codes


def test_cli_show_untrust_reset(tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with _engine(tmp_path) as engine:
        last = establish(engine, "dana", days=3)
        d = engine.score(make_attempt("dana", last + timedelta(days=1), PARIS, IPHONE))
        engine.record_outcome(d.decision_id, "verified", trust_device=True,
                              timestamp=last + timedelta(days=1, seconds=30))

    assert main(["user", "show", "dana", "--config", str(config), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["logins"] == 4 and len(shown["recent_decisions"]) == 4

    assert main(["user", "show", "dana", "--config", str(config)]) == 0
    text = capsys.readouterr().out
    assert "accepted logins: 4" in text and "challenge" in text and "NEW_COUNTRY" in text

    assert main(["user", "untrust", "dana", "--device", "nope", "--actor", "sam", "--reason", "x",
                 "--config", str(config)]) == 1
    assert "not known" in capsys.readouterr().err
    assert main(["user", "untrust", "dana", "--actor", "sam", "--reason", "ticket 7",
                 "--config", str(config)]) == 0
    assert "trust withdrawn" in capsys.readouterr().out
    assert main(["user", "reset", "dana", "--actor", "kim", "--reason", "ticket 8",
                 "--config", str(config)]) == 0
    assert "marked reset" in capsys.readouterr().out

    assert main(["user", "show", "dana", "--config", str(config), "--json"]) == 0
    after = json.loads(capsys.readouterr().out)
    assert not after["known"]
    assert [(a["operation"], a["actor"]) for a in after["admin_actions"]] == [("reset", "kim"),
                                                                              ("untrust", "sam")]
    assert main(["user", "reset", "dana", "--actor", "kim", "--reason", " ",
                 "--config", str(config)]) == 2  # a clear error, not a traceback
