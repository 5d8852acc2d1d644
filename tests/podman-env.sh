# shellcheck shell=bash
# Isolated podman environment for berth integration tests.
#
# Usage (bash, as root):
#     source tests/podman-env.sh /tmp/some-empty-dir
#     podman_import_busybox berth-busybox          # -> localhost/berth-busybox:latest
#     podman --runtime "$BERTH_RUNTIME" run --rm --network none berth-busybox sh -c 'echo hi'
#     podman --runtime /usr/bin/runc  run --rm --network none berth-busybox true   # reference
#     podman_env_cleanup                           # stop/remove everything, unmount, keep dir
#     busybox_oci_archive /tmp/x/bb.tar localhost/bb:latest   # OCI archive for `ctr image import`
#     dir_oci_archive DIR /tmp/x/p.tar localhost/p:1 '"Entrypoint":["/pause"]'   # any directory
#
# Everything podman writes (image/container storage, libpod db, run state,
# file locks, events, conmon exit files, network configs) lives under $1;
# the host's /var/lib/containers/storage, /run/containers/storage, /run/libpod
# and /dev/shm/libpod_lock are not used.  Unavoidable host leftovers (podman
# 4.3 has no knob for them): /var/lib/containers/cache/blob-info-cache-v1.boltdb
# (c/image cache, written by import/load/save) and an empty
# /run/containers/networks (netavark run dir, hard-coded for root).  OCI
# runtimes keep their own state dir (runc: /run/runc, crun: /run/crun,
# berth-runtime: its default) because podman passes no --root to the runtime
# when running as root.
#
# Knobs (environment, read when sourced):
#   BERTH_RUNTIME          path of berth-runtime (default: <repo>/target/debug/berth-runtime);
#                          registered as runtime "berth-runtime", so both
#                          `--runtime berth-runtime` and `--runtime "$BERTH_RUNTIME"` work.
#   BERTH_PODMAN_RUNTIME   default runtime name written to containers.conf (default: runc)
#   BERTH_PODMAN_STORAGE_DRIVER  overlay|vfs (default: overlay if a test mount works, else vfs)
#   BERTH_PODMAN_SECCOMP_PROFILE seccomp_profile written to containers.conf
#                          (default: empty, podman's built-in default profile;
#                          "unconfined" leaves linux.seccomp out of the config;
#                          containers.conf has no per-runtime setting, so this
#                          applies to every runtime of the env).
#
# OCI hooks: hooks_dir points at the (empty) $1/hooks.d, so hook files on
# the host (/usr/share/containers/oci/hooks.d, /etc/containers/oci/hooks.d)
# never end up in the config: berth-runtime does not run hooks either.
#
# Exports: PODMAN_ENV_DIR, CONTAINERS_CONF, CONTAINERS_STORAGE_CONF,
#   CONTAINERS_REGISTRIES_CONF, XDG_RUNTIME_DIR, BERTH_RUNTIME,
#   PODMAN_ENV_STORAGE_DRIVER, PODMAN_ENV_CRUN (use `--runtime crun` or
#   `--runtime "$PODMAN_ENV_CRUN"`; plain /usr/bin/crun fails on hybrid cgroups).
#
# Host quirks handled here: PID 1 is not systemd (cgroupfs + file events
# logger), root lacks CAP_SYS_RESOURCE (default_ulimits clamped to the hard
# limits, because podman's defaults nofile=1048576/nproc=4194304 fail), and
# no network is needed: the default netns is "none" (private netns with only
# lo); `--network host` also works.  podman still initialises a network
# backend at startup, so either `netavark` (preferred, auto-detected) or
# `containernetworking-plugins` (/usr/lib/cni) must be installed even then.

if [ -z "${BASH_VERSION:-}" ]; then
    echo "podman-env.sh: must be sourced from bash" >&2
    return 1 2>/dev/null || exit 1
fi

_podman_env_setup() {
    local base="${1:-}"
    if [ -z "$base" ]; then
        echo "usage: source podman-env.sh <dir>" >&2
        return 1
    fi
    mkdir -p "$base" || return 1
    base="$(cd "$base" && pwd -P)" || return 1

    local here repo
    here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
    repo="$(dirname "$here")"

    export PODMAN_ENV_DIR="$base"
    export BERTH_RUNTIME="${BERTH_RUNTIME:-$repo/target/debug/berth-runtime}"
    local default_runtime="${BERTH_PODMAN_RUNTIME:-runc}"
    local seccomp_profile="${BERTH_PODMAN_SECCOMP_PROFILE-}"

    mkdir -p "$base/storage" "$base/run" "$base/tmp" "$base/networks" \
        "$base/volumes" "$base/xdg" "$base/conf" "$base/hooks.d" || return 1
    chmod 0700 "$base/xdg"

    # --- storage driver -------------------------------------------------
    local driver="${BERTH_PODMAN_STORAGE_DRIVER:-}"
    if [ -z "$driver" ]; then
        driver=vfs
        local p="$base/.ovl-probe"
        mkdir -p "$p/l" "$p/u" "$p/w" "$p/m"
        if mount -t overlay overlay -o "lowerdir=$p/l,upperdir=$p/u,workdir=$p/w" "$p/m" 2>/dev/null; then
            umount "$p/m"
            driver=overlay
        fi
        rm -rf "$p"
    fi
    export PODMAN_ENV_STORAGE_DRIVER="$driver"

    cat >"$base/conf/storage.conf" <<EOF
[storage]
driver = "$driver"
graphroot = "$base/storage"
runroot = "$base/run"

[storage.options]
additionalimagestores = []

[storage.options.overlay]
mountopt = "nodev"
EOF

    # --- crun on a v1/v2 hybrid host ---------------------------------------
    # Debian's crun 1.8 refuses hybrid cgroups ("cgroups in hybrid mode not
    # supported, drop all controllers from cgroupv2") unless it runs in a mount
    # namespace where the (empty) cgroup2 mount is gone.  $base/bin/crun does
    # that and is registered as runtime "crun" (basename must stay "crun" so
    # podman keeps treating it as JSON-log capable).
    local crun_path=/usr/bin/crun
    mkdir -p "$base/bin"
    if [ "$(stat -f -c %T /sys/fs/cgroup 2>/dev/null)" != cgroup2fs ] &&
       [ "$(stat -f -c %T /sys/fs/cgroup/unified 2>/dev/null)" = cgroup2fs ]; then
        cat >"$base/bin/crun" <<'EOS'
#!/bin/sh
exec unshare -m -- sh -c 'umount /sys/fs/cgroup/unified 2>/dev/null; exec /usr/bin/crun "$@"' crun "$@"
EOS
        chmod 0755 "$base/bin/crun"
        crun_path="$base/bin/crun"
    fi
    export PODMAN_ENV_CRUN="$crun_path"

    # --- containers.conf --------------------------------------------------
    local hn hu
    hn="$(ulimit -Hn)"; hu="$(ulimit -Hu)"
    [ "$hn" = unlimited ] && hn=1048576
    [ "$hu" = unlimited ] && hu=4194304
    # podman itself does setrlimit(RLIMIT_NPROC, 32768:32768) at startup, so
    # conmon/runtime inherit at most 32768 and can't go above that.
    [ "$hu" -gt 32768 ] && hu=32768

    local seccomp_line="# seccomp_profile: podman's default"
    [ -n "$seccomp_profile" ] && seccomp_line="seccomp_profile = \"$seccomp_profile\""

    cat >"$base/conf/containers.conf" <<EOF
[containers]
# podman's own default seccomp profile unless BERTH_PODMAN_SECCOMP_PROFILE says otherwise
$seccomp_line
# podman's built-in defaults (nofile=1048576, nproc=4194304) exceed the hard
# limits here and root cannot raise them (no CAP_SYS_RESOURCE); podman also
# clamps its own RLIMIT_NPROC to 32768 before spawning conmon.
default_ulimits = ["nofile=$hn:$hn", "nproc=$hu:$hu"]
netns = "none"
log_driver = "k8s-file"
cgroups = "enabled"

[network]
# network_backend left to auto-detection (netavark if installed, else cni)
network_config_dir = "$base/networks"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$base/tmp/events.log"
tmp_dir = "$base/tmp"
volume_path = "$base/volumes"
static_dir = "$base/storage/libpod"
# file locks live in tmp_dir/locks instead of the host-global /dev/shm/libpod_lock
lock_type = "file"
num_locks = 2048
conmon_path = ["/usr/bin/conmon"]
runtime = "$default_runtime"
runtime_supports_json = ["crun", "runc", "kata", "runsc", "youki", "krun", "berth-runtime"]
runtime_supports_nocgroups = ["crun", "krun", "berth-runtime"]
no_pivot_root = false
# no OCI hooks from the host (berth-runtime does not implement hooks)
hooks_dir = ["$base/hooks.d"]

[engine.runtimes]
runc = ["/usr/bin/runc"]
crun = ["$crun_path"]
berth-runtime = ["$BERTH_RUNTIME"]
EOF

    export CONTAINERS_CONF="$base/conf/containers.conf"
    export CONTAINERS_STORAGE_CONF="$base/conf/storage.conf"
    export CONTAINERS_REGISTRIES_CONF="$base/conf/registries.conf"
    printf 'unqualified-search-registries = []\nshort-name-mode = "disabled"\n' \
        >"$CONTAINERS_REGISTRIES_CONF"
    export XDG_RUNTIME_DIR="$base/xdg"
    # make sure a stray env from the caller doesn't redirect things
    unset CONTAINER_HOST CONTAINER_CONNECTION DOCKER_HOST
}

# busybox_rootfs <dir>: populate <dir> with a minimal busybox rootfs built
# from the host's static /bin/busybox (Debian: busybox-static).
busybox_rootfs() {
    local rootfs="${1:?usage: busybox_rootfs <dir>}"
    local bb=/bin/busybox
    [ -x "$bb" ] || bb="$(command -v busybox 2>/dev/null || true)"
    if [ -z "$bb" ]; then
        echo "busybox_rootfs: no busybox found; install busybox-static" >&2
        return 1
    fi
    if ldd "$bb" >/dev/null 2>&1; then
        echo "busybox_rootfs: $bb is dynamically linked; install busybox-static" >&2
        return 1
    fi
    rm -rf "$rootfs"
    mkdir -p "$rootfs"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,root,proc,sys,dev,run,var/tmp,home} || return 1
    cp "$bb" "$rootfs/bin/busybox" || return 1
    chmod 0755 "$rootfs/bin/busybox"
    # every applet gets /bin/<applet>; applets that busybox installs elsewhere
    # (--list-full: usr/bin/env, sbin/ip, ...) get that path too.
    local applet path
    while read -r applet; do
        [ "$applet" = busybox ] && continue
        [ -e "$rootfs/bin/$applet" ] || ln -s busybox "$rootfs/bin/$applet"
    done < <("$rootfs/bin/busybox" --list)
    while read -r path; do
        path="/${path#/}"
        [ "${path##*/}" = busybox ] && continue
        [ -e "$rootfs$path" ] || [ -L "$rootfs$path" ] && continue
        mkdir -p "$rootfs${path%/*}"
        ln -s /bin/busybox "$rootfs$path"
    done < <("$rootfs/bin/busybox" --list-full 2>/dev/null)
    cat >"$rootfs/etc/passwd" <<'EOP'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOP
    cat >"$rootfs/etc/group" <<'EOP'
root:x:0:
nogroup:x:65534:
nobody:x:65534:
EOP
    chmod 1777 "$rootfs/tmp" "$rootfs/var/tmp"
    chmod 0700 "$rootfs/root"
}

# podman_import_busybox <name>: build a busybox rootfs and `podman import` it
# as localhost/<name>:latest (CMD /bin/sh, PATH set).  Idempotent.
podman_import_busybox() {
    local name="${1:?usage: podman_import_busybox <name>}"
    local rootfs="$PODMAN_ENV_DIR/rootfs-$name"
    busybox_rootfs "$rootfs" || return 1
    tar --numeric-owner -C "$rootfs" -cf "$PODMAN_ENV_DIR/rootfs-$name.tar" . || return 1
    podman rmi -f "localhost/$name:latest" >/dev/null 2>&1 || true
    podman import \
        --change 'CMD ["/bin/sh"]' \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --quiet "$PODMAN_ENV_DIR/rootfs-$name.tar" "localhost/$name:latest" >/dev/null || return 1
    rm -f "$PODMAN_ENV_DIR/rootfs-$name.tar"
}

# busybox_oci_archive <out.tar> [ref]: hand-build an OCI image-layout tarball
# of the busybox rootfs (no podman/registry needed).  ref defaults to
# localhost/busybox:latest; `ctr -a SOCK image import out.tar` registers it
# under that name (org.opencontainers.image.ref.name), and
# `podman load -i out.tar` / `skopeo` accept it too.
busybox_oci_archive() {
    local out="${1:?usage: busybox_oci_archive <out.tar> [ref]}" ref="${2:-localhost/busybox:latest}"
    local work rc=0
    work="$(mktemp -d "${TMPDIR:-/tmp}/bb-oci.XXXXXX")" || return 1
    busybox_rootfs "$work/rootfs" &&
        dir_oci_archive "$work/rootfs" "$out" "$ref" '"Cmd":["/bin/sh"]' || rc=1
    rm -rf "$work"
    return $rc
}

# dir_oci_archive <rootfs-dir> <out.tar> <ref> <config>: an OCI image-layout
# tarball of one layer (the directory) named <ref>; <config> is JSON members
# added to the image config's "config" (PATH is set), e.g.
# '"Entrypoint":["/pause"]'.
dir_oci_archive() {
    local rootfs="${1:?usage: dir_oci_archive <rootfs-dir> <out.tar> <ref> <config>}"
    local out="${2:?}" ref="${3:?}" config="${4:?}"
    local work
    work="$(mktemp -d "${TMPDIR:-/tmp}/oci.XXXXXX")" || return 1
    mkdir -p "$work/layout/blobs/sha256"
    tar --numeric-owner --sort=name --mtime=@0 -C "$rootfs" -cf "$work/layer.tar" . || { rm -rf "$work"; return 1; }
    local l_dg l_sz c_dg c_sz m_dg m_sz
    l_dg="$(sha256sum "$work/layer.tar" | cut -d' ' -f1)"; l_sz="$(stat -c %s "$work/layer.tar")"
    mv "$work/layer.tar" "$work/layout/blobs/sha256/$l_dg"
    printf '{"architecture":"%s","os":"linux","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],%s},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
        "$(uname -m | sed 's/x86_64/amd64/; s/aarch64/arm64/')" "$config" "$l_dg" >"$work/config.json"
    c_dg="$(sha256sum "$work/config.json" | cut -d' ' -f1)"; c_sz="$(stat -c %s "$work/config.json")"
    mv "$work/config.json" "$work/layout/blobs/sha256/$c_dg"
    printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' \
        "$c_dg" "$c_sz" "$l_dg" "$l_sz" >"$work/manifest.json"
    m_dg="$(sha256sum "$work/manifest.json" | cut -d' ' -f1)"; m_sz="$(stat -c %s "$work/manifest.json")"
    mv "$work/manifest.json" "$work/layout/blobs/sha256/$m_dg"
    printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"%s"}}]}' \
        "$m_dg" "$m_sz" "$ref" >"$work/layout/index.json"
    printf '{"imageLayoutVersion":"1.0.0"}' >"$work/layout/oci-layout"
    tar -C "$work/layout" -cf "$out" oci-layout index.json blobs || { rm -rf "$work"; return 1; }
    rm -rf "$work"
}

# podman_env_cleanup: kill/remove all containers of this environment, then
# unmount anything still mounted under $PODMAN_ENV_DIR.  Leaves files in place
# (rm -rf the directory afterwards if wanted).
podman_env_cleanup() {
    [ -n "${PODMAN_ENV_DIR:-}" ] || return 0
    podman rm -af -t 0 >/dev/null 2>&1 || true
    podman system prune -f >/dev/null 2>&1 || true
    # conmon processes of this env (identified by their --exit-dir under the env dir)
    local pid
    for pid in $(pgrep -x conmon 2>/dev/null); do
        if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$PODMAN_ENV_DIR/"; then
            kill -9 "$pid" 2>/dev/null || true
        fi
    done
    local mp
    # deepest first
    while read -r mp; do
        umount -l "$mp" 2>/dev/null || true
    done < <(awk -v d="$PODMAN_ENV_DIR" '{ gsub(/\\040/, " ", $5); if (index($5, d "/") == 1 || $5 == d) print $5 }' \
                /proc/self/mountinfo | sort -r)
}

_podman_env_setup "$@"
