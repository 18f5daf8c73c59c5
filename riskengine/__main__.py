from riskengine.apps.cli import main

raise SystemExit(main())
