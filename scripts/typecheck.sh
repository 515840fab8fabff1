#!/usr/bin/env bash
# Type-check the edgebench package with mypy (configuration: pyproject.toml [tool.mypy]).
#
#   scripts/typecheck.sh            # exit 0 when clean; errors are printed with the repository's paths
#
# setup.py maps the card's folders engines/, agent/, host/ to edgebench.engines, .agent, .host (package-dir),
# which mypy cannot follow in the source tree. So a copy of the sources is installed into a temporary folder
# (pip --target: the layout users get) and mypy checks that, with the venv's interpreter for the third-party
# packages. The temporary folder is removed however the script ends. Error paths are mapped back
# (edgebench/host/x.py -> host/x.py) so that an editor can open them.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

python="$repo/.venv/bin/python"
[ -x "$python" ] || python=$(command -v python3)
if ! "$python" -m mypy --version >/dev/null 2>&1; then
    echo "typecheck.sh: mypy is not installed for $python: pip install -e '.[test]'" >&2
    exit 2
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Build from a staged copy of the working tree (tracked and untracked files, not ignored ones): a build in the
# repository would leave a build/ folder there, whose stale files could reach the checked copy.
sources=(setup.py pyproject.toml README.md edgebench engines agent host)
mkdir "$tmp/src"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files -z --cached --others --exclude-standard -- "${sources[@]}" \
        | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
        | xargs -0 cp --parents -t "$tmp/src"
else
    cp -r "${sources[@]}" "$tmp/src"
fi
"$python" -m pip install -q --no-deps --disable-pip-version-check --target "$tmp/typed" "$tmp/src" >/dev/null

status=0
(cd "$tmp/typed" && "$python" -m mypy --config-file "$repo/pyproject.toml" --cache-dir "$tmp/cache" \
    --python-executable "$python" -p edgebench) >"$tmp/out" 2>&1 || status=$?
sed -E 's#^edgebench/(engines|agent|host)/#\1/#' "$tmp/out"
exit "$status"
