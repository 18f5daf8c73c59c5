"""`riskengine report` through the real CLI (cli.main in-process and a subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from riskengine.apps.cli import main


def test_report_json_contract(audit_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--root", str(audit_root), "--json", "--min-samples", "3"]) == 0
    r = json.loads(capsys.readouterr().out)
    for key in ("logins", "challenge_rate", "challenge_success_rate", "fallback_rate", "deny_rate", "experiments"):
        assert key in r
    assert r["logins"] == 10 and r["challenge_rate"] == pytest.approx(0.4)
    e = r["experiments"]["signup_2fa"]
    assert e["control"] == "progressive" and e["srm_p_value"] == 1.0
    control, mfa = e["variants"]["progressive"], e["variants"]["mfa_at_signup"]
    for v in (control, mfa):
        assert {"n", "conversions", "rate", "lift", "lift_ci", "p_value"} <= set(v)
    assert control["lift"] is None and mfa["lift"] == pytest.approx(1.0)
    assert len(mfa["lift_ci"]) == 2 and mfa["lift_ci"][0] < 1.0 < mfa["lift_ci"][1]
    assert 0 < mfa["p_value"] < 1


def test_report_since_until_via_subprocess(audit_root: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "riskengine", "report", "--root", str(audit_root), "--json",
                          "--since", "2026-03-01", "--until", "2026-04-01"],
                         capture_output=True, text=True, check=True).stdout
    r = json.loads(out)
    assert r["logins"] == 9 and r["since"] == "2026-03-01T00:00:00+00:00"


def test_report_terminal_summary(audit_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--root", str(audit_root)]) == 0
    out = capsys.readouterr().out
    assert "challenge rate" in out and "40.0 %" in out
    assert "Experiment signup_2fa" in out and "not enough data" in out
    assert "challenge_success_rate: verified challenges" in out


def test_report_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--root", str(tmp_path / "missing")]) == 1  # runtime error; 2 is for usage
    assert "is not a folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["report", "--root", str(tmp_path), "--since", "yesterday"])
    assert "not an ISO date" in capsys.readouterr().err
