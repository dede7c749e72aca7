"""vaelab.lab.tables.table: a table set for the page (caption attached, numbers right-aligned)."""
import re

import pandas as pd

from vaelab.lab.tables import numbers_table, table


def test_table_attaches_its_caption_and_aligns_numbers_right():
    frame = pd.DataFrame({"method": ["a", "b"], "error": [0.1234, None], "verdict": ["ok", "no"]})
    html = table(frame, "A caption", precision=2, left=["verdict"]).to_html()
    assert "<caption>A caption</caption>" in html and "0.12" in html and "nan" not in html
    right = " ".join(re.findall(r"([^{}]*)\{\s*text-align: right;\s*\}", html))
    assert "col1" in right and "col0" not in right and "col2" not in right


def test_numbers_table_right_aligns_numeric_and_named_columns_once():
    """A column named in ``numbers`` that is numeric as well (every row recorded) is aligned once; pandas
    refuses a subset that names a column twice (chapter 03's active units, once both models have records)."""
    frame = pd.DataFrame({"model": ["a", "b"], "units": [15, 23], "ll": ["-82.41 ± 0.21", "—"],
                          "seconds": [1234.5, None]})
    html = numbers_table(frame, "Caption", numbers=["units", "ll"]).to_html()
    assert "<caption>Caption</caption>" in html and "1,234.50" in html and "nan" not in html
    right = " ".join(re.findall(r"([^{}]*)\{\s*text-align: right;\s*\}", html))
    assert all(f"col{j}" in right for j in (1, 2, 3)) and "col0" not in right
