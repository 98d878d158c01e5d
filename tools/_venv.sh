# Sourced by tools/demo and tools/test: create or reuse .venv and install callgate.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "callgate needs Python 3.11 or newer; $PY is $("$PY" --version 2>&1)" >&2
    exit 1
fi
VENV="$ROOT/.venv"
if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
fi
# Reinstall only when the package metadata changed since the last install, or
# when extras are wanted that the last install did not include.
STAMP="$VENV/.callgate-installed"
EXTRAS="${CALLGATE_EXTRAS:-}"
HASH="$(cat "$ROOT/setup.cfg" "$ROOT/pyproject.toml" | sha256sum | cut -c1-16)"
OLD_HASH="" OLD_EXTRAS=""
[ -f "$STAMP" ] && read -r OLD_HASH OLD_EXTRAS < "$STAMP"
if [ "${OLD_HASH:-}" = "$HASH" ] && { [ -z "$EXTRAS" ] || [[ ",${OLD_EXTRAS:-}," == *",$EXTRAS,"* ]]; }; then
    :
else
    [ "${OLD_HASH:-}" = "$HASH" ] && [ -n "${OLD_EXTRAS:-}" ] && EXTRAS="$OLD_EXTRAS${EXTRAS:+,$EXTRAS}"
    echo "installing callgate${EXTRAS:+[$EXTRAS]} into $VENV" >&2
    "$VENV/bin/python" -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
    "$VENV/bin/python" -m pip install --quiet -e "$ROOT${EXTRAS:+[$EXTRAS]}" >"$VENV/pip.log" 2>&1 \
        || { cat "$VENV/pip.log" >&2; echo "pip install of callgate failed (log above)" >&2; exit 1; }
    echo "$HASH $EXTRAS" > "$STAMP"
fi
