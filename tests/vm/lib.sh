# Shared by tests/vm/prepare, start and stop (sourced, not run).
#
# Where things live (each overridable):
#   LOADMASTER_VM_CACHE  the prepared base images, one directory per content
#                        key (default /var/cache/loadmaster-vm)
#   LOADMASTER_VM_STATE  one directory per running VM: qemu's pid, monitor
#                        socket, disk overlay, console and qemu logs
#                        (default /tmp/loadmaster-vm)
#   LOADMASTER_VM_NAME   the VM's name (default: the engine's), so that a test
#                        can boot a second, smaller VM beside the shared one
#   LOADMASTER_VM_MEMORY guest memory in MiB (default 2048, podman machine's)
#   LOADMASTER_VM_CPUS   guest vCPUs (default 1)
#   LOADMASTER_VM_HOST_PORTS  host loopback ports the guest may reach as
#                        host.containers.internal (space-separated; default none)
#   LOADMASTER_VM_MIRROR the Debian archive debootstrap uses (default: the
#                        one in /etc/apt's sources)
vm_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
vm_cache_root=${LOADMASTER_VM_CACHE:-/var/cache/loadmaster-vm}
vm_state_root=${LOADMASTER_VM_STATE:-/tmp/loadmaster-vm}
# Debian's suite and the packages inside the guest: part of the content key.
vm_suite=bookworm
vm_mirror=${LOADMASTER_VM_MIRROR:-}
vm_packages=linux-image-amd64,initramfs-tools,kmod,iproute2,procps,util-linux,podman,netavark,docker.io,containerd,runc
vm_disk_size=16G

die() { echo "vm: $*" >&2; exit 1; }

# The Debian archive this machine's apt installs from (its deb822 sources or
# sources.list): the one entry for the suite itself, not -security or
# -updates. debootstrap takes the guest's packages from the same place.
vm_apt_mirror() {
  local file
  for file in /etc/apt/sources.list.d/*.sources; do
    [ -f "$file" ] || continue
    # deb822 stanzas are separated by blank lines.
    awk -v suite="$vm_suite" 'BEGIN { RS = "" }
      {
        deb = 0; ours = 0; uri = ""
        n = split($0, lines, "\n")
        for (i = 1; i <= n; i++) {
          k = split(lines[i], f, /[ \t]+/)
          if (f[1] == "Types:") for (j = 2; j <= k; j++) if (f[j] == "deb") deb = 1
          if (f[1] == "Suites:") for (j = 2; j <= k; j++) if (f[j] == suite) ours = 1
          if (f[1] == "URIs:") uri = f[2]
        }
        if (deb && ours && uri != "") { print uri; exit }
      }' "$file"
  done | head -1 | grep . && return
  awk -v suite="$vm_suite" '$1 == "deb" && $3 == suite { print $2; exit }' \
    /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | grep . ||
    die "no Debian $vm_suite archive in /etc/apt's sources: set LOADMASTER_VM_MIRROR"
}

# The content key: what the base image is made from (this file, the
# preparation script, the guest's init), so a change rebuilds it.
vm_key() {
  cat "$vm_dir/lib.sh" "$vm_dir/prepare" "$vm_dir/guest/init" | sha256sum | cut -c1-16
}
vm_cache_dir() { echo "$vm_cache_root/$(vm_key)"; }

vm_engine_arg() {
  case "${1:-}" in
    podman | docker) ;;
    *) die "usage: $(basename "$0") podman|docker (got '${1:-}')" ;;
  esac
}
