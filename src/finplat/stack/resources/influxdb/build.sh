#!/usr/bin/env bash
# Build InfluxDB 2.x OSS `influxd` from source, cached per version.
#
#   build.sh <influxdb_version> <cache_root>      e.g. build.sh 2.7.12 ~/.cache/finplat
#
# Result: <cache_root>/influxdb/<version>/bin/influxd, printed as the last line
# of stdout. Progress goes to stderr. A second run with the binary present only
# prints the path.
#
# Why from source: this project's machines reach package registries only, so
# InfluxData's release tarballs are out of reach; the Go module proxy does
# serve the influxdb module, and crates.io serves what libflux (Flux's Rust
# core, linked into influxd through cgo) needs.
#
# Verified with: influxdb v2.7.12, Go 1.26, Rust 1.95 (rustup stable), Debian 12.
set -euo pipefail

readonly MODULE=github.com/influxdata/influxdb/v2

log() { printf '[influxdb] %s\n' "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}

if [[ $# -ne 2 ]]; then
    die "usage: $0 <influxdb_version e.g. 2.7.12> <cache_root e.g. ~/.cache/finplat>"
fi

version=${1#v}
# Only 2.x: the build below is specific to 2.x (cmd/influxd, libflux via the
# pkg-config wrapper). 1.x lays out its commands differently.
[[ $version =~ ^2\.[0-9]+\.[0-9]+$ ]] || die "version must look like 2.7.12, got '$1'"

mkdir -p "$2/influxdb"
# Absolute path so the printed binary path is usable from any directory.
cache_root=$(cd "$2" && pwd -P)
dest_dir=$cache_root/influxdb/$version
dest_bin=$dest_dir/bin/influxd

# The binary only ever appears through an atomic rename of a finished build,
# so its presence means "done".
if [[ -x $dest_bin ]]; then
    printf '%s\n' "$dest_bin"
    exit 0
fi

# --- prerequisites: fail early with one actionable message -----------------

need() {
    command -v "$1" >/dev/null 2>&1 || die "'$1' not found on PATH: $2"
}
need go "install Go >= 1.23 (https://go.dev/dl or the golang-go package if new enough)"
need cargo "install Rust with rustup (rustup.rs) and run 'rustup default stable'"
need rustc "install Rust with rustup (rustup.rs) and run 'rustup default stable'"
# InfluxData's pkg-config wrapper (built below) handles only 'flux' itself and
# delegates everything else to the real pkg-config, which must exist.
need pkg-config "apt-get install pkg-config"
# cgo (libflux, sqlite) needs a C compiler; honour CC like go does.
cc_bin=${CC:-$(go env CC)}
need "${cc_bin%% *}" "apt-get install gcc (a C compiler is needed for cgo)"
# git is not needed: all sources come from the Go module proxy and crates.io.

# flux pins Rust 1.72 in libflux/rust-toolchain.toml, which rustup would try
# to download (not reachable here, and too old for current crates anyway).
# RUSTUP_TOOLCHAIN overrides that file; use the machine's default toolchain
# unless the caller picks one. Without rustup the file is ignored anyway.
if command -v rustup >/dev/null 2>&1; then
    if [[ -z ${RUSTUP_TOOLCHAIN:-} ]]; then
        RUSTUP_TOOLCHAIN=$(rustup default 2>/dev/null | awk 'NR==1{print $1}')
        [[ -n $RUSTUP_TOOLCHAIN && $RUSTUP_TOOLCHAIN != none* ]] ||
            die "rustup has no default toolchain: run 'rustup default stable'"
    fi
    export RUSTUP_TOOLCHAIN
    rustup run "$RUSTUP_TOOLCHAIN" rustc --version >/dev/null 2>&1 ||
        die "rust toolchain '$RUSTUP_TOOLCHAIN' is not installed: run 'rustup toolchain install $RUSTUP_TOOLCHAIN'"
fi

# --- serialise concurrent builds of the same version -----------------------

mkdir -p "$cache_root/influxdb"
if command -v flock >/dev/null 2>&1; then
    exec 9>"$cache_root/influxdb/.$version.lock"
    if ! flock -n 9; then
        log "another build of $version is running; waiting for it"
        flock 9
    fi
    if [[ -x $dest_bin ]]; then
        printf '%s\n' "$dest_bin"
        exit 0
    fi
    # Holding the lock, any scratch dir of this version is a leftover of a
    # killed build (SIGKILL skips the cleanup trap): reclaim the space.
    rm -rf "$cache_root/influxdb/.build-$version."*
fi

# --- build in a scratch dir under the cache; rename into place at the end --

work=$(mktemp -d "$cache_root/influxdb/.build-$version.XXXXXX")
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
# Turn Ctrl-C / kill into a normal exit so the EXIT trap removes the scratch dir.
trap 'exit 130' INT
trap 'exit 143' TERM

# Never pick up a toolchain other than the installed Go: a go.mod 'toolchain'
# line would otherwise make go try to download that exact release.
export GOTOOLCHAIN=local
# libflux and sqlite are C/Rust code linked in through cgo.
export CGO_ENABLED=1

start=$SECONDS
log "fetching $MODULE@v$version from the Go module proxy"
json_field() { sed -n "s/^[[:space:]]*\"$1\": \"\(.*\)\",\{0,1\}\$/\1/p" <<<"$dl_json"; }
# go reports failures in the JSON 'Error' field (e.g. "requires go >= 1.26.9
# (running go 1.26.8; GOTOOLCHAIN=local)" for 2.10.0, or an unknown version).
if ! dl_json=$(go mod download -json "$MODULE@v$version"); then
    dl_error=$(json_field Error)
    die "go mod download $MODULE@v$version failed: ${dl_error//\\u003e/>} (versions: 'go list -m -versions $MODULE'; a 'requires go' error means: install that Go)"
fi
mod_dir=$(json_field Dir)
info_file=$(json_field Info)
[[ -n $mod_dir && -d $mod_dir ]] || die "go mod download did not report a module dir"
# The release timestamp, not "now", so rebuilds embed the same date.
build_date=$(sed -n 's/.*"Time":"\([^"]*\)".*/\1/p' "$info_file")

# influxdb's go.mod has a 'replace' directive, so 'go install module@version'
# refuses it; it must be built as the main module. The module cache copy is
# read-only, hence the writable copy.
log "copying module source into $work/src"
cp -R "$mod_dir" "$work/src"
chmod -R u+w "$work/src"
cd "$work/src"

tools=$work/tools
mkdir -p "$tools" "$work/out"

# InfluxData's pkg-config wrapper answers 'pkg-config flux' by running cargo on
# the flux module's libflux (a static lib); everything else goes to the real
# pkg-config. Built from inside the influxdb module so go.mod pins its version.
log "building InfluxData's pkg-config wrapper (version from influxdb's go.mod)"
go build -trimpath -buildvcs=false -o "$tools/pkg-config" github.com/influxdata/pkg-config 2>&1 |
    sed 's/^/[influxdb]   /' >&2 ||
    die "building github.com/influxdata/pkg-config failed (output above)"

# flux-core/flux use #![deny(warnings)] under their default 'strict' feature,
# so lints added to newer rustc (dead_code refinements, 1.89's
# mismatched_lifetime_syntaxes, ...) become hard errors. --cap-lints=warn
# turns them back into warnings. RUSTFLAGS alone is NOT enough: the wrapper
# always passes --target, and then cargo does not apply RUSTFLAGS to host
# artifacts -- and flux's build.rs depends on flux-core, which is compiled
# for the host too. A rustc wrapper reaches every rustc invocation.
# Crates from crates.io already get --cap-lints=allow from cargo; keep that.
cat >"$tools/rustc-cap-lints" <<'EOF'
#!/usr/bin/env bash
rustc=$1
shift
for arg in "$@"; do
    case $arg in --cap-lints | --cap-lints=*) exec "$rustc" "$@" ;; esac
done
exec "$rustc" "$@" --cap-lints=warn
EOF
chmod +x "$tools/rustc-cap-lints"
export RUSTC_WRAPPER=$tools/rustc-cap-lints

# go finds pkg-config through $PKG_CONFIG first, then PATH: drop any caller
# override so the wrapper (first on PATH) is the one used.
unset PKG_CONFIG
export PATH=$tools:$PATH

# Tags: COMMON_TAGS from influxdb's GNUmakefile. Left out on purpose:
#  - assets: embeds the UI, which the build would fetch from GitHub
#    (unreachable); influxd serves the API fine without it.
#  - static_build (release CI only): links libflux for the musl target, whose
#    rust std would have to be downloaded; a glibc-dynamic binary is fine here.
# noasm is added exactly where the GNUmakefile adds it (not amd64/s390x).
tags=sqlite_foreign_keys,sqlite_json
case $(go env GOARCH) in
    amd64 | s390x) ;;
    *) tags+=,noasm ;;
esac
# -s -w as in release CI (about a third smaller); version and date as release
# builds set them (the proxy's module zip carries no git commit, so main.commit
# stays at its default).
ldflags="-s -w -X main.version=v$version -X main.date=$build_date"

log "building influxd v$version (tags: $tags); cold (empty Go/cargo caches) it compiles libflux (Rust, LTO) and ~1400 Go packages: ~4-5 min on 2 cores"
go build -trimpath -buildvcs=false -tags "$tags" -ldflags "$ldflags" -o "$work/out/influxd" ./cmd/influxd 2>&1 |
    sed 's/^/[influxdb]   /' >&2 ||
    die "go build ./cmd/influxd failed (output above; cargo errors appear as libflux/pkg-config log lines)"

"$work/out/influxd" version >/dev/null || die "built influxd does not run"

mkdir -p "$dest_dir/bin"
{
    echo "influxdb v$version"
    echo "go: $(go env GOVERSION)"
    echo "rustc: $(rustc --version)"
    echo "tags: $tags"
    echo "ldflags: $ldflags"
} >"$dest_dir/build-info.txt"
# Same filesystem (both under the cache), so this is an atomic rename: the
# final path never holds a partial binary.
mv -f "$work/out/influxd" "$dest_bin"
log "built in $((SECONDS - start))s: $("$dest_bin" version)"
printf '%s\n' "$dest_bin"
