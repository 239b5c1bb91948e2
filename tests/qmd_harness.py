"""Run and check Quarto documents (.qmd) without Quarto: the proof that the book rebuilds.

Quarto cannot be installed everywhere the tests run, so the report tests do what its Jupyter
engine does and check what its cross-referencing would reject:

- :func:`parse_qmd` splits a document into its Python cells (with their ``#|`` options), its
  inline ```{python} expr``` expressions and its prose;
- :func:`execute` runs the cells in order in a fresh Jupyter kernel (through nbclient), each
  inline expression after the cells that precede it, and raises :class:`QmdExecutionError`
  naming the file and the cell at the first failure;
- :func:`output_problems`, :func:`cross_reference_problems` and :func:`citation_problems` list
  what would be wrong in the rendered book: a ``fig-`` cell without an image, a ``tbl-`` cell
  without a table, an ``@fig-``/``@tbl-``/``@sec-`` reference without its label, a citation
  without its key in the bibliography.

Only the subset of Quarto the book uses is understood; the rules are written next to the
regular expressions that implement them.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import yaml
from nbclient import NotebookClient
from nbclient.exceptions import CellControlSignal, CellExecutionError, DeadKernelError

#: Opening fence of an executable Python cell: ```{python} or ```{python, ...} (3+ backticks).
EXECUTABLE_FENCE = re.compile(r"^(?P<fence>`{3,})\s*\{python(?:[\s,][^}]*)?\}\s*$")
#: Any other fenced block (```bash, ~~~, ```{.python}, ```{=html}): literal text, never run.
LITERAL_FENCE = re.compile(r"^\s*(?P<fence>`{3,}|~{3,})")
#: Inline expression `{python} expr`.
INLINE_EXPRESSION = re.compile(r"`\{python\}\s+(?P<expr>[^`]+?)\s*`")
#: Inline code spans, removed from prose before looking for references and citations.
CODE_SPAN = re.compile(r"(`+)(?:.+?)\1", re.S)
HTML_COMMENT = re.compile(r"<!--.*?-->", re.S)
SHORTCODE = re.compile(r"\{\{<.*?>\}\}", re.S)
#: Pandoc attribute blocks {#id .class key=value}; ids are the labels of headings, divs, etc.
ATTRIBUTES = re.compile(r"\{([^{}\n]*)\}")
ATTRIBUTE_ID = re.compile(r"(?:^|\s)#([A-Za-z][\w:.-]*)")
#: Quarto cross-reference types; `@type-name` is a cross-reference, not a citation.
CROSSREF_PATTERN = "fig|tbl|sec|eq|lst|thm|lem|cor|prp|cnj|def|exm|exr|sol|rem|alg"
CROSSREF_TYPES = frozenset(CROSSREF_PATTERN.split("|"))
#: A cross-reference: @fig-name, not preceded by a word character (e-mail) or a slash (URL).
#: A label ends in a letter, digit or underscore, so a full stop after it is not part of it.
CROSS_REFERENCE = re.compile(r"(?<![\w@/.:~])@((?:" + CROSSREF_PATTERN + r")-[\w.:-]*\w)")
#: A Pandoc citation key: @key, [@key], [-@key], [see @key, p. 3], @{key}. Internal punctuation
#: (:.#$%&-+?<>~/) is allowed; the key ends in a word character. An @ preceded by a word
#: character, a dot, a slash or a colon belongs to an e-mail address, a URL or a handle.
CITATION = re.compile(
    r"(?<![\w@/.:~])-?@(?:\{(?P<braced>[^{}]+)\}|(?P<key>\w(?:[\w:.#$%&+?<>~/-]*\w)?))"
)
BIB_KEY = re.compile(r"^\s*@(?P<type>\w+)\s*\{\s*(?P<key>[^,\s]+)\s*,", re.M)
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
#: A Markdown table: a row with a pipe followed by a separator line of dashes (pipe tables), or
#: a separator of dash groups under a header line (simple tables, as tabulate writes them).
MARKDOWN_TABLE = re.compile(
    r"^[^\n]*\S[^\n]*\n[ \t]*\|?[ \t]*:?-{3,}:?[ \t]*(?:[| \t][ \t]*:?-{3,}:?[ \t]*)*\|?[ \t]*$",
    re.M,
)
IMAGE_TYPES = ("image/png", "image/svg+xml")


# --------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CodeCell:
    """One executable Python cell of a .qmd document.

    Attributes:
        number: 1-based position among the document's Python cells.
        line: line of the opening fence in the file (1-based).
        source: the code, without its ``#|`` option lines.
        options: the cell options (``#|`` YAML lines at the top of the cell).
    """

    number: int
    line: int
    source: str
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str | None:
        value = self.options.get("label")
        return None if value is None else str(value)

    @property
    def first_line(self) -> str:
        return next((ln.strip() for ln in self.source.splitlines() if ln.strip()), "")

    def describe(self) -> str:
        """How a failure message names this cell: its label, or its number and first line."""
        where = f"cell {self.number} (line {self.line})"
        if self.label:
            return f"{where}, label {self.label!r}"
        return f"{where}, first line {self.first_line!r}"


@dataclass(frozen=True)
class InlineExpression:
    """An inline ```{python} expr``` expression; it runs after ``cells_before`` cells."""

    expr: str
    line: int
    cells_before: int

    def describe(self) -> str:
        return f"inline expression `{{python}} {self.expr}` (line {self.line})"


@dataclass(frozen=True)
class QmdDocument:
    """A parsed .qmd file.

    Attributes:
        path: the file.
        meta: its YAML front matter (empty if none).
        cells: its Python cells, in order.
        inlines: its inline expressions, in order.
        prose: the Markdown outside code, with code spans, comments and shortcodes removed:
            the text in which references and citations are looked for.
        labels: every label defined in the document: cell labels and ``{#id}`` attributes.
    """

    path: Path
    meta: Mapping[str, Any]
    cells: tuple[CodeCell, ...]
    inlines: tuple[InlineExpression, ...]
    prose: str
    labels: frozenset[str]

    @property
    def eval_default(self) -> bool:
        """Whether cells run unless they say otherwise (front matter ``execute: eval``)."""
        execute = self.meta.get("execute") or {}
        return execute.get("eval", True) is not False

    def runs(self, cell: CodeCell) -> bool:
        """Whether ``cell`` is executed (``#| eval: false`` cells are not)."""
        return cell.options.get("eval", self.eval_default) is not False


def _front_matter(lines: list[str]) -> tuple[dict[str, Any], int]:
    """YAML front matter of a document and the index of its first body line."""
    if not lines or lines[0].strip() != "---":
        return {}, 0
    for i in range(1, len(lines)):
        if lines[i].strip() in ("---", "..."):
            meta = yaml.safe_load("\n".join(lines[1:i])) or {}
            return (meta if isinstance(meta, dict) else {}), i + 1
    return {}, 0


def _cell_options(body: list[str], path: Path, line: int) -> tuple[dict[str, Any], list[str]]:
    """Split a cell body into its ``#|`` options (YAML) and its code."""
    n = 0
    while n < len(body) and body[n].lstrip().startswith("#|"):
        n += 1
    text = "\n".join(ln.lstrip()[2:] for ln in body[:n])
    try:
        options = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: cell at line {line}: invalid #| options: {exc}") from exc
    if not isinstance(options, dict):
        raise ValueError(f"{path}: cell at line {line}: #| options must be key: value lines")
    return options, body[n:]


def parse_qmd(path: str | Path) -> QmdDocument:
    """Parse a .qmd file into cells, inline expressions, prose and labels."""
    path = Path(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    meta, i = _front_matter(lines)
    cells: list[CodeCell] = []
    inlines: list[InlineExpression] = []
    prose: list[str] = []
    while i < len(lines):
        line = lines[i]
        executable = EXECUTABLE_FENCE.match(line.strip())
        literal = None if executable else LITERAL_FENCE.match(line)
        if executable or literal:
            fence = (executable or literal).group("fence")
            end = i + 1
            while end < len(lines) and not (
                lines[end].strip().startswith(fence) and lines[end].strip().strip(fence[0]) == ""
            ):
                end += 1
            if executable:
                options, code = _cell_options(lines[i + 1 : end], path, i + 1)
                cells.append(CodeCell(len(cells) + 1, i + 1, "\n".join(code), options))
            i = end + 1
            continue
        for m in INLINE_EXPRESSION.finditer(line):
            inlines.append(InlineExpression(m.group("expr"), i + 1, len(cells)))
        prose.append(line)
        i += 1
    text = SHORTCODE.sub(" ", HTML_COMMENT.sub(" ", "\n".join(prose)))
    text = CODE_SPAN.sub(" ", text)
    labels = {c.label for c in cells if c.label}
    for block in ATTRIBUTES.finditer(text):
        labels.update(ATTRIBUTE_ID.findall(block.group(1)))
    return QmdDocument(path, meta, tuple(cells), tuple(inlines), text, frozenset(labels))


# --------------------------------------------------------------------------------------------
# The book
# --------------------------------------------------------------------------------------------
def _quarto_config(root: Path) -> dict[str, Any]:
    return yaml.safe_load((root / "_quarto.yml").read_text(encoding="utf-8")) or {}


def _chapter_files(items: Iterable[Any]) -> list[str]:
    """File names of a book's chapter list (strings, or parts with their own chapters)."""
    files: list[str] = []
    for item in items or []:
        if isinstance(item, str):
            files.append(item)
        elif isinstance(item, dict):
            for key in ("part", "href", "file"):  # a part may itself be a .qmd page
                if str(item.get(key, "")).endswith(".qmd"):
                    files.append(item[key])
            files.extend(_chapter_files(item.get("chapters") or []))
    return files


def book_documents(root: Path) -> list[Path]:
    """The book's .qmd files in reading order, as ``_quarto.yml`` lists them."""
    book = _quarto_config(root).get("book") or {}
    names = _chapter_files(book.get("chapters")) + _chapter_files(book.get("appendices"))
    return [root / name for name in names if name.endswith(".qmd")]


def render_list(root: Path) -> list[Path]:
    """The files ``quarto render`` renders at the root (``project: render``)."""
    project = _quarto_config(root).get("project") or {}
    return [root / name for name in project.get("render") or []]


def deck_documents(root: Path) -> list[Path]:
    """The slide decks: ``slides/*.qmd``."""
    return sorted((root / "slides").glob("*.qmd"))


def bib_keys(path: Path) -> frozenset[str]:
    """Citation keys defined in a BibTeX file (not @comment, @string, @preamble)."""
    text = path.read_text(encoding="utf-8")
    return frozenset(
        m.group("key")
        for m in BIB_KEY.finditer(text)
        if m.group("type").lower() not in ("comment", "string", "preamble")
    )


# --------------------------------------------------------------------------------------------
# Static checks
# --------------------------------------------------------------------------------------------
def cross_references(doc: QmdDocument) -> list[str]:
    """The labels a document refers to with ``@fig-``, ``@tbl-``, ``@sec-``, ... in its prose."""
    return CROSS_REFERENCE.findall(doc.prose)


def citations(doc: QmdDocument) -> list[str]:
    """The citation keys a document uses (cross-references excluded)."""
    keys = []
    for m in CITATION.finditer(doc.prose):
        key = m.group("braced") or m.group("key")
        if key.split("-", 1)[0] in CROSSREF_TYPES and "-" in key:
            continue
        keys.append(key)
    return keys


def cross_reference_problems(doc: QmdDocument, book_labels: Iterable[str] = ()) -> list[str]:
    """References without their label: in the same document, or among ``book_labels`` (every
    label of the book, when ``doc`` is one of its chapters: Quarto resolves a book's cross
    references across chapters)."""
    known = set(book_labels)
    where = "in this document or any chapter" if known else "in this document"
    return [
        f"{doc.path}: @{label} refers to a label defined nowhere {where}"
        for label in cross_references(doc)
        if label not in doc.labels and label not in known
    ]


def citation_problems(doc: QmdDocument, keys: Iterable[str]) -> list[str]:
    """Citations whose key is not in the bibliography."""
    known = set(keys)
    return [
        f"{doc.path}: citation @{key} has no entry in the bibliography"
        for key in citations(doc)
        if key not in known
    ]


# --------------------------------------------------------------------------------------------
# Execution
# --------------------------------------------------------------------------------------------
class QmdExecutionError(AssertionError):
    """A cell or an inline expression of a document raised; the message names which."""


@dataclass
class ExecutedDocument:
    """A document after execution.

    Attributes:
        doc: the parsed document.
        outputs: the Jupyter outputs of each executed cell, by cell number.
        inline_values: the ``text/plain`` value of each inline expression, in order.
    """

    doc: QmdDocument
    outputs: dict[int, list[dict[str, Any]]]
    inline_values: list[str]


def install_kernel(folder: Path, env: Mapping[str, str], name: str = "microsub-report") -> str:
    """Write a kernelspec for this Python (``sys.executable``) into ``folder/kernels/name``.

    ``folder`` must be on ``JUPYTER_PATH`` for Jupyter to find it. ``env`` is set in every
    kernel started from it (the data profile and folders the chapters read).
    """
    spec = folder / "kernels" / name
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "microsub report tests",
                "language": "python",
                "env": dict(env),
            },
            indent=1,
        ),
        encoding="utf-8",
    )
    return name


def _error_text(exc: BaseException) -> str:
    """The error name, value and last traceback lines of an nbclient failure, without colours."""
    if isinstance(exc, CellExecutionError):
        tail = "\n".join(ANSI.sub("", str(exc)).strip().splitlines()[-12:])
        return f"{exc.ename}: {ANSI.sub('', exc.evalue)}\n{tail}"
    return f"{type(exc).__name__}: {exc}"


def execute(
    doc: QmdDocument, *, kernel_name: str, cwd: Path, timeout: int = 900
) -> ExecutedDocument:
    """Run a document's cells and inline expressions in order in a fresh kernel.

    Args:
        doc: the parsed document.
        kernel_name: a kernelspec name (see :func:`install_kernel`).
        cwd: working directory of the kernel (the project root: ``execute-dir: project``).
        timeout: seconds one cell may run.

    Raises:
        QmdExecutionError: at the first cell or inline expression that raises (or times out,
            or kills the kernel), naming the file and the cell.
    """
    # document order: an inline expression runs after the cells that precede it in the file
    steps: list[CodeCell | InlineExpression] = [e for e in doc.inlines if e.cells_before == 0]
    for cell in doc.cells:
        if doc.runs(cell):
            steps.append(cell)
        steps += [e for e in doc.inlines if e.cells_before == cell.number]

    nb = nbformat.v4.new_notebook()
    for step in steps:
        source = step.source if isinstance(step, CodeCell) else f"({step.expr})"
        nb.cells.append(nbformat.v4.new_code_cell(source))
    client = NotebookClient(
        nb,
        kernel_name=kernel_name,
        timeout=timeout,
        allow_errors=False,
        resources={"metadata": {"path": str(cwd)}},
    )
    outputs: dict[int, list[dict[str, Any]]] = {}
    values: list[str] = []
    with client.setup_kernel():
        for index, (step, nb_cell) in enumerate(zip(steps, nb.cells, strict=True)):
            try:
                client.execute_cell(nb_cell, index)
            except (CellControlSignal, DeadKernelError) as exc:  # errors, timeouts, dead kernel
                raise QmdExecutionError(
                    f"{doc.path}: {step.describe()} failed:\n{_error_text(exc)}"
                ) from None
            if isinstance(step, CodeCell):
                outputs[step.number] = [dict(o) for o in nb_cell.outputs]
            else:
                result = [o for o in nb_cell.outputs if o.get("output_type") == "execute_result"]
                values.append(result[0]["data"].get("text/plain", "") if result else "")
    return ExecutedDocument(doc, outputs, values)


def _has_table(cell: CodeCell, outputs: list[dict[str, Any]]) -> bool:
    for out in outputs:
        data = out.get("data") or {}
        if "<table" in str(data.get("text/html", "")).lower():
            return True
        if MARKDOWN_TABLE.search(str(data.get("text/markdown", ""))):
            return True
        asis = cell.options.get("output") == "asis"
        if asis and out.get("output_type") == "stream" and MARKDOWN_TABLE.search(out["text"]):
            return True
    return False


def output_problems(executed: ExecutedDocument) -> list[str]:
    """Labelled cells without the output their label promises.

    A ``fig-`` cell must display an image (PNG or SVG); a ``tbl-`` cell must display a table
    (an HTML table, a Markdown table, or a Markdown table printed by an ``output: asis`` cell).
    """
    problems = []
    for cell in executed.doc.cells:
        if cell.number not in executed.outputs or not cell.label:
            continue
        outputs = executed.outputs[cell.number]
        if cell.label.startswith("fig-"):
            if not any(t in (o.get("data") or {}) for o in outputs for t in IMAGE_TYPES):
                problems.append(f"{executed.doc.path}: {cell.describe()} displayed no image")
        elif cell.label.startswith("tbl-") and not _has_table(cell, outputs):
            problems.append(f"{executed.doc.path}: {cell.describe()} displayed no table")
    return problems


# --------------------------------------------------------------------------------------------
# Rules a rendered book must keep (labels, captions, inline values, references in output)
# --------------------------------------------------------------------------------------------
#: Text an inline value must not hold: a number that does not exist, or an empty answer.
MISSING_VALUE = re.compile(r"(?<![\w.])(?:nan|NaN|None|-?inf|n/a)(?![\w])")
#: Caption option a labelled cell needs, by label prefix.
CAPTION_OPTIONS = {"fig-": "fig-cap", "tbl-": "tbl-cap"}


def label_definitions(docs: Iterable[QmdDocument]) -> dict[str, list[str]]:
    """Every label (cell labels and ``{#id}`` attributes) -> where it is defined.

    A label defined twice appears with two places (for example in two chapters)."""
    found: dict[str, list[str]] = {}
    for doc in docs:
        ids = [c.label for c in doc.cells if c.label]
        for block in ATTRIBUTES.finditer(doc.prose):
            ids.extend(ATTRIBUTE_ID.findall(block.group(1)))
        for label in ids:
            found.setdefault(label, []).append(str(doc.path))
    return found


def duplicate_labels(docs: Iterable[QmdDocument]) -> list[str]:
    """Labels defined more than once across ``docs``: ambiguous in HTML and a broken
    cross-reference in a single-document PDF."""
    return [
        f"label {label!r} is defined {len(places)} times: {', '.join(places)}"
        for label, places in sorted(label_definitions(docs).items())
        if len(places) > 1
    ]


#: An f-string with a format spec ({x:.2f}, {n:,}, {s:.0%}): a number rounded by hand.
F_STRING = re.compile(r"(?<![\w])[fF][rR]?([\"'])")
FORMAT_SPEC = re.compile(r"\{[^{}]*?:[^{}]*\}")


def inline_format_problems(doc: QmdDocument) -> list[str]:
    """Inline expressions that round a number by hand (an f-string format spec) instead of
    through :mod:`microsub.fmt`, so one quantity could read two ways in the book."""
    return [
        f"{doc.path}: {e.describe()} formats a number by hand; use microsub.fmt "
        "(format_number, format_percent, format_count, format_money)"
        for e in doc.inlines
        if F_STRING.search(e.expr) and FORMAT_SPEC.search(e.expr)
    ]


def caption_problems(doc: QmdDocument) -> list[str]:
    """``fig-`` / ``tbl-`` cells without their caption option."""
    problems = []
    for cell in doc.cells:
        for prefix, option in CAPTION_OPTIONS.items():
            if cell.label and cell.label.startswith(prefix) and not cell.options.get(option):
                problems.append(f"{doc.path}: {cell.describe()} has no {option}")
    return problems


def inline_value_problems(executed: ExecutedDocument) -> list[str]:
    """Inline expressions whose value is empty or says a number is missing (nan, None, inf,
    n/a): a sentence of the book would print it."""
    problems = []
    for expr, value in zip(executed.doc.inlines, executed.inline_values, strict=True):
        text = value.strip().strip("'\"")
        if not text.strip():
            problems.append(f"{executed.doc.path}: {expr.describe()} is empty")
        elif MISSING_VALUE.search(text):
            problems.append(f"{executed.doc.path}: {expr.describe()} printed {value!r}")
    return problems


def rendered_texts(executed: ExecutedDocument) -> list[tuple[str, str]]:
    """What the code puts into the text: ``(where, text)`` of every inline value and every
    Markdown or plain-text output of a cell (``output: asis`` streams included)."""
    texts = [
        (expr.describe(), value)
        for expr, value in zip(executed.doc.inlines, executed.inline_values, strict=True)
    ]
    for cell in executed.doc.cells:
        for out in executed.outputs.get(cell.number, []):
            data = out.get("data") or {}
            if "text/markdown" in data:
                texts.append((cell.describe(), str(data["text/markdown"])))
            if out.get("output_type") == "stream" and cell.options.get("output") == "asis":
                texts.append((cell.describe(), str(out.get("text", ""))))
    return texts


#: A number in scientific notation (1.2e-05), which no reader should meet in prose or a table.
SCIENTIFIC = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?[eE][-+]?\d+(?![\w.])")
#: A decimal number (thousands separators allowed), not part of a longer dotted token.
DECIMAL = re.compile(r"(?<![\w.])\d[\d,]*\.\d+(?![\w.])")
#: Fenced code and code spans: printed configuration and identifiers are not prose numbers.
CODE = re.compile(r"```.*?```|`[^`\n]*`", re.DOTALL)


def number_format_problems(executed: ExecutedDocument, digits: int = 3) -> list[str]:
    """Numbers the code writes into the text that break the package's rounding rule
    (:func:`microsub.fmt.format_number`): scientific notation, or a decimal with more than
    ``digits`` significant digits (``2.790``, ``0.81034``, ``123.4``)."""
    problems = []
    for where, text in rendered_texts(executed):
        prose = CODE.sub(" ", text)
        for number in SCIENTIFIC.findall(prose):
            problems.append(
                f"{executed.doc.path}: {where} writes {number!r} in scientific notation"
            )
        for number in DECIMAL.findall(prose):
            significant = number.replace(",", "").replace(".", "").lstrip("0")
            if len(significant) > digits:
                problems.append(
                    f"{executed.doc.path}: {where} writes {number!r}: more than {digits} "
                    "significant digits (format it with microsub.fmt)"
                )
    return problems


def rendered_reference_problems(
    executed: ExecutedDocument, book_labels: Iterable[str] = ()
) -> list[str]:
    """Cross-references written by the code (in an inline value or a Markdown output) whose
    label is defined nowhere: the static check of the prose cannot see them."""
    known = set(executed.doc.labels) | set(book_labels)
    problems = []
    for where, text in rendered_texts(executed):
        for label in CROSS_REFERENCE.findall(text):
            if label not in known:
                problems.append(
                    f"{executed.doc.path}: {where} writes @{label}, a label defined nowhere"
                )
    return problems
