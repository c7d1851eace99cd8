"""Speed benchmarks: portable_nn against a hand-written NumPy/CuPy MLP and PyTorch.

Run ``python -m benchmarks.run --device cpu --quick``; see ``benchmarks/run.py``.
"""
