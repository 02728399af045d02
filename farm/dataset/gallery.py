"""`farm dataset gallery OUT`: a static OUT/gallery/index.html to look through a dataset.

One card per object: a contact sheet (a grid of its views, made with Pillow and saved as
OUT/gallery/sheets/<obj_id>.jpg), a strip of view 0's extra passes when the spec asked for any
(depth, normal, albedo, mask: sheets/<obj_id>-passes.jpg), its category, source, status, captions
(with the route when the category had to be forced) and the model that wrote them, tags for
flagged views (clipped, out of frame, blank) and for a category taken from the folder name, and
the error of a failed object. Small inline JS filters by category, status, source and text (the URL can carry them: index.html#status=failed&category=duck), and
marks images that did not load (body[data-images-loaded] = "ok/total" after the load event).
Everything is written under OUT/gallery/, atomically; nothing outside OUT is touched.
"""
from __future__ import annotations

import html
import io
import math
import os
from collections import Counter
from pathlib import Path

from PIL import Image, ImageDraw

from blender_addon.contract.layout import CAPTIONS_JSON, TRANSFORMS_JSON, LayoutError, confined_path
from blender_addon.rig.pass_files import PassError, preview
from blender_addon.rig.spec import PASS_OUTPUTS
from blender_addon.rig.fileio import atomic_write_bytes, atomic_write_text

from .common import image_files, load_objects, out_dir, read_json
from .flags import CATEGORY_FROM_FOLDER, ISSUE_MEANING, quality_issues

GALLERY_DIR = "gallery"
SHEETS_DIR = "sheets"
BACKGROUND = (236, 238, 242)


def contact_sheet(paths: list[Path], thumb: int = 128, gap: int = 2, max_cols: int = 10) -> Image.Image:
    """A grid of thumbnails (transparent renders over a light grey), each with its view number."""
    n = max(1, len(paths))
    cols = min(n, max_cols, max(4, math.ceil(math.sqrt(n))))
    rows = math.ceil(n / cols)
    sheet = Image.new("RGB", (cols * thumb + (cols + 1) * gap, rows * thumb + (rows + 1) * gap), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for i, path in enumerate(paths):
        x, y = gap + (i % cols) * (thumb + gap), gap + (i // cols) * (thumb + gap)
        tile = Image.new("RGB", (thumb, thumb), BACKGROUND)
        try:
            with Image.open(path) as im:
                im.draft("RGB", (thumb, thumb))
                im = im.convert("RGBA")
                im.thumbnail((thumb, thumb), Image.Resampling.LANCZOS)
                tile.paste(im, ((thumb - im.width) // 2, (thumb - im.height) // 2), im)
        except (OSError, ValueError):
            ImageDraw.Draw(tile).line([(0, 0), (thumb, thumb)], fill=(200, 60, 60), width=2)
        sheet.paste(tile, (x, y))
        label = path.stem
        draw.rectangle([x, y, x + 6 * len(label) + 3, y + 11], fill=(255, 255, 255))
        draw.text((x + 2, y), label, fill=(90, 90, 90))
    return sheet


def passes_strip(folder: Path, thumb: int = 128) -> Image.Image | None:
    """View 0 and its passes side by side, labelled; None when transforms.json lists no pass."""
    data = read_json(folder / TRANSFORMS_JSON)
    frames = data.get("frames") if isinstance(data, dict) else None
    if not frames or not isinstance(frames[0], dict):
        return None
    names = [n for n in PASS_OUTPUTS if isinstance(frames[0].get(f"{n}_file_path"), str)]
    if not names:
        return None
    strip = Image.new("RGB", ((len(names) + 1) * (thumb + 2) + 2, thumb + 4), (255, 255, 255))
    for i, name in enumerate(["rgba", *names]):
        tile = Image.new("RGB", (thumb, thumb), BACKGROUND)
        try:
            key = "file_path" if name == "rgba" else f"{name}_file_path"
            image = preview(name, confined_path(folder, str(frames[0][key])))
            image.thumbnail((thumb, thumb), Image.Resampling.NEAREST)
            tile.paste(image, ((thumb - image.width) // 2, (thumb - image.height) // 2),
                       image if image.mode == "RGBA" else None)
        except (OSError, ValueError, PassError, LayoutError):
            ImageDraw.Draw(tile).line([(0, 0), (thumb, thumb)], fill=(200, 60, 60), width=2)
        ImageDraw.Draw(tile).text((2, 0), name, fill=(90, 90, 90))
        strip.paste(tile, (2 + i * (thumb + 2), 2))
    return strip


def _sheet_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=85, optimize=True)
    return buf.getvalue()


def _card_html(obj: dict, sheet_rel: str | None, captions: dict | None, lazy: bool, passes_rel: str | None = None) -> str:
    e = html.escape
    status = str(obj.get("status"))
    category, source, uid = str(obj.get("category")), str(obj.get("source")), str(obj.get("uid"))
    text = " ".join([uid, category, source, str(obj.get("error") or ""), *quality_issues(obj)]).lower()
    parts = [f'<article class="obj {e(status)}" data-category="{e(category)}" data-status="{e(status)}" '
             f'data-source="{e(source)}" data-text="{e(text)}">']
    if sheet_rel:
        loading = ' loading="lazy"' if lazy else ""
        parts.append(f'<a class="sheet" href="{e(sheet_rel)}"><img src="{e(sheet_rel)}"{loading} '
                     f'alt="{e(uid)}: {int(obj.get("views") or 0)} views"></a>')
        if passes_rel:
            parts.append(f'<a class="sheet" href="{e(passes_rel)}"><img class="passes" src="{e(passes_rel)}"{loading} '
                         f'alt="{e(uid)}: view 0 and its passes"></a>')
    else:
        parts.append(f'<div class="sheet none">{e("failed" if status == "failed" else "no images yet")}</div>')
    parts.append(f'<h2 title="{e(str(obj.get("out_rel")))}">{e(uid)}</h2>')
    parts.append(f'<p class="tags"><span class="cat">{e(category)}</span>{_flag_tags(obj)}<span>{e(source)}</span>'
                 f'<span class="st {e(status)}">{e(status)}</span><span>obj {e(str(obj.get("obj_id")))}</span>'
                 f'<span>{int(obj.get("views") or 0)} views</span></p>')
    if status == "failed":
        parts.append(f'<p class="error">{e(str(obj.get("error") or "no reason recorded"))}</p>')
    entries = [c for c in (captions or {}).get("captions") or [] if isinstance(c, dict)]
    if entries and captions.get("model"):
        parts.append(f'<p class="muted model">captioned by {e(str(captions["model"]))}</p>')
    if entries:
        items = []
        for c in entries:
            route = ' <span class="route">forced</span>' if c.get("route") == "forced_prefix" else ""
            body = e(str(c["caption"])) if c.get("caption") is not None else f'<em>{e(str(c.get("error") or "no caption"))}</em>'
            items.append(f'<li><b>{e(str(c.get("view")))}</b> {body}{route}</li>')
        parts.append("<ol class=\"caps\">" + "".join(items[:3]) + "</ol>")
        if len(items) > 3:
            parts.append(f'<details><summary>all {len(items)} captions</summary><ol class="caps">'
                         + "".join(items[3:]) + "</ol></details>")
    elif status == "done":
        parts.append('<p class="muted">not captioned yet</p>')
    parts.append("</article>")
    return "".join(parts)


def _flag_tags(obj: dict) -> str:
    """Tags for what a user should check: flagged views, a category taken from the folder name."""
    views = int(obj.get("views") or 0)
    tags = [f'<span class="flag" title="{html.escape(ISSUE_MEANING.get(issue, issue))}">{html.escape(issue)} '
            f'{n}/{views}</span>' for issue, n in sorted(quality_issues(obj).items())]
    if obj.get("category_from") == CATEGORY_FROM_FOLDER:
        tags.append('<span class="flag" title="no --categories entry: the asset&#39;s folder name">'
                    'category from folder</span>')
    return "".join(tags)


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} - gallery</title>
<style>
body{{margin:0;font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:#f4f5f7;color:#1d2330}}
header{{position:sticky;top:0;z-index:1;background:#1d2330;color:#fff;padding:12px 20px;display:flex;flex-wrap:wrap;gap:10px 18px;align-items:center}}
header h1{{font-size:18px;margin:0 12px 0 0}} header .sum{{color:#b8c0d0}}
header label{{color:#b8c0d0}} select,input{{font:inherit;padding:3px 6px;border-radius:4px;border:1px solid #4a5366;background:#2a3142;color:#fff}}
main{{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:16px;padding:16px 20px}}
.obj{{background:#fff;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.12);padding:10px;overflow:hidden}}
.obj.failed{{border-top:4px solid #d64545}} .obj.done{{border-top:4px solid #2f9e66}} .obj.pending{{border-top:4px solid #c9a227}}
.sheet img{{width:100%;display:block;border-radius:4px;background:#eceef2}} .sheet img.passes{{margin-top:4px}}
.sheet.none{{height:120px;display:flex;align-items:center;justify-content:center;background:#f7e4e4;color:#a33;border-radius:4px}}
img.broken{{outline:3px solid #d64545;min-height:60px}}
h2{{font-size:14px;margin:8px 0 4px;word-break:break-all}}
.tags span{{display:inline-block;background:#eef0f4;border-radius:10px;padding:0 8px;margin:0 4px 4px 0;font-size:12px}}
.tags .cat{{background:#dbe8ff;color:#1b4fa8;font-weight:600}} .tags .flag{{background:#fff3cd;color:#7a5b00}} .st.failed{{background:#fbdada;color:#a33}} .st.done{{background:#d9f2e4;color:#1f7a4d}}
.error{{background:#fff1f1;color:#a33;padding:6px 8px;border-radius:4px;margin:4px 0}}
.caps{{margin:4px 0;padding-left:0;list-style:none}} .caps li{{margin:3px 0}} .caps b{{color:#7a8394;font-weight:500;margin-right:4px}}
.route{{font-size:11px;background:#fff3cd;color:#7a5b00;border-radius:6px;padding:0 5px}}
details summary{{cursor:pointer;color:#1b4fa8}} .muted{{color:#7a8394}} .hidden{{display:none}}
</style></head>
<body>
<header><h1>{title}</h1><span class="sum">{summary}</span>
<label>category <select id="f-category"><option value="">all</option>{category_options}</select></label>
<label>status <select id="f-status"><option value="">all</option>{status_options}</select></label>
<label>source <select id="f-source"><option value="">all</option>{source_options}</select></label>
<label>search <input id="f-text" type="search" placeholder="uid, category, error, clipped"></label>
<span class="sum" id="shown"></span></header>
<main id="grid">
{cards}
</main>
<script>
(function(){{
  var cards=[].slice.call(document.querySelectorAll('article.obj'));
  function apply(){{
    var c=document.getElementById('f-category').value, s=document.getElementById('f-status').value,
        o=document.getElementById('f-source').value, t=document.getElementById('f-text').value.toLowerCase(), n=0;
    cards.forEach(function(a){{
      var show=(!c||a.dataset.category===c)&&(!s||a.dataset.status===s)&&(!o||a.dataset.source===o)&&(!t||a.dataset.text.indexOf(t)>=0);
      a.classList.toggle('hidden',!show); if(show) n++;
    }});
    document.getElementById('shown').textContent=n+' of '+cards.length+' shown';
  }}
  var keys=['category','status','source','text'];
  function toHash(){{
    var parts=[]; keys.forEach(function(k){{var v=document.getElementById('f-'+k).value; if(v) parts.push(k+'='+encodeURIComponent(v));}});
    history.replaceState(null,'',parts.length?'#'+parts.join('&'):location.pathname);
  }}
  location.hash.replace(/^#/,'').split('&').forEach(function(p){{  /* #status=failed&category=duck */
    var kv=p.split('='); if(keys.indexOf(kv[0])>=0) document.getElementById('f-'+kv[0]).value=decodeURIComponent(kv[1]||'');
  }});
  keys.forEach(function(k){{document.getElementById('f-'+k).addEventListener('input',function(){{apply();toHash();}});}});
  apply();
  window.addEventListener('load',function(){{
    var imgs=[].slice.call(document.querySelectorAll('main img')), ok=0;
    imgs.forEach(function(i){{ if(i.complete&&i.naturalWidth>0){{ok++;}} else {{i.classList.add('broken');}} }});
    document.body.setAttribute('data-images-loaded', ok+'/'+imgs.length);
  }});
}})();
</script>
</body></html>
"""


def _options(counter: Counter) -> str:
    return "".join(f'<option value="{html.escape(k)}">{html.escape(k)} ({n})</option>' for k, n in sorted(counter.items()))


def write_gallery(out_root: str | os.PathLike, *, thumb: int = 128, limit: int | None = None) -> Path:
    """Write OUT/gallery/index.html and one contact sheet per object with images. Returns the page."""
    out = out_dir(out_root)
    objects = sorted(load_objects(out), key=lambda o: (not isinstance(o.get("obj_id"), int), o.get("obj_id") or 0))
    if limit is not None:
        objects = objects[:limit]
    gallery = out / GALLERY_DIR
    lazy = len(objects) > 300
    cards, categories, statuses, sources = [], Counter(), Counter(), Counter()
    for n, obj in enumerate(objects):
        categories[str(obj.get("category"))] += 1
        statuses[str(obj.get("status"))] += 1
        sources[str(obj.get("source"))] += 1
        try:
            folder = confined_path(out, str(obj.get("out_rel")))
        except LayoutError:
            folder = None  # an out_rel outside OUT: shown, never read (validate names it)
        views = image_files(folder) if folder and obj.get("status") == "done" else []
        sheet_rel = passes_rel = None
        if views:
            key = obj["obj_id"] if isinstance(obj.get("obj_id"), int) else f"line{n + 1}"
            sheet_rel = f"{SHEETS_DIR}/{key}.jpg"
            atomic_write_bytes(gallery / sheet_rel, _sheet_bytes(contact_sheet([folder / v for v in views], thumb)))
            strip = passes_strip(folder, thumb)
            if strip is not None:
                passes_rel = f"{SHEETS_DIR}/{key}-passes.jpg"
                atomic_write_bytes(gallery / passes_rel, _sheet_bytes(strip))
        captions = read_json(folder / CAPTIONS_JSON) if folder else None
        cards.append(_card_html(obj, sheet_rel, captions if isinstance(captions, dict) else None, lazy, passes_rel))
    summary = f"{len(objects)} objects: " + ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))
    page = PAGE.format(
        title=html.escape(out.resolve().name), summary=html.escape(summary), cards="\n".join(cards),
        category_options=_options(categories), status_options=_options(statuses), source_options=_options(sources),
    )
    return atomic_write_text(gallery / "index.html", page)


__all__ = ["contact_sheet", "write_gallery", "GALLERY_DIR"]
