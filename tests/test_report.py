"""The book and the deck rebuild: every chapter's and the deck's code runs, and what the
rendered documents promise (figures, tables, references, citations) is there.

Quarto is not needed: the documents' Python cells run in a fresh Jupyter kernel per document
(see ``qmd_harness``), from the project root, on the small ``ci`` data profile whose data folder
and lake are shared by all documents of the session, so the pipeline runs once and is cached.
The kernel tests are marked ``report`` (``pytest -m report`` runs only them).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

import qmd_harness

ROOT = Path(__file__).resolve().parents[1]
BOOK = qmd_harness.book_documents(ROOT)
DECK = qmd_harness.deck_documents(ROOT)
DOCUMENTS = BOOK + DECK
BIBLIOGRAPHY = ROOT / "references.bib"


def _name(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


@pytest.fixture(scope="session")
def report_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Settings every document's kernel runs with: the ci profile and one shared data folder,
    where the whole pipeline has run first, as ``make report`` runs it before rendering (so
    the chapters read registered champions and a measured scoring service; a 2 s latency check
    keeps it short)."""
    from microsub import pipeline
    from microsub.config import Settings

    base = tmp_path_factory.mktemp("report-data")
    env = {
        "MICROSUB_PROFILE": "ci",
        "MICROSUB_DATA_DIR": str(base / "data"),
        "MICROSUB_LAKE": str(base / "lake"),
        "MICROSUB_LATENCY_CHECK_SECONDS": "2",
    }
    pipeline.run(
        Settings(profile="ci", data_dir=base / "data", lake=str(base / "lake"),
                 latency_check_seconds=2.0)
    )  # fmt: skip
    return env


@pytest.fixture(scope="session")
def kernel(tmp_path_factory: pytest.TempPathFactory, report_env: dict[str, str]) -> Iterator[str]:
    """A kernelspec for this interpreter in a temporary JUPYTER_PATH."""
    folder = tmp_path_factory.mktemp("jupyter")
    name = qmd_harness.install_kernel(folder, env=report_env)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTER_PATH", str(folder), prepend=os.pathsep)
        yield name


@pytest.fixture(scope="module")
def book_labels() -> frozenset[str]:
    return frozenset().union(*(qmd_harness.parse_qmd(p).labels for p in BOOK))


# --------------------------------------------------------------------------------------------
# Structure of the book and the deck
# --------------------------------------------------------------------------------------------
def test_book_is_the_preface_and_eight_chapters_in_order() -> None:
    names = [_name(p) for p in BOOK]
    assert names[0] == "index.qmd", names
    chapters = names[1:]
    assert [n.split("/")[0] for n in chapters] == ["chapters"] * 8, names
    assert chapters == sorted(chapters), f"chapters out of order: {chapters}"
    assert [n.split("/")[1][:3] for n in chapters] == [f"0{i}-" for i in range(1, 9)], names
    missing = [n for n, p in zip(names, BOOK, strict=True) if not p.is_file()]
    assert not missing, f"_quarto.yml lists chapters that do not exist: {missing}"


def test_root_render_list_is_exactly_the_book() -> None:
    # `quarto render` at the root must render the book and nothing else (not the deck)
    assert qmd_harness.render_list(ROOT) == BOOK, (
        "project.render in _quarto.yml must equal book.chapters "
        f"(render: {[_name(p) for p in qmd_harness.render_list(ROOT)]})"
    )


def test_deck_is_a_revealjs_project_of_its_own() -> None:
    assert [_name(p) for p in DECK] == ["slides/presentation.qmd"]
    meta = qmd_harness.parse_qmd(DECK[0]).meta
    assert "revealjs" in (meta.get("format") or {}), f"deck format is {meta.get('format')!r}"
    config = yaml.safe_load((ROOT / "slides" / "_quarto.yml").read_text(encoding="utf-8"))
    assert config["project"]["type"] == "default"
    assert (ROOT / "slides" / config["bibliography"]).resolve() == BIBLIOGRAPHY


def test_every_label_is_unique_across_the_book_and_the_deck() -> None:
    docs = [qmd_harness.parse_qmd(p) for p in DOCUMENTS]
    problems = qmd_harness.duplicate_labels(docs)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", DOCUMENTS, ids=_name)
def test_inline_numbers_go_through_the_shared_formatter(path: Path) -> None:
    problems = qmd_harness.inline_format_problems(qmd_harness.parse_qmd(path))
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", DOCUMENTS, ids=_name)
def test_every_figure_and_table_has_a_caption(path: Path) -> None:
    problems = qmd_harness.caption_problems(qmd_harness.parse_qmd(path))
    assert not problems, "\n".join(problems)


def test_every_bibliography_entry_is_cited() -> None:
    cited = {key for p in DOCUMENTS for key in qmd_harness.citations(qmd_harness.parse_qmd(p))}
    unused = sorted(qmd_harness.bib_keys(BIBLIOGRAPHY) - cited)
    assert not unused, f"references.bib holds entries no document cites: {unused}"


# --------------------------------------------------------------------------------------------
# References and citations, document by document (no kernel)
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", DOCUMENTS, ids=_name)
def test_cross_references_resolve(path: Path, book_labels: frozenset[str]) -> None:
    doc = qmd_harness.parse_qmd(path)
    known = book_labels if path in BOOK else frozenset()
    problems = qmd_harness.cross_reference_problems(doc, known)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", DOCUMENTS, ids=_name)
def test_citations_are_in_the_bibliography(path: Path) -> None:
    doc = qmd_harness.parse_qmd(path)
    problems = qmd_harness.citation_problems(doc, qmd_harness.bib_keys(BIBLIOGRAPHY))
    assert not problems, "\n".join(problems)


def test_checks_catch_a_missing_label_and_a_missing_key(tmp_path: Path) -> None:
    doc_path = tmp_path / "broken.qmd"
    doc_path.write_text(
        "# Broken {#sec-broken}\n\n"
        "As @fig-nowhere shows, and @sec-broken says [see @nobody1999, p. 3; @pei2019value].\n"
        "Write to analyst@example.com or https://example.com/@handle; `@inside_code` is code.\n"
        "Table @tbl-here is defined below, @sec-problem in another chapter.\n\n"
        "```{python}\n#| label: tbl-here\nprint(1)\n```\n",
        encoding="utf-8",
    )
    doc = qmd_harness.parse_qmd(doc_path)

    refs = qmd_harness.cross_reference_problems(doc, book_labels={"sec-problem"})
    assert len(refs) == 1 and "@fig-nowhere" in refs[0] and str(doc_path) in refs[0], refs
    alone = qmd_harness.cross_reference_problems(doc)  # not part of the book: @sec-problem fails
    assert sorted(p.split("@")[1].split()[0] for p in alone) == ["fig-nowhere", "sec-problem"]

    cites = qmd_harness.citation_problems(doc, qmd_harness.bib_keys(BIBLIOGRAPHY))
    assert cites == [f"{doc_path}: citation @nobody1999 has no entry in the bibliography"]
    assert qmd_harness.citations(doc) == ["nobody1999", "pei2019value"]


def test_inline_check_catches_a_number_rounded_by_hand(tmp_path: Path) -> None:
    doc_path = tmp_path / "inline.qmd"
    doc_path.write_text(
        'A `{python} f"{share:.0%}"`, b `{python} fmt.format_percent(share)`, '
        'c `{python} f"{n:,} pages"`, d `{python} f"{name} of {kind}"`.\n',
        encoding="utf-8",
    )
    problems = qmd_harness.inline_format_problems(qmd_harness.parse_qmd(doc_path))
    assert len(problems) == 2, problems
    assert "share:.0%" in problems[0] and "n:," in problems[1]


def test_number_check_catches_what_breaks_the_rounding_rule(tmp_path: Path) -> None:
    doc_path = tmp_path / "numbers.qmd"
    doc_path.write_text(
        "A `{python} a`, b `{python} b`, c `{python} c`, d `{python} d`.\n\n"
        "```{python}\n#| label: tbl-n\n#| tbl-cap: n\nx = 1\n```\n",
        encoding="utf-8",
    )
    doc = qmd_harness.parse_qmd(doc_path)
    table = "| AUC | p |\n|---|---|\n| 0.81034 | 1.2e-05 |\n| 0.810 | < 0.001 |\n"
    executed = qmd_harness.ExecutedDocument(
        doc=doc,
        outputs={1: [{"output_type": "display_data", "data": {"text/markdown": table}}]},
        inline_values=["2.790 pages", "25.2 %", "release 3.2.1 of `0.12345`", "2,412.5"],
    )
    problems = qmd_harness.number_format_problems(executed)
    found = sorted(p.split(" writes ")[1].split(" ")[0].rstrip(":") for p in problems)
    assert found == ["'0.81034'", "'1.2e-05'", "'2,412.5'", "'2.790'"], problems


def test_cells_options_and_inline_expressions_are_parsed(tmp_path: Path) -> None:
    doc_path = tmp_path / "cells.qmd"
    doc_path.write_text(
        "---\ntitle: t\n---\n\nBefore `{python} 1 + 1`.\n\n"
        '```{python}\n#| label: fig-one\n#| fig-cap: "One: a caption"\nx = 1\n```\n\n'
        "```bash\necho `{python} not_an_expression`\n```\n\n"
        "```{python}\n#| eval: false\nraise SystemExit\n```\n\nAfter `{python} x`.\n",
        encoding="utf-8",
    )
    doc = qmd_harness.parse_qmd(doc_path)
    assert doc.meta == {"title": "t"}
    assert [(c.number, c.label, c.source) for c in doc.cells] == [
        (1, "fig-one", "x = 1"),
        (2, None, "raise SystemExit"),
    ]
    assert doc.cells[0].options["fig-cap"] == "One: a caption"
    assert [doc.runs(c) for c in doc.cells] == [True, False]
    assert [(e.expr, e.cells_before) for e in doc.inlines] == [("1 + 1", 0), ("x", 2)]
    assert doc.cells[1].describe() == "cell 2 (line 17), first line 'raise SystemExit'"
    assert doc.cells[0].describe() == "cell 1 (line 7), label 'fig-one'"


# --------------------------------------------------------------------------------------------
# Execution in a Jupyter kernel
# --------------------------------------------------------------------------------------------
@pytest.mark.report
@pytest.mark.parametrize("path", DOCUMENTS, ids=_name)
def test_document_executes_and_shows_what_it_promises(
    path: Path, kernel: str, book_labels: frozenset[str]
) -> None:
    doc = qmd_harness.parse_qmd(path)
    executed = qmd_harness.execute(doc, kernel_name=kernel, cwd=ROOT)
    assert len(executed.inline_values) == len(doc.inlines)
    known = book_labels if path in BOOK else frozenset()
    problems = (
        qmd_harness.output_problems(executed)
        + qmd_harness.inline_value_problems(executed)
        + qmd_harness.rendered_reference_problems(executed, known)
        + qmd_harness.number_format_problems(executed)
    )
    assert not problems, "\n".join(problems)


@pytest.mark.report
def test_harness_names_the_file_and_cell_that_raise(tmp_path: Path, kernel: str) -> None:
    chapter = tmp_path / "02-data.qmd"
    shutil.copy(ROOT / "chapters" / "02-data.qmd", chapter)
    n_cells = len(qmd_harness.parse_qmd(chapter).cells)
    with chapter.open("a", encoding="utf-8") as f:
        f.write("\n```{python}\ntotal = 1\nshare = total / 0\n```\n")

    with pytest.raises(qmd_harness.QmdExecutionError) as failure:
        qmd_harness.execute(qmd_harness.parse_qmd(chapter), kernel_name=kernel, cwd=ROOT)
    message = str(failure.value)
    assert message.startswith(f"{chapter}: cell {n_cells + 1} "), message
    assert "first line 'total = 1'" in message and "ZeroDivisionError" in message, message


def test_checks_catch_duplicate_labels_and_missing_captions(tmp_path: Path) -> None:
    one, two = tmp_path / "one.qmd", tmp_path / "two.qmd"
    one.write_text("# One {#sec-one}\n\n```{python}\n#| label: tbl-gates\nx = 1\n```\n")
    two.write_text(
        "# Two {#sec-one}\n\n```{python}\n#| label: tbl-gates\n#| tbl-cap: Gates\nx = 1\n```\n"
    )
    docs = [qmd_harness.parse_qmd(p) for p in (one, two)]
    assert qmd_harness.duplicate_labels(docs) == [
        f"label 'sec-one' is defined 2 times: {one}, {two}",
        f"label 'tbl-gates' is defined 2 times: {one}, {two}",
    ]
    assert qmd_harness.caption_problems(docs[0]) == [
        f"{one}: cell 1 (line 3), label 'tbl-gates' has no tbl-cap"
    ]
    assert qmd_harness.caption_problems(docs[1]) == []


@pytest.mark.report
def test_harness_catches_missing_values_and_references_written_by_code(
    tmp_path: Path, kernel: str
) -> None:
    doc_path = tmp_path / "values.qmd"
    doc_path.write_text(
        "# Values {#sec-values}\n\n"
        "```{python}\nimport math\nfrom IPython.display import Markdown\n"
        "text = 'as @tbl-nowhere shows'\n```\n\n"
        "A `{python} math.nan`, a `{python} None`, a `{python} 'n/a'`, a `{python} ''`,\n"
        "a `{python} f'{math.inf:.1f} pages'`, fine: `{python} 'infinity-free 0.5'`.\n"
        "Then `{python} text` and `{python} 'see @sec-values'`.\n\n"
        "```{python}\nMarkdown('As @fig-gone says.')\n```\n"
    )
    executed = qmd_harness.execute(qmd_harness.parse_qmd(doc_path), kernel_name=kernel, cwd=ROOT)
    problems = qmd_harness.inline_value_problems(executed)
    assert [p.split("`")[1] for p in problems] == [
        "{python} math.nan",
        "{python} None",
        "{python} 'n/a'",
        "{python} ''",
        "{python} f'{math.inf:.1f} pages'",
    ]
    refs = qmd_harness.rendered_reference_problems(executed)
    assert [r.split(" writes ")[1].split(",")[0] for r in refs] == ["@tbl-nowhere", "@fig-gone"]


@pytest.mark.report
def test_harness_catches_missing_figures_and_failing_inline_code(
    tmp_path: Path, kernel: str
) -> None:
    figure = tmp_path / "figure.qmd"
    figure.write_text(
        "```{python}\n#| label: fig-empty\nvalue = 3\n```\n\n"
        "```{python}\n#| label: tbl-empty\nvalue\n```\n\nValue `{python} value`.\n",
        encoding="utf-8",
    )
    executed = qmd_harness.execute(qmd_harness.parse_qmd(figure), kernel_name=kernel, cwd=ROOT)
    assert executed.inline_values == ["3"]
    assert qmd_harness.output_problems(executed) == [
        f"{figure}: cell 1 (line 1), label 'fig-empty' displayed no image",
        f"{figure}: cell 2 (line 6), label 'tbl-empty' displayed no table",
    ]

    inline = tmp_path / "inline.qmd"
    inline.write_text("```{python}\nx = 1\n```\n\nThere are `{python} y` of them.\n")
    with pytest.raises(qmd_harness.QmdExecutionError, match=r"`\{python\} y` \(line 5\)"):
        qmd_harness.execute(qmd_harness.parse_qmd(inline), kernel_name=kernel, cwd=ROOT)
