"""The `riskengine` command line as a whole: help and defaults on every option, --version,
exit statuses, one-line errors, --format inference, --json, progress, lazy imports and the
extras each command names. Commands run in-process through ``main(argv)``; exit statuses,
tracebacks and imports are checked in a real subprocess."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

import riskengine
from riskengine.apps.cli import COMMANDS, build_parser, main
from riskengine.audit.parquet import ParquetSink
from riskengine.core.engine import Engine
from riskengine.offline.formats import infer_format
from riskengine.testing import establish, make_attempt, offline_settings

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("polars", "duckdb", "pyarrow", "sklearn", "streamlit", "altair", "matplotlib")
RBA_HEADER = ("index,Login Timestamp,User ID,Round-Trip Time [ms],IP Address,Country,Region,City,ASN,"
              "User Agent String,Browser Name and Version,OS Name and Version,Device Type,Login Successful,"
              "Is Attack IP,Is Account Takeover")
CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/120.0.0.0 Safari/537.36")


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k != "RISKENGINE_DEBUG"}
    full_env.update({"PYTHONPATH": str(REPO), **(env or {})})
    return subprocess.run([sys.executable, "-m", "riskengine", *args], capture_output=True, text=True,
                          env=full_env, timeout=120, check=False)


def _rba_csv(path: Path) -> Path:
    rows = [f"{10 + d},2020-02-0{3 + d} 09:00:00.000,alice,,81.2.69.160,GB,England,London,2856,\"{CHROME}\","
            "Chrome 120,Windows 10,desktop,True,False,False" for d in range(4)]
    path.write_text("\n".join([RBA_HEADER, *rows]) + "\n")
    return path


def _audit_root(root: Path) -> Path:
    for when in (datetime(2026, 1, 5, tzinfo=UTC),) * 3 + (datetime(2001, 1, 5, tzinfo=UTC),):
        with ParquetSink(root) as sink:
            sink.emit("conversions", {"event_time": when, "schema_version": 1, "experiment": "e", "user_key": "k"})
    return root


# ------------------------------------------------------------------------------ help and version
def _walk(parser: argparse.ArgumentParser, path: str = "riskengine"):  # type: ignore[no-untyped-def]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _walk(child, f"{path} {name}")
        else:
            yield path, parser, action


def test_every_option_has_help_and_every_default_is_shown() -> None:
    checked = 0
    for path, parser, action in _walk(build_parser(full=True)):
        if isinstance(action, argparse._HelpAction | argparse._VersionAction):
            continue
        name = "/".join(action.option_strings) or action.dest
        assert action.help and action.help.strip(), f"{path} {name}: no help text"
        rendered = parser._get_formatter()._expand_help(action)  # what --help prints for it
        flag = isinstance(action, argparse._StoreConstAction | argparse.BooleanOptionalAction)
        if action.option_strings and action.default is not None and not flag:
            assert "default" in rendered and str(action.default) in rendered, (
                f"{path} {name}: default {action.default!r} not shown in {rendered!r}")
        checked += 1
    assert checked > 74  # every command's options, not just the top level


def test_version() -> None:
    done = _run("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"riskengine {riskengine.__version__}"


def test_help_lists_every_command_with_its_extra_without_heavy_imports() -> None:
    code = ("import sys\nfrom riskengine.apps.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
            f"print('LOADED', sorted(m for m in {HEAVY!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert "LOADED []" in done.stdout
    listing = " ".join(done.stdout.split())
    for cmd in COMMANDS:
        assert cmd.name in listing and cmd.summary in listing
        assert f"[{','.join(cmd.extras)}]" in listing if cmd.extras else "[core]" in listing
    # the lazy listing is the full tree's listing
    assert build_parser(full=True).format_help() == build_parser(full=False).format_help()


def test_user_command_loads_no_analytics_stack_for_its_help() -> None:
    code = ("import sys\nfrom riskengine.apps.cli import main\n"
            "try:\n    main(['user', 'unlock', '--help'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
            f"print('LOADED', sorted(m for m in {HEAVY!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert "--actor" in done.stdout and "LOADED []" in done.stdout


def test_a_missing_extra_is_one_line_naming_the_install(tmp_path: Path) -> None:
    code = ("import sys\nsys.modules['duckdb'] = None  # as if riskengine[analytics] were not installed\n"
            "from riskengine.apps.cli import main\n"
            f"sys.exit(main(['report', '--root', {str(tmp_path)!r}]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, check=False)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("riskengine: error:")
    assert 'pip install "riskengine[analytics]"' in done.stderr and "Traceback" not in done.stderr


# ------------------------------------------------------------------------------ exit statuses
def test_exit_2_for_usage_errors(tmp_path: Path) -> None:
    done = _run("replay", "--no-such-flag")
    assert done.returncode == 2 and "required: IN, --out" in done.stderr
    done = _run("audit", "retain", "--root", str(tmp_path), "--older-than", "4 weeks")
    assert done.returncode == 2 and "--older-than" in done.stderr and "Traceback" not in done.stderr
    assert _run("evaluate", "--decisions", "d", "--labels", "l", "--target-stepup", "2").returncode == 2
    assert _run("simulate", "--out", str(tmp_path), "--start", "soon").returncode == 2
    done = _run("simulate", "--out", str(tmp_path), "--ato-share", "0.5")
    assert done.returncode == 2 and "--ato-share must be in 0..0.2" in done.stderr
    assert _run().returncode == 2  # no command: the help, on stderr


def test_exit_1_with_one_line_for_runtime_errors_and_traceback_on_request(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.csv")
    done = _run("replay", missing, "--format", "rba", "--out", str(tmp_path / "d.parquet"))
    assert done.returncode == 1
    assert done.stderr == f"riskengine: error: replay input {missing}: no such file\n"
    for debug in (("--debug",), ()):
        env = None if debug else {"RISKENGINE_DEBUG": "1"}
        done = _run(*debug, "replay", missing, "--format", "rba", "--out", str(tmp_path / "d.parquet"), env=env)
        assert done.returncode == 1 and "Traceback" in done.stderr and "FileNotFoundError" in done.stderr


@pytest.mark.parametrize("make", ["empty", "directory"])
def test_empty_file_or_directory_as_input_is_one_line(tmp_path: Path, make: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "in.csv"
    bad.mkdir() if make == "directory" else bad.write_text("")
    word = "is a directory" if make == "directory" else "is empty"
    commands = [
        ["replay", str(bad), "--out", str(tmp_path / "d.parquet")],
        ["replay", str(bad), "--format", "rba", "--out", str(tmp_path / "d.parquet")],
        ["evaluate", "--decisions", str(bad), "--labels", str(bad)],
        ["model", "train", "--events", str(bad), "--out", str(tmp_path / "m")],
        ["model", "train", "--root", str(tmp_path), "--labels", str(bad), "--out", str(tmp_path / "m")],
    ]
    for argv in commands:
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert err.startswith("riskengine: error:") and err.count("\n") == 1 and word in err, (argv, err)
    if make == "empty":  # a report root must be a folder
        assert main(["report", "--root", str(bad)]) == 1
        assert "is not a folder" in capsys.readouterr().err


# ------------------------------------------------------------------------------ --format inference
def test_format_inferred_from_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = _rba_csv(tmp_path / "logins.csv")
    assert infer_format(csv) == "rba"
    odd = _rba_csv(tmp_path / "logins.export")  # unknown suffix: the header row decides
    assert infer_format(odd) == "rba"
    native = tmp_path / "events.bin"
    pl.DataFrame({"event_id": [1]}).write_parquet(native)  # Parquet under any name
    assert infer_format(native) == "native"
    with pytest.raises(ValueError, match="without the RBA header"):
        infer_format(_write(tmp_path / "other.csv", "a,b\n1,2\n"))
    with pytest.raises(ValueError, match="give --format"):
        infer_format(_write(tmp_path / "notes.txt", "hello\n"))
    with pytest.raises(ValueError, match="not a Parquet file"):
        infer_format(_write(tmp_path / "fake.parquet", "index,User ID\n"))

    inferred, explicit = tmp_path / "inferred.parquet", tmp_path / "explicit.parquet"
    assert main(["replay", str(csv), "--out", str(inferred), "--no-baseline", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["format"] == "rba" and summary["logins"] == 4 and summary["rows"] == 4
    assert main(["replay", str(csv), "--format", "rba", "--out", str(explicit), "--no-baseline"]) == 0
    assert pl.read_parquet(inferred).equals(pl.read_parquet(explicit))
    assert main(["replay", str(tmp_path / "notes.txt"), "--out", str(explicit)]) == 1
    assert "give --format" in capsys.readouterr().err


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# ------------------------------------------------------------------------------ audit
def test_audit_retain_dry_run_drops_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _audit_root(tmp_path)
    old = root / "conversions" / "year=2001" / "month=01"
    before = sorted(p.name for p in old.iterdir())
    assert main(["audit", "retain", "--root", str(root), "--older-than", "18m", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would drop 1 partitions" in out and "conversions/year=2001/month=01" in out
    assert sorted(p.name for p in old.iterdir()) == before  # still there, segments untouched
    assert main(["audit", "retain", "--root", str(root), "--older-than", "18m", "--dry-run", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["dry_run"] is True and shown["dropped"] == ["conversions/year=2001/month=01"]
    assert old.is_dir()
    assert main(["audit", "retain", "--root", str(root), "--older-than", "18m", "--json"]) == 0
    done = json.loads(capsys.readouterr().out)
    assert done["dry_run"] is False and done["dropped"] == shown["dropped"] and not old.exists()


def test_audit_compact_json_and_progress(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _audit_root(tmp_path)
    assert main(["audit", "compact", "--root", str(root), "--no-rollups", "--json", "--progress"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)  # progress never mixes into stdout
    assert result["files_in"] == 3 and result["files_out"] == 1 and result["rows"] == 3
    assert "compacting partitions" in captured.err and "2/2" in captured.err.replace(" ", "")
    assert main(["audit", "compact", "--root", str(root), "--no-rollups", "--no-progress"]) == 0
    assert capsys.readouterr().err == ""  # and none when asked for none (or stderr is no terminal)


# ------------------------------------------------------------------------------ user
def test_user_commands_refuse_a_memory_store(monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("RISKENGINE_STORE_URL", raising=False)
    for argv in (["user", "show", "alice"], ["user", "reset", "alice", "--actor", "a", "--reason", "r"],
                 ["user", "unlock", "alice", "--actor", "a", "--reason", "r"]):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert err.startswith("riskengine: error:") and "memory://" in err and err.count("\n") == 1
    monkeypatch.setenv("RISKENGINE_STORE_URL", "memory://")
    assert main(["user", "untrust", "alice", "--actor", "a", "--reason", "r"]) == 1


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "riskengine.toml"
    path.write_text(f'[geo]\ncity_db = ""\n[store]\nurl = "sqlite:///{tmp_path / "profiles.db"}"\n'
                    f'[audit]\nroot = "{tmp_path / "audit"}"\nflush_seconds = 0.2\n')
    return path


def test_user_json_results(tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with Engine(offline_settings(store={"url": f"sqlite:///{tmp_path / 'profiles.db'}"})) as engine:
        establish(engine, "erin", days=2)
    assert main(["user", "untrust", "erin", "--actor", "sam", "--reason", "t1", "--config", str(config),
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "user_id": "erin", "operation": "untrust", "device": None, "devices_untrusted": 0}
    assert main(["user", "reset", "erin", "--actor", "sam", "--reason", "t2", "--config", str(config),
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["profile_existed"] is True
    assert main(["user", "reset", "erin", "--actor", "sam", "--reason", "t2", "--config", str(config),
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["profile_existed"] is False
    assert main(["user", "reset", "erin", "--actor", " ", "--reason", "t2", "--config", str(config)]) == 2
    assert "--actor must not be blank" in capsys.readouterr().err


def test_user_unlock_clears_failures_and_keeps_the_profile(tmp_path: Path, config: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    settings = offline_settings(store={"url": f"sqlite:///{tmp_path / 'profiles.db'}"})
    with Engine(settings) as engine:
        last = establish(engine, "fay", days=3)
        for k in range(6):
            engine.record_failure("fay", "203.0.113.9", last + timedelta(minutes=k + 1))
        now = last + timedelta(minutes=10)
        assert engine.user_summary("fay", now=now)["failed_passwords_in_window"] == 6
    assert main(["user", "unlock", "fay", "--actor", "kim", "--reason", "ticket 9", "--config", str(config),
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"user_id": "fay", "operation": "unlock"}
    with Engine(settings) as engine:
        summary = engine.user_summary("fay", now=now)
    assert summary["known"] and summary["failed_passwords_in_window"] == 0


def test_user_show_tells_a_reviewer_the_profile_was_seeded_by_a_signup(
        tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = offline_settings(store={"url": f"sqlite:///{tmp_path / 'profiles.db'}"},
                                audit={"root": str(tmp_path / "audit")})
    with Engine(settings) as engine:
        assert engine.record_signup(make_attempt("gus", device_id="gus-phone"))
        assert not engine.record_signup(make_attempt("gus", device_id="someone-else"))
    assert main(["user", "show", "gus", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "seeded by the account's signup session at 2026-03-02T09:00:00+00:00" in out
    assert "signup device" in out and "by record_signup: profile seeded by the account's signup session" in out
    assert "signup_refused device" in out and "already seeded by a signup" in out


# ------------------------------------------------------------------------------ model train progress
def test_model_train_progress_counts_every_input_row(tmp_path: Path) -> None:
    from riskengine.offline.model.dataset import build_dataset

    seen: list[int] = []
    frame = build_dataset(_rba_csv(tmp_path / "logins.csv"), fmt="rba", config=offline_settings(),
                          progress=seen.append)
    assert sum(seen) == 4 and frame.height == 4  # what `model train --progress` shows, batch by batch


# ------------------------------------------------------------------------------ evaluate --json
def test_evaluate_json_matches_the_evaluation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from riskengine.offline.evaluate import evaluate

    decisions = pl.DataFrame({
        "index": [0, 1, 2, 3, 4, 5], "decision": ["allow", "challenge", "allow", "challenge", "deny", ""],
        "risk_score": [0.1, 0.5, 0.2, 0.6, 0.97, 0.0]}, schema_overrides={"index": pl.Int64})
    labels = pl.DataFrame({
        "index": [0, 1, 2, 3, 4, 5], "is_attack": [False, False, False, True, True, True],
        "attack_family": [None, None, None, "stuffing", "stuffing", "stuffing"],
        "established": [True, True, False, True, True, False]}, schema_overrides={"index": pl.Int64})
    decisions.write_parquet(tmp_path / "d.parquet")
    labels.write_parquet(tmp_path / "l.parquet")
    argv = ["evaluate", "--decisions", str(tmp_path / "d.parquet"), "--labels", str(tmp_path / "l.parquet"),
            "--target-stepup", "0.5"]
    assert main([*argv, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    ev = evaluate(decisions, labels, 0.5)
    assert (shown["logins"], shown["legit"], shown["attacks"]) == (5, 3, {"stuffing": 2}) == (
        ev.logins, ev.legit, ev.attacks)
    assert shown["stepup_established"] == pytest.approx(0.5) and shown["catch"] == {"stuffing": 1.0}
    assert shown["operating_point"] == ev.table.to_dicts()
    _write(tmp_path / "d.csv", "index,decision\n1,allow\n")
    assert main(["evaluate", "--decisions", str(tmp_path / "d.csv"), "--labels", str(tmp_path / "l.parquet")]) == 1
    err = capsys.readouterr().err
    assert err == f"riskengine: error: --decisions {tmp_path / 'd.csv'} is not a Parquet file\n"


# ------------------------------------------------------------------------------ simulate → replay, as JSON
def test_simulate_json_then_replay_infers_native(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--out", str(tmp_path), "--users", "10", "--days", "1", "--warmup-days", "0",
                 "--format", "native", "--no-progress", "--json"]) == 0
    written = json.loads(capsys.readouterr().out)
    assert (written["users"], written["days"], written["warmup_days"]) == (10, 1, 0)
    events = Path(written["files"]["events"])
    assert events.is_file() and "rba" not in written["files"]
    assert main(["replay", str(events), "--out", str(tmp_path / "d.parquet"), "--no-progress", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["format"] == "native"
    assert summary["rows"] == pl.read_parquet(events).height == pl.read_parquet(tmp_path / "d.parquet").height


def test_simulate_ato_share_reaches_the_simulation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--ato-share`` is the Python API's ``SimulationConfig.ato_share`` (what the run used is
    echoed from the config it ran, and recorded in the manifest)."""
    assert main(["simulate", "--out", str(tmp_path), "--users", "10", "--days", "1", "--warmup-days", "0",
                 "--format", "native", "--no-progress", "--json", "--ato-share", "0.05"]) == 0
    assert json.loads(capsys.readouterr().out)["ato_share"] == 0.05
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["config"]["ato_share"] == 0.05


def test_user_command_without_a_trust_key_is_one_line(config: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("RISKENGINE_TRUST_SECRET_KEYS", raising=False)
    assert main(["user", "show", "alice", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("riskengine: error:") and err.count("\n") == 1
    assert "RISKENGINE_TRUST_SECRET_KEYS" in err
