"""The offline layer: tools run on files, not in an auth service — replay, evaluate, the
Freeman baseline, the simulator and model training. Needs the ``[sim]`` / ``[model]`` extras."""
