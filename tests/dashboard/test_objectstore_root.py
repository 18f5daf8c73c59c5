"""The dashboard on an ``s3://`` audit root (moto in server mode on loopback): the synthetic
root the real Engine wrote, uploaded as it is, shows the numbers counted independently."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from streamlit.testing.v1 import AppTest
from synthetic_audit import SyntheticAudit, expected

from riskengine.audit.objectstore import S3Root


def upload(local: SyntheticAudit, root: str) -> int:
    store = S3Root.parse(root)
    n = 0
    for path in sorted(local.root.rglob("*.parquet")):
        rel = path.relative_to(local.root).as_posix()
        if rel.startswith("_"):  # rollups and _meta: built on the bucket itself when wanted
            continue
        store.put(rel, path.read_bytes())
        n += 1
    return n


@pytest.mark.parametrize("page", ["views/overview.py", "views/challenges.py", "views/risk.py"])
def test_pages_render_the_same_numbers_from_an_s3_root(open_app: Callable[..., AppTest], synthetic: SyntheticAudit,
                                                        s3_root: str, page: str) -> None:
    assert upload(synthetic, s3_root) > 0
    at = open_app(page, root=s3_root)
    assert not at.exception, [e.value for e in at.exception]
    assert at.title
    if page == "views/overview.py":
        want = expected(synthetic)
        logins = [m.value for m in at.metric if m.label == "Logins"]
        rate = [m.value for m in at.metric if m.label == "Challenge rate"]
        assert logins == [f"{want['logins']:,}"]
        assert rate == [f"{want['challenge_rate'] * 100:.1f}%"]


def test_the_overview_reads_rollups_built_on_s3_and_shows_the_same_numbers(
        open_app: Callable[..., AppTest], synthetic: SyntheticAudit, s3_root: str) -> None:
    from riskengine.analytics.rollups import build_rollups, current_rollups

    assert upload(synthetic, s3_root) > 0
    store = S3Root.parse(s3_root)
    assert build_rollups(store).built == ["2026-03"]  # March 2026 has ended
    assert sorted(current_rollups(store)) == [202603]
    at = open_app("views/overview.py", root=s3_root)
    assert not at.exception, [e.value for e in at.exception]
    want = expected(synthetic)
    assert [m.value for m in at.metric if m.label == "Logins"] == [f"{want['logins']:,}"]
    assert [m.value for m in at.metric if m.label == "Challenge rate"] == [f"{want['challenge_rate'] * 100:.1f}%"]
