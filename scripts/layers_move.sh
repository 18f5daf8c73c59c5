#!/usr/bin/env bash
# One-off: the issue #13 layer move (git mv). Kept for the record; docs/layout.md has the map.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
R=riskengine
mkdir -p $R/core/engine $R/core/model $R/offline/model $R/ops $R/apps/commands
for m in decision reasons config profile identity devicetoken policy writeback; do git mv $R/$m.py $R/core/$m.py; done
git mv $R/models.py $R/core/attempt.py
for d in signals enrich stores; do git mv $R/$d $R/core/$d; done
git mv $R/engine.py $R/core/engine/__init__.py
git mv $R/model/inference.py $R/core/model/inference.py
git mv $R/model/features.py $R/core/model/features.py
git mv $R/model/__init__.py $R/core/model/__init__.py
for m in train dataset compare sample metrics; do git mv $R/model/$m.py $R/offline/model/$m.py; done
git mv $R/model/cli.py $R/apps/commands/model.py
for m in replay evaluate baseline formats; do git mv $R/$m.py $R/offline/$m.py; done
git mv $R/simulate $R/offline/simulate
git mv $R/offline/simulate/cli.py $R/apps/commands/simulate.py
git mv $R/support.py $R/core/engine/support.py
git mv $R/audit/maintenance.py $R/ops/maintenance.py
git mv $R/audit/cli.py $R/apps/commands/audit.py
for m in cli cliutil demo dashboard_cli; do git mv $R/$m.py $R/apps/$m.py; done
