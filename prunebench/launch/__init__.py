"""Launchers: a protocol's grid on a cluster, as workers that share one results directory through their claims
(prunebench.run.leases). `slurm`: a SLURM job array through submitit, requeued on preemption and timeout."""

from prunebench.launch.slurm import SlurmLaunch, launch_slurm, launches, slurm_states

__all__ = ["SlurmLaunch", "launch_slurm", "launches", "slurm_states"]
