# Shared helpers for landline's scripts: progress lines and installing what is missing.
# Sourced, not run.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STAGE_START=$(date +%s)

# Prints a stage header with the time spent so far, so long runs show progress.
stage() {
  printf '\n==> [%4ss] %s\n' "$(( $(date +%s) - STAGE_START ))" "$*"
}

die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

# Installs the Debian packages given that are not installed yet. As root it runs apt-get; with
# sudo it uses sudo; otherwise it stops and prints the command to run.
ensure_apt() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
      || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null \
    || die "missing packages ${missing[*]}, and this is not a Debian/Ubuntu system: install them by hand"
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null \
      || die "missing packages: ${missing[*]}. Run: apt-get install --no-install-recommends ${missing[*]}"
    sudo="sudo"
  fi
  echo "installing: ${missing[*]}"
  if [ -z "${LANDLINE_APT_UPDATED:-}" ]; then
    DEBIAN_FRONTEND=noninteractive $sudo apt-get update -q >/dev/null
    export LANDLINE_APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends \
    "${missing[@]}" >/dev/null
}

# The system libraries every build needs, found through pkg-config: libopus (the codecs) and
# OpenSSL (DTLS-SRTP in the WebRTC sessions, str0m's openssl backend).
ensure_build_deps() {
  command -v cargo >/dev/null || die "no cargo: install a Rust toolchain (https://rustup.rs)"
  ensure_apt pkg-config libopus-dev libssl-dev
}

# Headless Chromium and the node packages of the browser tests (gateway/tests/browser: the
# driver uses playwright-core with Debian's /usr/bin/chromium, never a downloaded browser).
ensure_browser_deps() {
  ensure_apt chromium
  command -v npm >/dev/null || ensure_apt nodejs npm
  (cd "$ROOT/gateway/tests/browser" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
}

# A Python virtualenv under target/ with the packages given, for the audio-quality tests.
# Prints the path of its python.
python_env() {
  local venv="$ROOT/target/python"
  if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv" >/dev/null 2>&1 || {
      ensure_apt python3-venv python3-dev
      python3 -m venv "$venv"
    }
  fi
  if ! "$venv/bin/python" -c "import $(IFS=,; echo "$*")" 2>/dev/null; then
    "$venv/bin/pip" install --quiet --disable-pip-version-check "$@" >&2
  fi
  echo "$venv/bin/python"
}
