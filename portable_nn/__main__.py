"""``python -m portable_nn``: print the device report."""

from .backends import device_report

print(device_report())
