"""vaelab.lab.tables.table: a table set for the page (caption attached, numbers right-aligned)."""
import re

import pandas as pd

from vaelab.lab.tables import table


def test_table_attaches_its_caption_and_aligns_numbers_right():
    frame = pd.DataFrame({"method": ["a", "b"], "error": [0.1234, None], "verdict": ["ok", "no"]})
    html = table(frame, "A caption", precision=2, left=["verdict"]).to_html()
    assert "<caption>A caption</caption>" in html and "0.12" in html and "nan" not in html
    right = " ".join(re.findall(r"([^{}]*)\{\s*text-align: right;\s*\}", html))
    assert "col1" in right and "col0" not in right and "col2" not in right
