"""The engine: one training step, its CUDA-graph recording, an epoch of steps, evaluation and prediction.

It knows models and devices; nothing in it knows about cases, repeats or results.
"""
