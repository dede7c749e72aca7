"""Author-year citations for the book: a Sphinx extension (``_config.yml``: ``sphinx.local_extensions``).

Registers two styles and selects them:

- ``author_year_round`` (sphinxcontrib-bibtex referencing style): ``{cite:p}`key``` reads
  "(Kingma and Welling, 2014)", several keys "(Bowman et al., 2016; Hoffman and Johnson, 2016)",
  and ``{cite:t}`key``` reads "Kingma and Welling (2014)";
- ``vaelab_author_year`` (pybtex formatting style): the bibliography sorted by author and year,
  each entry labelled "Kingma and Welling, 2014" (a, b, ... appended when two entries would
  share a label) instead of pybtex's default alpha labels such as "KW14".

Jupyter Book 1.x has no conf.py, so the registration happens in this extension's ``setup``,
which runs before sphinxcontrib-bibtex reads ``bibtex_reference_style`` and
``bibtex_default_style``.
"""
from __future__ import annotations

import dataclasses
from collections import Counter

import pybtex.plugin
from pybtex.richtext import Text
from pybtex.style.formatting.unsrt import Style as UnsrtStyle
from pybtex.style.labels import BaseLabelStyle
from sphinxcontrib.bibtex.plugin import register_plugin
from sphinxcontrib.bibtex.style.referencing import BracketStyle
from sphinxcontrib.bibtex.style.referencing.author_year import AuthorYearReferenceStyle

REFERENCE_STYLE = "author_year_round"
BIBLIOGRAPHY_STYLE = "vaelab_author_year"


def _round(sep: str = ", ") -> BracketStyle:
    return BracketStyle(left="(", right=")", sep=sep)


@dataclasses.dataclass
class AuthorYearRound(AuthorYearReferenceStyle):
    """sphinxcontrib-bibtex's author-year style with round brackets and "; " between references."""

    bracket_parenthetical: BracketStyle = dataclasses.field(default_factory=lambda: _round("; "))
    bracket_textual: BracketStyle = dataclasses.field(default_factory=_round)
    bracket_author: BracketStyle = dataclasses.field(default_factory=_round)
    bracket_label: BracketStyle = dataclasses.field(default_factory=_round)
    bracket_year: BracketStyle = dataclasses.field(default_factory=_round)


def _last_name(person) -> str:
    parts = [*person.prelast_names, *person.last_names]
    return Text.from_latex(" ".join(parts)).render_as("text")


def author_year_label(entry) -> str:
    """'Kingma and Welling, 2014', 'Burda et al., 2016', 'Rezende and Viola, 2018' for one entry."""
    persons = entry.persons.get("author") or entry.persons.get("editor") or []
    names = [_last_name(p) for p in persons]
    if not names:
        who = Text.from_latex(entry.fields.get("title", entry.key)).render_as("text")
    elif len(names) == 1:
        who = names[0]
    elif len(names) == 2:
        who = f"{names[0]} and {names[1]}"
    else:
        who = f"{names[0]} et al."
    return f"{who}, {entry.fields.get('year', 'n.d.')}"


class AuthorYearLabels(BaseLabelStyle):
    """pybtex label style: author-year labels, made unique with a, b, ... after the year."""

    def format_labels(self, sorted_entries):
        entries = list(sorted_entries)
        labels = [author_year_label(e) for e in entries]
        counts, seen = Counter(labels), Counter()
        for label in labels:
            if counts[label] > 1:
                yield label + "abcdefghijklmnopqrstuvwxyz"[seen[label]]
                seen[label] += 1
            else:
                yield label


class AuthorYearStyle(UnsrtStyle):
    """pybtex formatting style: unsrt entries, sorted by author and year, author-year labels."""

    default_sorting_style = "author_year_title"
    default_label_style = "vaelab_author_year"


def setup(app):
    pybtex.plugin.register_plugin("pybtex.style.labels", "vaelab_author_year", AuthorYearLabels)
    pybtex.plugin.register_plugin("pybtex.style.formatting", BIBLIOGRAPHY_STYLE, AuthorYearStyle)
    register_plugin("sphinxcontrib.bibtex.style.referencing", REFERENCE_STYLE, AuthorYearRound)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
