"""Ray on Slurm: ``python -m launch.slurm [options] OVERRIDES...`` submits proxysweep.sbatch."""
