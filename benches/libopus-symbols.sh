#!/usr/bin/env bash
# Builds a libopus.so with symbols from the libopus 1.3.1 source bundled in the audiopus_sys crate,
# so that callgrind can name the functions inside libopus (Debian's libopus0 is stripped).
#
# It is the same source as Debian's 1.3.1, compiled as plain C with -O2 (no SIMD run-time dispatch):
# per-function attribution, with totals within about 1 % of the system library's.
#
# Usage: dir=$(benches/libopus-symbols.sh)
#        LD_LIBRARY_PATH=$dir benches/callgrind.sh --annotate call_full_duplex
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
mkdir -p "$target/libopus-symbols"
out=$(cd "$target/libopus-symbols" && pwd)
# The crate's source is unpacked once the benches have been built.
version=$(grep -A1 '^name = "audiopus_sys"' Cargo.lock | sed -n 's/^version = "\(.*\)"/\1/p')
src=$(find "${CARGO_HOME:-$HOME/.cargo}/registry/src" -maxdepth 2 -type d \
    -name "audiopus_sys-$version" | head -n 1)/opus
[[ -d $src ]] || { echo "no libopus source at $src: build the benches first" >&2; exit 1; }
sources=$(make -s -C "$src" -f - print <<'MAKE'
include silk_sources.mk
include celt_sources.mk
include opus_sources.mk
print:
	@echo $(SILK_SOURCES) $(SILK_SOURCES_FLOAT) $(CELT_SOURCES) $(OPUS_SOURCES) $(OPUS_SOURCES_FLOAT)
MAKE
)
(cd "$src" && cc -w -O2 -g -fPIC -shared -DOPUS_BUILD -DUSE_ALLOCA -DHAVE_LRINTF \
    -DPACKAGE_VERSION='"1.3.1-symbols"' -Iinclude -Isilk -Icelt -Isilk/float $sources \
    -o "$out/libopus.so.0" -lm -Wl,-soname,libopus.so.0)
echo "$out"
