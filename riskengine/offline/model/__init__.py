"""Training the learned risk model (``[model]`` extra): dataset building, fitting, metrics,
comparison, the sample data set. Inference lives in :mod:`riskengine.core.model`."""
