#!/usr/bin/env bash
# Render the book (HTML and a Typst PDF) into _book/ and the slide deck into _book/slides/.
#
#   usage: scripts/render.sh BIN     BIN = the project's virtualenv bin folder (make: .venv/bin)
#
# The Makefile's `render` target calls this after `make pipeline`, so the pipeline's results are
# cached and the chapters only read them. The commands it runs, from the project root:
#
#   quarto render
#       the book, every format of _quarto.yml, into _book/ (the PDF is _book/microsub.pdf).
#       Needs Quarto >= 1.9, the first release that renders book projects to Typst.
#   quarto render slides/presentation.qmd --execute-dir "$ROOT" --output-dir "$ROOT/_book/slides"
#       the deck. Book projects reject revealjs, so slides/ is a Quarto project of its own
#       (slides/_quarto.yml); --execute-dir runs its cells from the root, as the book's run.
#
# The book goes first: a full render of the book project cleans _book/ before writing it.
# Quarto comes from PATH, else from the quarto-cli package (`pip install '.[report]'`, which
# downloads Quarto while it installs). QUARTO_PYTHON makes Quarto's Jupyter kernel the project's.
set -euo pipefail

MIN_QUARTO=1.9

if [ $# -ne 1 ] || [ ! -x "$1/python" ]; then
  echo "usage: scripts/render.sh BIN   (BIN: the virtualenv bin folder holding python, e.g. .venv/bin)" >&2
  exit 2
fi
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=$(cd "$1" && pwd)
cd "$ROOT"
export QUARTO_PYTHON="$BIN/python"

# Print the path of a working quarto: PATH first, then the quarto-cli package in BIN.
find_quarto() {
  local candidate
  for candidate in "$(command -v quarto 2>/dev/null || true)" "$BIN/quarto" \
    "$("$BIN/python" -c 'import os, quarto_cli; print(os.path.join(os.path.dirname(quarto_cli.__file__), "bin", "quarto"))' 2>/dev/null || true)"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ] && "$candidate" --version >/dev/null 2>&1; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

no_quarto() {
  cat >&2 <<EOF

render.sh: $1
The book was not rendered. Everything before the render has been produced: \`make report\` ran
the pipeline and cached its results in the data folder, and \`make test\` executes every chapter
and the deck. Only the HTML book, its PDF and the deck are missing. To render them, install
Quarto ${MIN_QUARTO} or later and run \`make render\` again:
  - download it from https://quarto.org/docs/get-started/ (puts \`quarto\` on PATH), or
  - with network access: $BIN/python -m pip install 'quarto-cli>=${MIN_QUARTO}'
    (the package downloads Quarto while it installs)
EOF
  exit 1
}

if ! QUARTO=$(find_quarto); then
  log="${TMPDIR:-/tmp}/microsub-quarto-install.log"
  echo "render.sh: quarto not found; installing it: $BIN/python -m pip install -e '.[report]'" >&2
  if "$BIN/python" -m pip install -e '.[report]' >"$log" 2>&1; then
    QUARTO=$(find_quarto) || no_quarto "quarto-cli installed, but no working quarto came with it."
  else
    no_quarto "Quarto is not installed and pip could not install it (no network?); see $log"
  fi
fi

version=$("$QUARTO" --version | tr -d '[:space:]')
if [ "$(printf '%s\n%s\n' "$MIN_QUARTO" "$version" | sort -V | head -n1)" != "$MIN_QUARTO" ]; then
  no_quarto "$QUARTO is Quarto $version; the book's Typst PDF needs Quarto ${MIN_QUARTO} or later."
fi

echo "render.sh: Quarto $version ($QUARTO), Python $QUARTO_PYTHON"
"$QUARTO" render
"$QUARTO" render slides/presentation.qmd --execute-dir "$ROOT" --output-dir "$ROOT/_book/slides"
echo "render.sh: book in _book/ (index.html, microsub.pdf), deck in _book/slides/presentation.html"
