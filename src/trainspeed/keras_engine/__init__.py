"""The seeds' own Keras code as engines: Keras 3 on TensorFlow, JAX or PyTorch, one case per process.

backends.py (what each needs, how its process is set up), seeds.py (the models as the seeds
write them), measure.py (a repeat, in the case's process), counts.py (the parent's counts).
"""
