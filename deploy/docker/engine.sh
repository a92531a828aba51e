#!/bin/sh
# Name the container engine that can run here, the one place this is decided (Makefile,
# run_api.sh and tests/containers/ ask it): "docker" when a Docker engine answers, else
# "podman" when podman can run containers; exit 1 and print nothing when neither can.
#   engine.sh            -> docker | podman
#   engine.sh --compose  -> the compose command of that engine: "docker compose" | "podman-compose ..."
#   engine.sh --up       -> its `up` in the background: "up -d --wait" | "up -d --no-deps"
#
# podman-compose turns depends_on into `podman create --requires=<the trainer>`, and podman
# then refuses to restart a replica (restart policy or `podman restart`) because the
# one-shot trainer has exited: "some dependencies ... are not started". --no-deps drops
# that link (and the start order with it: docker-compose.yml's inference waits for the
# bundle itself). podman 4.3 runs no HEALTHCHECK, hence no --wait: poll /readyz.
# podman-compose builds OCI images, which drop the Dockerfiles' HEALTHCHECK (and say so
# once per image): --format=docker keeps it, as `make images` does, for engines that run it.
set -eu
if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    engine=docker compose="docker compose" up="up -d --wait"
elif command -v podman >/dev/null 2>&1 && podman info >/dev/null 2>&1; then
    engine=podman compose="podman-compose --podman-build-args=--format=docker" up="up -d --no-deps"
else
    exit 1
fi
case "${1:-}" in
    --compose) echo "$compose" ;;
    --up) echo "$up" ;;
    *) echo "$engine" ;;
esac
