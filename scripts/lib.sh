# shellcheck shell=bash disable=SC2034  # the variables are for the scripts
# Helpers shared by the scripts in this folder. Source it, do not run it:
#   . "$(dirname "$0")/lib.sh"

# The repository root (this file lives in <root>/scripts/).
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Where downloads and the base-image tarball are cached between runs.
VV_CACHE="${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/vsphere-volume"

# State dir of the private test engine (scripts/engine).
VV_ENGINE_DIR="${VV_ENGINE_DIR:-/tmp/vsphere-volume-engine}"

# The image everything is built on and the tests run containers from.
VV_BASE_IMAGE_DEFAULT="local/debian-python:bookworm"

# The Python that runs pip and pytest.
PYTHON="${PYTHON:-python3}"

log() { echo "[$(basename "$0")] $*" >&2; }
die() { log "error: $*"; exit 1; }

# True when a Docker engine answers at the current DOCKER_HOST.
docker_ok() { timeout 15 docker info >/dev/null 2>&1; }

# Print the URI of the Debian mirror apt already uses for bookworm, read from
# the deb822 files in /etc/apt/sources.list.d (or the one-line sources.list).
# The security archive is skipped: it holds only bookworm-security.
debian_mirror() {
    local f uri
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        # Paragraphs are separated by blank lines; keep the URI of the first one
        # that is a "deb" source listing the plain "bookworm" suite.
        uri="$(awk '
            BEGIN { RS = ""; FS = "\n" }
            {
                types = ""; uris = ""; suites = ""
                for (i = 1; i <= NF; i++) {
                    if ($i ~ /^Types:/)  { types = $i }
                    if ($i ~ /^URIs:/)   { uris = $i;   sub(/^URIs:[ \t]*/, "", uris) }
                    if ($i ~ /^Suites:/) { suites = $i; sub(/^Suites:[ \t]*/, "", suites) }
                }
                if (types ~ /(^|[ \t:])deb([ \t]|$)/ && (" " suites " ") ~ /[ \t]bookworm[ \t]/) {
                    split(uris, u, /[ \t]+/); print u[1]; exit
                }
            }' "$f")"
        if [ -n "$uri" ]; then echo "$uri"; return 0; fi
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        # deb [options] URI bookworm components...
        uri="$(awk '$1 == "deb" {
                    i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
                    if ($(i + 1) == "bookworm") { print $i; exit }
                }' "$f")"
        if [ -n "$uri" ]; then echo "$uri"; return 0; fi
    done
    die "no Debian bookworm mirror found in /etc/apt/sources.list{,.d}"
}

# Unmount everything mounted at or below DIR, deepest first; a busy mount is
# detached lazily so that DIR can be removed or reused.
umount_under() {
    local dir mp _ mounts
    dir="$(readlink -f "$1")"
    # A path can be mounted over several times: repeat a few passes.
    for _ in 1 2 3 4 5; do
        # Field 5 of mountinfo is the mount point (spaces escaped as \040).
        mounts="$(awk -v d="$dir" '$5 == d || index($5, d "/") == 1 { print $5 }' \
                    /proc/self/mountinfo | sort -r -u)"
        [ -n "$mounts" ] || return 0
        while read -r mp; do
            mp="$(printf '%b' "$mp")"
            umount "$mp" 2>/dev/null || umount -l "$mp" 2>/dev/null || true
        done <<<"$mounts"
    done
    log "warning: still mounted below $dir: $mounts"
}

# Remove DIR for good: unmount what is below it first, and never cross into
# another filesystem while deleting.
remove_tree() {
    [ -e "$1" ] || return 0
    umount_under "$1"
    rm -rf --one-file-system "$1"
}
