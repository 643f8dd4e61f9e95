#!/usr/bin/env bash
# Installs what Motcua needs on this machine, reusing whatever an earlier run installed:
#   - the Python environment (.venv) from uv.lock, with uv itself in ~/.cache/motcua;
#   - RabbitMQ from Debian's packages;
#   - a MongoDB-wire server: MONGODB_URL if set, else `mongod` on PATH, else the embedded server
#     MOTCUA_DATABASE names (tools/devstack.py has the default): FerretDB built from its Go module
#     (SQLite backend) in ~/.cache/motcua/bin, or nx-27017 from PyPI in its own virtualenv;
#   - with MOTCUA_PROVISION_ALL_DATABASES=1, every candidate that benchmarks.databases compares
#     (both embedded servers, and PostgreSQL 15 for FerretDB's PostgreSQL backend).
set -euo pipefail
cd "$(dirname "$0")/.."

export HOME="${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}"
# Go from its upstream tarball lives outside the default PATH of a non-login shell.
for gobin in /usr/local/go/bin "$HOME/go/bin"; do
  [ -d "$gobin" ] && case ":$PATH:" in *":$gobin:"*) ;; *) PATH="$PATH:$gobin" ;; esac
done
export PATH
TOOLS="${MOTCUA_TOOLS_DIR:-$HOME/.cache/motcua}"
FERRETDB_VERSION=v1.24.2
FERRETDB_BIN="$TOOLS/bin/ferretdb-$FERRETDB_VERSION"
NX_VERSION=0.8.1
NX_DIR="$TOOLS/nx-27017-$NX_VERSION"
say() { echo "[provision] $*" >&2; }
APT_UPDATED=0
apt_install() {
  if [ "$APT_UPDATED" = 0 ]; then apt-get update -qq; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# 1. Python environment.
PYTHON=$(command -v python3 || true)
if [ -z "$PYTHON" ]; then say "installing python3"; apt_install python3 python3-venv; PYTHON=$(command -v python3); fi
UV="$TOOLS/uv/bin/uv"
if [ ! -x "$UV" ]; then
  say "installing uv into $TOOLS/uv"
  "$PYTHON" -m venv "$TOOLS/uv" 2>/dev/null || { apt_install python3-venv; rm -rf "$TOOLS/uv"; "$PYTHON" -m venv "$TOOLS/uv"; }
  "$TOOLS/uv/bin/pip" install --quiet --disable-pip-version-check "uv==0.13.9"
fi
say "syncing .venv from uv.lock"
UV_PYTHON_DOWNLOADS=never UV_PYTHON="$PYTHON" "$UV" sync --frozen --quiet

# Debian packages that are servers: installed without starting a system instance (ours run as
# private processes with their data under .run/ or a temporary folder).
apt_install_server() {
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d.motcua
  local clean=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then cp /usr/sbin/policy-rc.d.motcua /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; clean=1; fi
  apt_install "$@"
  rm -f /usr/sbin/policy-rc.d.motcua
  if [ "$clean" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
}

# 2. RabbitMQ.
if [ ! -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; then
  say "installing rabbitmq-server from Debian's packages"
  apt_install_server rabbitmq-server
fi

# promtool (checks and unit-tests the alerting rules under deploy/prometheus); no server is started.
if ! command -v promtool >/dev/null; then
  say "installing prometheus (for promtool) from Debian's packages"
  apt_install_server prometheus
fi

# 3. A MongoDB-wire server.
if [ -n "${MONGODB_URL:-}" ]; then
  say "database: MONGODB_URL"
elif command -v mongod >/dev/null; then
  say "database: mongod on PATH"
fi
DATABASE="${MOTCUA_DATABASE:-$("$PYTHON" -c 'import tools.devstack as d; print(d.DEFAULT_DATABASE)')}"
if [ -n "${MONGODB_URL:-}" ] || command -v mongod >/dev/null; then
  :
elif [ "$DATABASE" = nx-27017 ] || [ "${MOTCUA_PROVISION_ALL_DATABASES:-0}" = 1 ]; then
  if [ ! -e "$NX_DIR/.installed" ]; then
    say "installing nx-27017 $NX_VERSION from PyPI into $NX_DIR"
    rm -rf "$NX_DIR"
    "$PYTHON" -m venv "$NX_DIR"
    # Pinned whole, so every machine runs the server that was measured.
    "$NX_DIR/bin/pip" install --quiet --disable-pip-version-check \
      "nx-27017==$NX_VERSION" "neosqlite==1.17.2" "pymongo==4.20.1" "dnspython==2.9.2"
    touch "$NX_DIR/.installed"
  fi
fi
if [ -n "${MONGODB_URL:-}" ] || command -v mongod >/dev/null; then
  :
elif { [ "$DATABASE" = ferretdb ] || [ "${MOTCUA_PROVISION_ALL_DATABASES:-0}" = 1 ]; } && [ ! -x "$FERRETDB_BIN" ]; then
  command -v go >/dev/null || { say "Go is needed to build FerretDB"; exit 1; }
  say "building FerretDB $FERRETDB_VERSION from its Go module (SQLite backend)"
  # `go install .../cmd/ferretdb@v1.24.2` builds a binary that panics at start: the module
  # ships build/version/version.txt empty and the binary insists on it. So build the same module
  # source with that file filled in, as FerretDB's own docs advise.
  src=$(go mod download -json "github.com/FerretDB/FerretDB@$FERRETDB_VERSION" | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
  work=$(mktemp -d)
  cp -r "$src/." "$work/"
  chmod -R u+w "$work"
  echo "$FERRETDB_VERSION" > "$work/build/version/version.txt"
  mkdir -p "$TOOLS/bin"
  (cd "$work" && CGO_ENABLED=0 go build -trimpath -o "$FERRETDB_BIN.tmp" ./cmd/ferretdb)
  mv "$FERRETDB_BIN.tmp" "$FERRETDB_BIN"
  rm -rf "$work"
  "$FERRETDB_BIN" --version | head -1 >&2
fi
# 4. PostgreSQL 15 for FerretDB's PostgreSQL backend: only `python -m benchmarks.databases`
# uses it (a throw-away cluster of its own), so only when every candidate is wanted.
if [ "${MOTCUA_PROVISION_ALL_DATABASES:-0}" = 1 ] && [ ! -x /usr/lib/postgresql/15/bin/initdb ]; then
  say "installing postgresql from Debian's packages (for benchmarks.databases)"
  apt_install_server postgresql
fi
# 5. What the portal and its browser tests need: Chromium (Playwright drives it through
# executable_path; no browser download), fonts that cover Vietnamese for the PDFs, pdftotext to
# read them back, and the Node.js tools (the OpenID Connect provider, axe-core) from npm.
if [ ! -x /usr/bin/chromium ] || [ ! -d /usr/share/fonts/truetype/noto ] || ! command -v pdftotext >/dev/null; then
  say "installing chromium, fonts-noto-core and poppler-utils from Debian's packages"
  apt_install chromium fonts-noto-core poppler-utils
fi
if ! command -v npm >/dev/null; then say "installing nodejs and npm"; apt_install nodejs npm; fi
if [ ! -e tools/node/node_modules/.package-lock.json ] || [ tools/node/package-lock.json -nt tools/node/node_modules/.package-lock.json ]; then
  say "installing the Node.js test tools (tools/node) from npm"
  npm ci --prefix tools/node --no-audit --no-fund --silent
fi
# 6. helm for the chart's tests (tests/unit/test_helm_chart.py): built from its Go module.
HELM_VERSION=v3.22.0
HELM_BIN="$TOOLS/bin/helm"
if [ ! -x "$HELM_BIN" ] || ! "$HELM_BIN" version --short 2>/dev/null | grep -q "^${HELM_VERSION%.*}"; then
  command -v go >/dev/null || { say "Go is needed to build helm"; exit 1; }
  say "building helm $HELM_VERSION from its Go module into $TOOLS/bin"
  mkdir -p "$TOOLS/bin"
  GOBIN="$TOOLS/bin" go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
fi
say "ready"
