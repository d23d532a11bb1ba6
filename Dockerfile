# proxysweep for GPU clusters: the CUDA build of the pinned torch, the project, and the rest
# of requirements.txt. One image serves as Ray head, Ray worker (KubeRay overrides the
# command with `ray start ...`) and sweep driver.
#
#   docker build -t proxysweep:0.1.0 .
#   docker run --gpus all --shm-size=8g -v /path/to/data:/data -v /path/to/results:/results \
#       proxysweep:0.1.0 +sweep=nb201_all out_dir=/results/nb201_all
#
# TORCH_CUDA picks the PyTorch wheel index (cu126, cu128, cu130, ...): choose one that the
# cluster's NVIDIA driver supports and that publishes torch==TORCH_VERSION.
FROM python:3.11-slim-bookworm

ARG TORCH_VERSION=2.13.0
ARG TORCH_CUDA=cu128

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    RAY_USAGE_STATS_ENABLED=0 \
    PROXYSWEEP_DATA=/data

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# wget: KubeRay's health probes call it; procps: Ray's process tools use ps. Debian's
# security updates replace old package versions, so exact apt pins would break rebuilds.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends wget procps \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/proxysweep

# The large, rarely changing layer first: torch from the CUDA index. requirements.txt pins
# the same version, which the CUDA build (2.13.0+cuXXX) satisfies, so pip keeps it.
RUN pip install --no-cache-dir --index-url "https://download.pytorch.org/whl/${TORCH_CUDA}" "torch==${TORCH_VERSION}" \
    && python -c "import torch, sys; sys.exit(torch.version.cuda is None)"

COPY requirements.txt ./
RUN pip install --no-cache-dir --requirement requirements.txt \
    && python -c "import torch; assert torch.version.cuda, 'requirements.txt replaced the CUDA build of torch'"

# Editable, as setup.sh does: Hydra finds conf/ beside the orchestrator package.
COPY pyproject.toml README.md ./
COPY conf ./conf
COPY orchestrator ./orchestrator
COPY proxies ./proxies
COPY spaces ./spaces
COPY searches ./searches
COPY benchdata ./benchdata
COPY launch ./launch
COPY proxysweep ./proxysweep
RUN pip install --no-cache-dir --no-deps --editable . \
    && useradd --create-home --uid 1000 proxysweep \
    && mkdir -p /data /results \
    && chown proxysweep /results

USER 1000
VOLUME ["/data", "/results"]
ENTRYPOINT ["python", "-m", "orchestrator"]
CMD ["--help"]
