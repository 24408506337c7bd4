"""Contact sheets: labelled rows of pictures in one image (the atlas, the inversion per layer)."""

from __future__ import annotations

from PIL import Image, ImageDraw, ImageFont

from .errors import DeepCanvasError

#: A cell: its label, its picture, and an optional companion shown beside it (e.g. the photo patch).
Cell = tuple[str, Image.Image, "Image.Image | None"]


def _fit(draw: ImageDraw.ImageDraw, text: str, width: float, font) -> str:
    """``text``, cut with an ellipsis where it is wider than ``width``."""
    if draw.textlength(text, font=font) <= width:
        return text
    while len(text) > 1 and draw.textlength(text + "...", font=font) > width:
        text = text[:-1]
    return text + "..."


def contact_sheet(rows: list[tuple[str, list[Cell]]], title: str = "", *, gap: int = 4, label_w: int | None = None,
                  label_h: int = 14) -> Image.Image:
    """Rows of (row label, cells) as one white sheet: the row label on the left, each cell's label under it.

    Every picture is shown at the size of the first one. ``label_w``: the row labels' column (default 64 px
    when any row has a label, else none).
    """
    if not rows or not any(cells for _, cells in rows):
        raise DeepCanvasError("contact sheet: no pictures")
    tw, th = next(cells for _, cells in rows if cells)[0][1].size
    if label_w is None:
        label_w = 64 if any(label for label, _ in rows) else 0
    pair = any(c[2] is not None for _, cells in rows for c in cells)
    cell_w = tw * (2 if pair else 1) + (2 if pair else 0)
    cols = max(len(cells) for _, cells in rows)
    title_h = label_h + gap if title else 0
    sheet = Image.new("RGB", (label_w + cols * (cell_w + gap) + gap, title_h + len(rows) * (th + label_h + gap) + gap),
                      "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    if title:
        draw.text((gap, gap), title, fill="black", font=font)
    for r, (row_label, cells) in enumerate(rows):
        y = title_h + gap + r * (th + label_h + gap)
        if row_label:
            draw.text((gap, y + th // 2 - 6), row_label[:11], fill="black", font=font)
        for c, (label, picture, companion) in enumerate(cells):
            x = label_w + gap * (label_w == 0) + c * (cell_w + gap)
            picture = picture.convert("RGB")
            sheet.paste(picture if picture.size == (tw, th) else picture.resize((tw, th), Image.Resampling.LANCZOS),
                        (x, y))
            if companion is not None:
                sheet.paste(companion.convert("RGB").resize((tw, th), Image.Resampling.LANCZOS), (x + tw + 2, y))
            text = _fit(draw, str(label), cell_w, font)
            draw.text((x + (cell_w - draw.textlength(text, font=font)) / 2, y + th + 1), text, fill="black", font=font)
    return sheet
