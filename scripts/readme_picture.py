"""Make docs/demo-output.png from a `make demo` output: one row of views per object."""
from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image

from farm.dataset.gallery import contact_sheet
from farm.metadata import read_objects


def main(out_root: str, dest: str = "docs/demo-output.png") -> None:
    out = Path(out_root)
    rows = [
        contact_sheet(sorted((out / obj["out_rel"]).glob("*.png")), thumb=128, max_cols=8)
        for obj in read_objects(out)
        if obj.get("status") == "done"
    ]
    sheet = Image.new("RGB", (max(r.width for r in rows), sum(r.height for r in rows)), "white")
    y = 0
    for row in rows:
        sheet.paste(row, (0, y))
        y += row.height
    sheet.save(dest, optimize=True)
    print(f"wrote {dest} ({sheet.width}x{sheet.height})")


if __name__ == "__main__":
    main(*sys.argv[1:])
