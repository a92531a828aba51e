"""``python -m inference.deploy --version N``: put a model version into service, or back.

Replica after replica, each inference server loads version N beside the one it serves,
verifies it and swaps it in (the repository extension's RepositoryModelLoad); calls keep
being answered throughout. A target name that resolves to several addresses (a Compose
service with replicas, a headless Service) is every one of them. The first refusal stops
the rollout: that replica and those not yet reached keep the version they serve, and the
command exits 1 saying why. Once every replica serves N, ``--repository`` records N in
the repository's ``SERVING`` file, so a restarted server starts with it. Rolling back is
the same command with the previous version.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import grpc

from modeling.bundle import BundleError
from modeling.repository import Repository, check_version
from proto import inference_pb2 as pb
from proto import inference_pb2_grpc as pb_grpc

DEFAULT_TARGET = "localhost:8001"


def addresses(target: str) -> list[str]:
    """Every IPv4 ``host:port`` a ``[dns:///]host:port`` target resolves to (else itself).

    IPv4 only: ``localhost`` also resolves to ``::1``, where a server bound to 127.0.0.1
    does not listen.
    """
    target = target.removeprefix("dns:///")
    host, _, port = target.rpartition(":")
    try:
        infos = socket.getaddrinfo(host, int(port), socket.AF_INET, socket.SOCK_STREAM)
    except (OSError, ValueError):
        return [target]
    return list(dict.fromkeys(f"{info[4][0]}:{port}" for info in infos)) or [target]


def load(target: str, version: str, timeout_s: float) -> str:
    """Ask one server to serve ``version``; return the version it serves afterwards.

    Raises:
        grpc.RpcError: the server refused (its details say why) or could not be reached.

    """
    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        request = pb.RepositoryModelLoadRequest()
        request.parameters["version"].string_param = version
        stub.RepositoryModelLoad(request, timeout=timeout_s)
        metadata = stub.ModelMetadata(pb.ModelMetadataRequest(), timeout=timeout_s)
    return metadata.versions[0]


def build_parser() -> argparse.ArgumentParser:
    """The command's arguments."""
    parser = argparse.ArgumentParser(prog="python -m inference.deploy", description=__doc__)
    parser.add_argument("--version", required=True, help="the version to serve, e.g. 3")
    parser.add_argument(
        "--target",
        action="append",
        help="inference server host:port, repeatable (default: $INFERENCE_TARGET, else "
        f"{DEFAULT_TARGET}); a name with several addresses means each of them",
    )
    parser.add_argument(
        "--repository",
        type=Path,
        default=os.environ.get("INFERENCE_REPOSITORY") or None,
        help="model repository whose SERVING file records the version once every replica "
        "serves it (default $INFERENCE_REPOSITORY)",
    )
    parser.add_argument(
        "--timeout-s", type=float, default=120.0, help="per replica, default %(default)s"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Roll ``--version`` out to every target; 0 when all serve it, 1 on a refusal."""
    args = build_parser().parse_args(argv)
    try:
        version = check_version(args.version)
    except BundleError as error:
        print(f"deploy: {error}", file=sys.stderr)
        return 2
    targets = args.target or [os.environ.get("INFERENCE_TARGET") or DEFAULT_TARGET]
    replicas = [address for target in targets for address in addresses(target)]
    for replica in replicas:
        started = time.perf_counter()
        try:
            served = load(replica, version, args.timeout_s)
        except grpc.RpcError as error:
            print(
                f"deploy: {replica} refused version {version} ({error.code().name}): "
                f"{error.details()}; stopped, the replicas not reached keep their version",
                file=sys.stderr,
            )
            return 1
        print(f"deploy: {replica} serves version {served} ({time.perf_counter() - started:.1f} s)")
    if args.repository is not None:
        Repository(args.repository).set_serving(version)
        print(f"deploy: {args.repository}/SERVING = {version} (what restarted servers load)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
