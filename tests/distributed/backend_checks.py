"""collectives.py, then training.py, in one 2-rank launch for one backend (argv[1]): starting
the processes (importing torch or JAX twice) costs more than the checks themselves.
``--no-float64`` leaves out the float64 training (JAX without its 64-bit mode)."""

from __future__ import annotations

import sys

import collectives
import training

if __name__ == "__main__":
    collectives.main(sys.argv[1])
    if "--no-float64" not in sys.argv[2:]:
        training.main(sys.argv[1])
