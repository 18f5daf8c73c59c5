"""`riskengine report`: the KPI summary of an audit root, in the terminal or as one JSON object."""

from __future__ import annotations

import math
from typing import Any

from riskengine.analytics.db import RATE_DEFINITIONS


def finite(value: Any) -> Any:
    """JSON has no NaN/Infinity: those become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def _pct(x: float | None, digits: int = 1) -> str:
    return "n/a" if x is None else f"{100 * x:.{digits}f} %"


def format_summary(r: dict[str, Any]) -> str:
    """The terminal summary of a :meth:`AuditDB.report` dict."""
    window = f"{r['since'] or r['data_from'] or '-'} .. {r['until'] or r['data_to'] or '-'}"
    lines = [
        f"Audit root {r['root']}   window {window}",
        "",
        f"  logins scored           {r['logins']:>12,}   users {r['users']:,}",
        f"  challenge rate          {_pct(r['challenge_rate']):>12}   ({r['challenged']:,} challenged "
        f"+ {r['denied']:,} denied)",
        f"  deny rate               {_pct(r['deny_rate']):>12}",
        f"  challenge success rate  {_pct(r['challenge_success_rate']):>12}   ({r['verified']:,} verified "
        f"of {r['challenges']:,} challenges)",
        f"  fallback rate           {_pct(r['fallback_rate']):>12}   ({r['fallbacks']:,} used a 2nd channel)",
        f"  failed passwords        {r['failures']:>12,}",
    ]
    shadow = r.get("shadow") or {}
    if shadow.get("shadow_logins"):
        lines += [
            "",
            f"Shadow policy ({', '.join(shadow['policy_versions']) or '-'}): would-be numbers, not enforced",
            f"  shadow logins           {shadow['shadow_logins']:>12,}",
            f"  would-be challenge rate {_pct(shadow['would_be_challenge_rate']):>12}   "
            f"({shadow['would_be_challenged']:,} challenged + {shadow['would_be_denied']:,} denied)",
            f"  would-be deny rate      {_pct(shadow['would_be_deny_rate']):>12}",
        ]
    for name, e in r["experiments"].items():
        lines += ["", f"Experiment {name}   control {e['control']}   SRM p={e['srm_p_value']:.3g}"
                  + ("   ** SAMPLE RATIO MISMATCH **" if e["srm_flag"] else "")
                  + ("" if e["enough_data"] else f"   (not enough data: < {e['min_samples']} per arm)")]
        lines.append(f"  {'variant':<20}{'n':>9}{'conv':>8}{'rate':>9}{'lift':>9}  {'95 % CI of lift':<20}"
                     f"{'p':>8}{'P(best)':>9}")
        for vname, v in e["variants"].items():
            ci = v["lift_ci"]
            ci_text = f"[{_pct(ci[0])}, {_pct(ci[1])}]" if ci else ""
            p = f"{v['p_value']:.3g}" if v["p_value"] is not None else ""
            beat = _pct(v["chance_to_beat_control"], 0) if v["chance_to_beat_control"] is not None else ""
            lift = _pct(v["lift"]) if v["lift"] is not None else ("control" if vname == e["control"] else "n/a")
            lines.append(f"  {vname:<20}{v['n']:>9,}{v['conversions']:>8,}{_pct(v['rate']):>9}{lift:>9}  "
                         f"{ci_text:<20}{p:>8}{beat:>9}")
    lines += ["", "Definitions:"] + [f"  {k}: {v}" for k, v in RATE_DEFINITIONS.items()]
    return "\n".join(lines)
