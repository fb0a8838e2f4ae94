#!/usr/bin/env bash
# Builds kibitzer with the `cuda` feature on a machine without internet
# access: a real build that links, not a type check.
#
#   bash scripts/build_cuda_offline.sh            # cargo build --release -p kibitzer --features cuda
#   bash scripts/build_cuda_offline.sh --tests    # also builds the CUDA parity tests (crates/parity)
#
# Why this is needed: burn's CUDA backend (cubecl-cuda) always depends on
# cubecl-llvm, its second kernel compiler (CubeCL IR -> LLVM NVPTX, beside
# the default NVRTC path), which links LLVM statically through llvm-sys.
# llvm-sys finds that LLVM through tracel-llvm-bundler, whose build script
# downloads a prebuilt LLVM 23 bundle from GitHub into
# $XDG_DATA_HOME/tracel/tracel-llvm-<version>/ unless that directory already
# holds an install (the file `.tracel-llvm-installed`); it then reads
# `bin/llvm-config --link-static` there for the libraries to link.
#
# This script gives it Debian's LLVM instead (packages llvm-22-dev and libpolly-22-dev, static
# libraries with the NVPTX target built in): a prefix of symlinks to
# /usr/lib/llvm-22 (and libpolly-22-dev) under target/, with the marker file, and XDG_DATA_HOME
# pointing there for the build only; nothing is downloaded and nothing
# outside the checkout is touched (apart from installing the package).
# NVRTC and the CUDA driver are loaded at run time by cudarc, so the build
# needs no CUDA toolkit; running needs the NVIDIA driver and NVRTC.
#
# A GPU machine that can install nothing (no network, no Debian mirror)
# needs the LLVM libraries only to link: build here and copy the binary
# (target/release/kibitzer; with --tests also the parity test binary the
# last line prints), which loads no LLVM at run time.
#
# The kibitzer binary does not compile kernels through LLVM (cubecl uses
# NVRTC unless told otherwise), so the LLVM 22 libraries only have to link
# against llvm-sys 231's declarations, which they do for the functions
# cubecl-llvm calls: this script's final link is the check.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

tests=0
for arg in "$@"; do
    case "$arg" in
        --tests) tests=1 ;;
        *) echo "unknown argument: $arg (expected --tests)" >&2; exit 2 ;;
    esac
done

llvm="${KIBITZER_LLVM_PREFIX:-/usr/lib/llvm-22}"
# Debian's llvm-config names Polly among the static libraries, which
# libpolly-22-dev provides.
# Its system libraries are linked dynamically: zstd needs its -dev package
# for the unversioned libzstd.so (llvm-22-dev pulls in libz3-dev and
# libxml2-dev itself).
packages="llvm-22-dev libpolly-22-dev libzstd-dev"
if [[ ! -x "$llvm/bin/llvm-config" || ! -f "$llvm/lib/libPolly.a" ]] || ! ldconfig -p | grep -q 'libzstd.so '; then
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $packages >/dev/null
    else
        echo "no LLVM at $llvm: install Debian's $packages (apt-get install $packages)," >&2
        echo "or set KIBITZER_LLVM_PREFIX to an LLVM install with static libraries and NVPTX" >&2
        exit 1
    fi
fi
if ! "$llvm/bin/llvm-config" --targets-built | grep -qw NVPTX; then
    echo "$llvm was built without the NVPTX target, which CUDA kernels need" >&2
    exit 1
fi

# The bundler's version, as Cargo.lock pins it, names the install directory.
bundler=$(awk '/^name = "tracel-llvm-bundler"/ { getline; sub(/^version = /, ""); gsub(/"/, ""); print; exit }' Cargo.lock)
if [[ -z "$bundler" ]]; then
    echo "Cargo.lock has no tracel-llvm-bundler: the cuda feature no longer needs this script" >&2
    exit 1
fi
# "23.1.0-4" -> tracel-llvm-23.1.0-4
data="$root/target/offline-llvm"
prefix="$data/tracel/tracel-llvm-$bundler"
mkdir -p "$prefix"
for part in lib include; do
    ln -sfn "$llvm/$part" "$prefix/$part"
done
# bin: LLVM's tools, but llvm-config through a wrapper. Debian's names
# libz3 by its full path in `--system-libs`, which the bundler turns into
# `-llibz3` (it keeps the file stem): the wrapper gives it as `-lz3`.
rm -rf "$prefix/bin"
mkdir -p "$prefix/bin"
for tool in "$llvm"/bin/*; do
    ln -sfn "$tool" "$prefix/bin/$(basename "$tool")"
done
rm -f "$prefix/bin/llvm-config"
cat > "$prefix/bin/llvm-config" <<WRAPPER
#!/bin/sh
case " \$* " in
    *" --system-libs "*)
        "$llvm/bin/llvm-config" "\$@" | awk '{ for (i = 1; i <= NF; i++) if (\$i ~ /^\/.*\/lib[^\/]+\.so(\.[0-9.]+)?\$/) { n = \$i; sub(/^.*\/lib/, "", n); sub(/\.so.*\$/, "", n); \$i = "-l" n } print }' ;;
    *) exec "$llvm/bin/llvm-config" "\$@" ;;
esac
WRAPPER
chmod +x "$prefix/bin/llvm-config"
touch "$prefix/.tracel-llvm-installed"
echo "LLVM for cubecl-llvm: $("$llvm/bin/llvm-config" --version) from $llvm (as tracel-llvm $bundler)" >&2

export XDG_DATA_HOME="$data"
cargo build --release -p kibitzer --features cuda
ls -l "${CARGO_TARGET_DIR:-$root/target}/release/kibitzer"
if [[ $tests == 1 ]]; then
    cargo test --release -p kibitzer-parity --no-default-features --features cuda --no-run
fi
echo "built with CUDA: run with --device cuda (e.g. target/release/kibitzer bench sae --device cuda)" >&2
