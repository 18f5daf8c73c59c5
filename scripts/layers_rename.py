"""Rewrite riskengine module paths (dotted and slashed) after the issue #13 layer move.

Usage: python scripts/layers_rename.py FILE...
  e.g. git grep -lz riskengine -- . ':!scripts/layers_rename.py' ':!CHANGELOG.md' |
       xargs -0 python scripts/layers_rename.py
(CHANGELOG.md, docs/layout.md and this script are skipped: they must keep the old names).
Idempotent: new paths are left alone.
The map is the table in docs/layout.md; this script is how merges of older branches get fixed.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

# old -> new; longest first so a package does not eat its submodules
MAP: dict[str, str] = {
    "riskengine.model.inference": "riskengine.core.model.inference",
    "riskengine.model.features": "riskengine.core.model.features",
    "riskengine.model.train": "riskengine.offline.model.train",
    "riskengine.model.dataset": "riskengine.offline.model.dataset",
    "riskengine.model.compare": "riskengine.offline.model.compare",
    "riskengine.model.sample": "riskengine.offline.model.sample",
    "riskengine.model.metrics": "riskengine.offline.metrics",
    "riskengine.offline.model.metrics": "riskengine.offline.metrics",  # moved in a second step
    "riskengine.model.cli": "riskengine.apps.commands.model",
    "riskengine.model": "riskengine.core.model",
    "riskengine.models": "riskengine.core.attempt",
    "riskengine.decision": "riskengine.core.decision",
    "riskengine.reasons": "riskengine.core.reasons",
    "riskengine.config": "riskengine.core.config",
    "riskengine.profile": "riskengine.core.profile",
    "riskengine.identity": "riskengine.core.identity",
    "riskengine.devicetoken": "riskengine.core.devicetoken",
    "riskengine.policy": "riskengine.core.policy",
    "riskengine.writeback": "riskengine.core.writeback",
    "riskengine.signals": "riskengine.core.signals",
    "riskengine.enrich": "riskengine.core.enrich",
    "riskengine.stores": "riskengine.core.stores",
    "riskengine.engine": "riskengine.core.engine",
    "riskengine.simulate.cli": "riskengine.apps.commands.simulate",
    "riskengine.simulate": "riskengine.offline.simulate",
    "riskengine.replay": "riskengine.offline.replay",
    "riskengine.evaluate": "riskengine.offline.evaluate",
    "riskengine.baseline": "riskengine.offline.baseline",
    "riskengine.formats": "riskengine.offline.formats",
    "riskengine.support": "riskengine.core.engine.support",
    "riskengine.audit.maintenance": "riskengine.ops.maintenance",
    "riskengine.audit.cli": "riskengine.apps.commands.audit",
    "riskengine.cliutil": "riskengine.apps.cliutil",
    "riskengine.cli": "riskengine.apps.cli",
    "riskengine.demo": "riskengine.apps.demo",
    "riskengine.dashboard_cli": "riskengine.apps.dashboard_cli",
    # added by the operations-surface merge (issue #15): engine helpers live in core
    "riskengine.feedback": "riskengine.core.feedback",
    "riskengine.health": "riskengine.core.health",
    "riskengine.metrics": "riskengine.core.metrics",
    "riskengine.ratelimit": "riskengine.core.ratelimit",
    "riskengine.shadow": "riskengine.core.shadow",
}
# `from riskengine import X` for moved modules
FROM_IMPORTS = {"reasons": "riskengine.core", "support": "riskengine.core.engine", "replay": "riskengine.offline",
                "evaluate": "riskengine.offline", "baseline": "riskengine.offline", "simulate": "riskengine.offline"}

_NEW = set(MAP.values())


def _dotted(text: str) -> str:
    keys = sorted(MAP, key=len, reverse=True)
    # not preceded by a word char/dot (so riskengine.core.x is not rewritten twice), ends at a boundary
    pat = re.compile(r"(?<![\w.])(" + "|".join(re.escape(k) for k in keys) + r")(?![\w])")
    return pat.sub(lambda m: MAP[m.group(1)], text)


def _slashed(text: str) -> str:
    def path(mod: str) -> str:
        return mod.replace(".", "/")
    out = text
    keys = sorted(MAP, key=len, reverse=True)
    pat = re.compile(r"(?<![\w/.])(" + "|".join(re.escape(path(k)) for k in keys) + r")(\.py|/)")
    def sub(m: re.Match[str]) -> str:
        old = m.group(1).replace("/", ".")
        new = MAP[old]
        if new == "riskengine.core.engine" and m.group(2) == ".py":
            return "riskengine/core/engine/"  # a package now: the Engine facade and its parts
        return path(new) + m.group(2)
    return pat.sub(sub, out)


def _from_imports(text: str) -> str:
    def sub(m: re.Match[str]) -> str:
        name, rest = m.group(1), m.group(2) or ""
        return f"from {FROM_IMPORTS[name]} import {name}{rest}"
    return re.sub(r"from riskengine import (" + "|".join(FROM_IMPORTS) + r")\b(\s+as\s+\w+)?(?!\s*,)", sub, text)


# `from riskengine.model import compare` (a submodule of a package that was split)
SUBMODULE_IMPORTS = {f"from riskengine.core.model import {m}": f"from riskengine.offline.model import {m}"
                     for m in ("train", "dataset", "compare", "sample")}
SUBMODULE_IMPORTS["from riskengine.core.model import metrics"] = "from riskengine.offline import metrics"
SUBMODULE_IMPORTS["from riskengine.offline.model import metrics"] = "from riskengine.offline import metrics"
# names that moved between modules or were made public
NAME_MOVES = {
    "_native_batches": "native_batches",
    "_rba_batches": "rba_batches",
    "from riskengine.core.model.inference import export_parameters":
        "from riskengine.offline.model.export import export_parameters",
}


def rewrite(text: str) -> str:
    out = _from_imports(_slashed(_dotted(text)))
    for old, new in SUBMODULE_IMPORTS.items():
        out = re.sub(re.escape(old) + r"\b", new, out)
    for old, new in NAME_MOVES.items():
        out = re.sub(r"(?<!\w)" + re.escape(old) + r"\b", new, out)
    # an OpenTelemetry span attribute named like the old module, not a module path
    out = out.replace('"riskengine.core.reasons": list(', '"riskengine.reasons": list(')
    out = out.replace('attrs["riskengine.core.reasons"]', 'attrs["riskengine.reasons"]')
    return out


# history and the map itself keep the old names
SKIP = ("CHANGELOG.md", "docs/layout.md", "scripts/layers_rename.py")


def main(argv: list[str]) -> int:
    changed = 0
    for name in argv:
        p = Path(name)
        if p.as_posix().endswith(SKIP):
            continue
        try:
            old = p.read_text(encoding="utf-8")
        except (UnicodeDecodeError, IsADirectoryError, FileNotFoundError):
            continue
        new = rewrite(old)
        if new != old:
            p.write_text(new, encoding="utf-8")
            changed += 1
    print(f"rewrote {changed} files", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
