"""The apps layer: the ``riskengine`` command line, the demo and the dashboard launcher."""
