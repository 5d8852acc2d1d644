#!/usr/bin/env bash
# Installs what berth's build, tests and benchmarks need on Debian, as root.
# Rust itself (cargo >= 1.80) must already be there (rustup); Debian's own
# rustc is too old for the dependencies.
set -euo pipefail

packages=(
  busybox-static            # the test rootfs
  gcc libc6-dev             # the static syscall probe the seccomp tests build
  libseccomp-dev pkg-config # seccomp (next issue) links against libseccomp
  podman conmon netavark golang-github-containers-common # podman as a client of berth-runtime
  containerd                # ctr and containerd-shim-runc-v2 as a client
  containernetworking-plugins # bridge + host-local CNI plugins: pod networking of the CRI test (berth-runtime/tests/cri.rs)
  protobuf-compiler         # protoc: the k8s-cri crate (CRI test client) generates its code from the CRI proto
  docker.io                 # a real dockerd: Docker as a client of berth-runtime, the reference for the CLI
  runc crun                 # peers: podman needs a default runtime; benchmarks compare
  hyperfine python3 bc      # benchmarks
  docker-registry skopeo    # registry tests and bench: a loopback registry, a peer client
  buildah                   # build tests (golden image configs) and bench: the peer builder
  catatonit                 # podman pod create's infra (pause) process: bench/pod.sh's peer
  apache2-utils openssl     # htpasswd -B and a test CA for the TLS + basic auth test
  bsdutils util-linux procps iproute2 # script (ptys), unshare, pgrep, ip
  nftables                  # NAT and published ports (berth drives `nft -j`)
  iptables                  # netavark (buildah's and podman's RUN/run networking) calls it
  zsh fish man-db           # berth completion zsh|fish and man pages: crates/berth/tests/cli.rs loads and renders them
  docker-compose podman-compose # compose: crates/berth/tests/compose.rs compares config with docker-compose 1.29; bench/compose.sh runs both
  debootstrap               # the cached Debian base of the image round-trip tests (scripts/debian-base.sh)
  curl docker-compose python3-yaml # the quote-app: run-plain.sh and demo.sh fetch with curl; crates/berth/tests/quote_app.rs checks compose.yaml with docker-compose 1.29 and kube.yaml with python3-yaml
  passt uidmap              # rootless berth (crates/berth/tests/rootless.rs): pasta is its default network, newuidmap/newgidmap its user namespace
  slirp4netns               # rootless podman's default network: bench/rootless.sh's peer
  jq                        # compat (tests/compat/fidelity.txt): inspect's keys compared in order (keys_unsorted)
  # runtime-tools' validation suite (scripts/runtime-tools.sh, berth-runtime's
  # runtime_tools test), built offline: Debian's Go, the suite's libraries
  # and what they import; the validation programs are in tests/runtime-tools
  golang-go golang-github-opencontainers-runtime-tools-dev
  golang-github-google-uuid-dev golang-gocapability-dev
)

if ! command -v cargo >/dev/null; then
  echo "cargo not found: install Rust 1.80 or newer (rustup) first" >&2
  exit 1
fi
if [[ $(id -u) != 0 ]]; then
  echo "run as root: containers need it" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
