#!/usr/bin/env bash
# opencontainers/runtime-tools' validation suite against OCI runtimes, side by
# side: builds the suite once, runs every validation/*.t against each runtime
# with a deadline per file, and prints one table (ok / not ok per file).
#
#   scripts/runtime-tools.sh build
#   scripts/runtime-tools.sh run [--jobs N] [--timeout SECS] [--out DIR]
#                                [--only NAME,NAME] [LABEL=RUNTIME ...]
#
# Without LABEL=RUNTIME arguments `run` compares runc=$(command -v runc) with
# berth=target/debug/berth-runtime. Each runtime's results are left in
# OUT/LABEL/NAME.{tap,err,rc} (rc: the .t file's exit code, 124 on its
# deadline); crates/berth-runtime/tests/runtime_tools.rs reads them.
#
# Where the suite comes from, offline: CI reaches Debian's mirror but not
# GitHub nor the Go module proxy. Debian ships the suite's libraries
# (golang-github-opencontainers-runtime-tools-dev, upstream commit 0105384,
# in /usr/share/gocode) and all their dependencies, but not the validation
# programs nor cmd/runtimetest; Debian's source tarball is not on the mirror
# either. Those programs (and tap-go, which Debian lacks) are kept in
# tests/runtime-tools/src at the same commit, unmodified; this script lays
# them over Debian's tree in a GOPATH and builds with GO111MODULE=off and
# GOPROXY=off: nothing is downloaded. The rootfs the suite unpacks for each
# container (upstream ships a Gentoo busybox tarball) is made from Debian's
# busybox-static the same way: /bin/busybox, its applet links, /etc/passwd,
# /etc/group, and empty /dev, /proc, /sys.
#
# The runs: the .t files use fixed cgroup paths (/cgrouptest), so those that
# touch cgroups run one after another (all runtimes in turn); the others run
# --jobs at a time. Each .t runs in its own TMPDIR (bundles go there) and
# in a private mount namespace of its own, which is "the runtime's" for the
# suite: linux_ns_itype asks for a container without a mount namespace, and
# runc then makes every mount from / down a slave and mounts /proc, /dev,
# /sys under the bundle in the namespace it runs in, and leaves them there.
# In the .t's namespace, they end with it and the host's mounts keep their
# propagation (what berth does there is checked on the host by its
# lifecycle test).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
src=$repo/tests/runtime-tools/src
cache=${RUNTIME_TOOLS_DIR:-${CARGO_TARGET_DIR:-$repo/target}/runtime-tools}
gocode=/usr/share/gocode/src
import=github.com/opencontainers/runtime-tools

die() {
  echo "runtime-tools.sh: $*" >&2
  exit 1
}

# What the built suite depends on: our sources, this script (the rootfs),
# Debian's library package and the Go toolchain. A change to any rebuilds it.
build_key() {
  {
    (cd "$src" && find . -type f -print0 | sort -z | xargs -0 sha256sum)
    sha256sum <"$repo/scripts/runtime-tools.sh"
    dpkg-query -W -f '${Package} ${Version}\n' \
      golang-github-opencontainers-runtime-tools-dev busybox-static
    go version
  } | sha256sum | cut -d' ' -f1
}

build() {
  command -v go >/dev/null || die "go not found: apt-get install golang-go (scripts/install-deps.sh)"
  [[ -d $gocode/$import/generate ]] ||
    die "$gocode/$import missing: apt-get install golang-github-opencontainers-runtime-tools-dev"
  [[ -x /bin/busybox ]] || die "/bin/busybox missing: apt-get install busybox-static"
  mkdir -p "$cache"
  # One build at a time (parallel test processes share the cache).
  exec 9>"$cache/.lock"
  flock 9
  local key
  key=$(build_key)
  if [[ -f $cache/suite/.key && $(<"$cache/suite/.key") == "$key" ]]; then
    return 0
  fi
  local gopath=$cache/gopath tree=$cache/gopath/src/$import
  rm -rf "$gopath" "$cache/suite.tmp"
  mkdir -p "$tree" "$gopath/src/github.com/mndrix" "$cache/suite.tmp/validation"
  cp -r "$gocode/$import/." "$tree/"
  cp -r "$src/validation" "$src/cmd" "$tree/"
  cp -r "$src/tap-go" "$gopath/src/github.com/mndrix/tap-go"

  local names=()
  for d in "$tree"/validation/*/; do
    d=${d%/}
    [[ ${d##*/} == util ]] || names+=("${d##*/}")
  done
  (
    cd "$tree"
    export GO111MODULE=off GOPROXY=off GOFLAGS= GOPATH="$gopath:/usr/share/gocode" \
      GOCACHE="$cache/gocache"
    # runtimetest runs inside the busybox rootfs: static.
    CGO_ENABLED=0 go build -o "$cache/suite.tmp/runtimetest" ./cmd/runtimetest
    # One go build for all: it compiles the shared packages once and links
    # the programs in parallel. Each lands in DIR/NAME.
    go build -o "$cache/suite.tmp/validation/" "${names[@]/#/./validation/}"
  )
  for n in "${names[@]}"; do
    mv "$cache/suite.tmp/validation/$n" "$cache/suite.tmp/validation/$n.t"
  done
  make_rootfs "$cache/suite.tmp/rootfs-amd64.tar.gz"
  echo "$key" >"$cache/suite.tmp/.key"
  rm -rf "$cache/suite"
  mv "$cache/suite.tmp" "$cache/suite"
  echo "runtime-tools: built ${#names[@]} validation programs in $cache/suite" >&2
}

make_rootfs() {
  local out=$1 root
  root=$(mktemp -d)
  # tar restores this mode on each bundle, which is also the container's
  # root ("."): a process of another user must be able to enter it.
  chmod 755 "$root"
  mkdir -p "$root"/{bin,dev,etc,proc,sys}
  cp /bin/busybox "$root/bin/busybox"
  local applet
  for applet in $(/bin/busybox --list); do
    [[ $applet == busybox ]] || ln -s busybox "$root/bin/$applet"
  done
  printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' 'bin:x:1:1:bin:/bin:/bin/false' \
    'daemon:x:2:2:daemon:/sbin:/bin/false' 'nobody:x:65534:65534:nobody:/var/empty:/bin/false' \
    >"$root/etc/passwd"
  printf '%s\n' 'root:x:0:root' 'bin:x:1:root,bin,daemon' 'daemon:x:2:root,bin,daemon' \
    'tty:x:5:' 'users:x:100:' 'nobody:x:65534:' >"$root/etc/group"
  tar --numeric-owner --owner=0 --group=0 -czf "$out" -C "$root" .
  rm -rf "$root"
}

# Files that use the suite's fixed cgroup paths.
uses_cgroups() {
  [[ $1 == linux_cgroups_* || $1 == delete_resources || $1 == delete_only_create_resources ]]
}

# run_one LABEL RUNTIME NAME: one .t file against one runtime.
run_one() {
  local label=$1 runtime=$2 name=$3
  local res=$out/$label tmp
  tmp=$(mktemp -d "$out/tmp.$label.$name.XXXXXX")
  # The bundles below must be reachable by a container's root mapped to
  # another uid (linux_uid_mappings) or another user (process_user).
  chmod 755 "$tmp"
  local rc=0
  # The suite finds runtimetest and the rootfs tarball in its working dir.
  (cd "$cache/suite" && TMPDIR=$tmp RUNTIME=$runtime \
    timeout -k 5 "$timeout" unshare --mount --propagation private \
    "./validation/$name.t" </dev/null >"$res/$name.tap" 2>"$res/$name.err") || rc=$?
  echo "$rc" >"$res/$name.rc"
  rm -rf "$tmp" 2>/dev/null || true
}

count() { grep -c "$1" "$2" 2>/dev/null || true; }

run() {
  jobs=4 timeout=120 out= only=
  local specs=()
  while (($#)); do
    case $1 in
    --jobs | --timeout | --out | --only)
      (($# >= 2)) || die "$1 needs a value"
      ;;&
    --jobs) jobs=$2; shift 2 ;;
    --timeout) timeout=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    *=*) specs+=("$1"); shift ;;
    *) die "unknown argument $1 (see the head of $0)" ;;
    esac
  done
  [[ $jobs =~ ^[1-9][0-9]*$ ]] || die "--jobs wants a positive number, not $jobs"
  [[ $timeout =~ ^[1-9][0-9]*$ ]] || die "--timeout wants seconds, not $timeout"
  [[ $(id -u) == 0 ]] || die "run as root: the suite creates containers"
  if ((${#specs[@]} == 0)); then
    specs=("runc=$(command -v runc || die 'runc not found: apt-get install runc')"
      "berth=$repo/target/debug/berth-runtime")
  fi
  local labels=() runtimes=() spec
  for spec in "${specs[@]}"; do
    local label=${spec%%=*} runtime=${spec#*=}
    [[ $label =~ ^[A-Za-z0-9_.-]+$ ]] || die "label $label: letters, digits, _ . - only"
    [[ -f $runtime && -x $runtime ]] || die "runtime $runtime (for $label) is not an executable"
    labels+=("$label")
    runtimes+=("$(cd "$(dirname "$runtime")" && pwd)/$(basename "$runtime")")
  done
  build
  out=${out:-$cache/runs/$(date +%Y%m%d-%H%M%S)}
  mkdir -p "$out"
  chmod 755 "$out"
  out=$(cd "$out" && pwd)
  for label in "${labels[@]}"; do mkdir -p "$out/$label"; done

  local names=() n
  for n in "$cache"/suite/validation/*.t; do
    n=$(basename "$n" .t)
    if [[ -n $only && ",$only," != *",$n,"* ]]; then continue; fi
    names+=("$n")
  done
  ((${#names[@]})) || die "no validation file matches --only $only"

  export -f run_one
  export out cache timeout
  local i serial=() parallel=()
  for n in "${names[@]}"; do
    for i in "${!labels[@]}"; do
      if uses_cgroups "$n"; then
        serial+=("${labels[i]} ${runtimes[i]} $n")
      else
        parallel+=("${labels[i]} ${runtimes[i]} $n")
      fi
    done
  done
  local started=$SECONDS
  (for job in "${serial[@]}"; do run_one $job; done) &
  local serial_pid=$!
  if ((${#parallel[@]})); then
    printf '%s\n' "${parallel[@]}" | xargs -P "$jobs" -L 1 bash -c 'run_one "$@"' _
  fi
  wait "$serial_pid"

  # The table: per file and runtime "ok/not ok", "!" when the file did not
  # pass clean (a not ok, or a non-zero exit), the exit code when non-zero.
  local totals=() totals_not=() clean=() oks nots rc cell
  printf '%-34s' file
  for label in "${labels[@]}"; do printf ' %-18s' "$label"; done
  echo
  for n in "${names[@]}"; do
    printf '%-34s' "$n"
    for i in "${!labels[@]}"; do
      local res=$out/${labels[i]}
      oks=$(count '^ok' "$res/$n.tap")
      nots=$(count '^not ok' "$res/$n.tap")
      rc=$(<"$res/$n.rc")
      cell="$oks/$nots"
      if ((nots > 0 || rc != 0)); then cell="$cell !"; fi
      if ((rc != 0)); then cell="$cell rc=$rc"; fi
      printf ' %-18s' "$cell"
      totals[i]=$((${totals[i]:-0} + oks))
      totals_not[i]=$((${totals_not[i]:-0} + nots))
      if ((nots == 0 && rc == 0)); then clean[i]=$((${clean[i]:-0} + 1)); fi
    done
    echo
  done
  printf '%-34s' "total ok/not ok"
  for i in "${!labels[@]}"; do printf ' %-18s' "${totals[i]}/${totals_not[i]}"; done
  echo
  printf '%-34s' "files passed clean"
  for i in "${!labels[@]}"; do printf ' %-18s' "${clean[i]:-0}/${#names[@]}"; done
  echo
  echo "ran in $((SECONDS - started)) s; results in $out"
}

case ${1:-} in
build) build ;;
run) shift; run "$@" ;;
*) die "usage: $0 build | run [--jobs N] [--timeout SECS] [--out DIR] [--only A,B] [LABEL=RUNTIME ...]" ;;
esac
