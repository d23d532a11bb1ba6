"""proxysweep's orchestrator: Hydra config -> plan -> Ray scorer actors -> Parquet -> reducer."""

__version__ = "0.1.0"
