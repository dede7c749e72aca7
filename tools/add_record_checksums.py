"""One-off migration (issue 29): give each record in reference/ that has none its ``checksum``.

    python tools/add_record_checksums.py [reference]

Records made before ``vaelab.lab.records`` sealed them are honest records of their runs; the
migration ties each one's current contents to a checksum (``vaelab.lab.records.record_checksum``)
and changes nothing else: one line ``"checksum": "sha256:..."`` is inserted after the
``"chapter"`` line (the keys are sorted, ``checksum`` follows ``chapter``), every other byte stays.
A record that already has a checksum is only verified. Each file is checked after writing: its
JSON is the old one plus the checksum, and ``verify_record`` accepts it.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from vaelab.core.files import atomic_write
from vaelab.lab.records import CHECKSUM, record_checksum, verify_record


def add_checksum(path: Path) -> bool:
    """Insert the checksum line into ``path``; False when it already had one (then verified)."""
    text = path.read_text(encoding="utf8")
    record = json.loads(text)
    if CHECKSUM in record:
        verify_record(record, path)
        return False
    lines = text.splitlines(keepends=True)
    at = [i for i, line in enumerate(lines) if line.startswith('  "chapter": ')]
    if len(at) != 1 or not lines[at[0]].rstrip("\n").endswith(","):
        raise SystemExit(f"{path}: no single top-level '\"chapter\": ...,' line to insert the checksum after")
    lines.insert(at[0] + 1, f'  "{CHECKSUM}": {json.dumps(record_checksum(record))},\n')
    new = "".join(lines)
    sealed = json.loads(new)
    if {k: v for k, v in sealed.items() if k != CHECKSUM} != record or list(sealed) != sorted(sealed):
        raise SystemExit(f"{path}: the migration would change more than the checksum")
    verify_record(sealed, path)
    atomic_write(path, new.encode("utf8"))
    return True


def main(argv: list[str] | None = None) -> int:
    root = Path((argv or sys.argv[1:] or ["reference"])[0])
    paths = sorted(root.glob("*/*.json"))
    changed = [p for p in paths if add_checksum(p)]
    print(f"{len(changed)} of {len(paths)} records given a checksum in {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
