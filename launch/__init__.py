"""Ways to run proxysweep on clusters: Slurm submission, and manifests for containers and Kubernetes."""
