"""Wait until a Ray cluster has the expected number of live nodes, then list them.

The Slurm batch script runs this between starting the Ray nodes and starting the sweep,
so the driver plans its actors on the whole allocation instead of on whichever nodes
happened to join first, and a node that never joins fails the job after ``--timeout``
instead of leaving it idle. It is run by path (not as a module) so it needs only Ray.
Token authentication is as the job's environment says (RAY_AUTH_MODE, RAY_AUTH_TOKEN_PATH).
"""
from __future__ import annotations

import argparse
import os
import sys
import time


def alive_nodes() -> list[dict]:
    import ray

    return [n for n in ray.nodes() if n.get("Alive")]


def describe(node: dict) -> str:
    res = node.get("Resources", {})
    return (f"{node['NodeManagerAddress']} ({node.get('NodeManagerHostname', '?')}): "
            f"{res.get('CPU', 0):g} CPU, {res.get('GPU', 0):g} GPU")


def wait_for_nodes(address: str, expected: int, timeout: float, poll: float = 1.0) -> list[dict]:
    """The live nodes once there are ``expected`` of them; TimeoutError otherwise."""
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(address=address, log_to_driver=False, logging_level="WARNING")
    try:
        deadline = time.monotonic() + timeout
        while True:
            nodes = alive_nodes()
            if len(nodes) >= expected:
                return nodes
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{len(nodes)} of {expected} Ray nodes joined in {timeout:g}s: "
                                   + "; ".join(describe(n) for n in nodes))
            time.sleep(poll)
    finally:
        ray.shutdown()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", required=True, help="GCS address of the head, HOST:PORT")
    parser.add_argument("--nodes", type=int, required=True, help="how many live nodes to wait for")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds before giving up")
    args = parser.parse_args(argv)
    try:
        nodes = wait_for_nodes(args.address, args.nodes, args.timeout)
    except TimeoutError as exc:
        print(f"wait_for_nodes: {exc}", file=sys.stderr)
        return 1
    print(f"Ray cluster at {args.address} has {len(nodes)} node(s):", flush=True)
    for node in sorted(nodes, key=lambda n: n["NodeManagerAddress"]):
        print(f"  {describe(node)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
