"""`python -m prunebench` (and `torchrun -m prunebench`): the command line."""

from prunebench.cli import main

main()
