# Shared by scripts/*.sh: finding interpreters and their venvs.
# LINEPROF_PYTHONS overrides the versions tested (space-separated).
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Every version setup.py's python_requires and the README claim.
PYTHONS="${LINEPROF_PYTHONS:-3.8 3.9 3.10 3.11 3.12 3.13}"

# find_python 3.12 -> path of a CPython 3.12 interpreter, or nothing.
find_python() {
  local v="$1" p
  if command -v pyenv >/dev/null 2>&1; then
    for p in "$(pyenv root)"/versions/"$v".*/bin/python; do
      [ -x "$p" ] && { echo "$p"; return; }
    done
  fi
  for p in "$HOME/.pyenv/versions/$v".*/bin/python; do
    [ -x "$p" ] && { echo "$p"; return; }
  done
  command -v "python$v" 2>/dev/null || true
}

venv_of() { echo "$ROOT/.venv/$1"; }
