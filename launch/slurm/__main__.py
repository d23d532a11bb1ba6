"""``python -m launch.slurm --nodes 4 --gpus-per-node 8 +sweep=nb201_all``: submit a sweep."""
import sys

from launch.slurm.submit import main

if __name__ == "__main__":
    sys.exit(main())
