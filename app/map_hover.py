"""Hovering a dot on the Embedding map shows its photo: a tiny ``st.components.v2`` component.

Why this way (checked in chromium against Streamlit 1.67):

- a plotly hover label is SVG text: ``hovertemplate`` drops ``<img>``, so no photo can be in it;
- a whole chart drawn by our own plotly.js (``components.v1.html``) could show one, but its box and
  lasso selections would not reach Python (``components.v1.html`` only talks one way), and it would
  ship plotly.js (plotly.min.js: 4.8 MB) a second time;
- ``layout.images`` would have to be rebuilt by a rerun per hover: far too slow.

So the maps stay native ``st.plotly_chart`` (selection reaches Python with ``on_select``) and this
component, which ``components.v2`` mounts in the app's own page (no iframe), finds those charts'
plotly graph divs and listens to their ``plotly_hover`` / ``plotly_unhover`` events: the hovered
point's ``customdata[0]`` (its photo file; an upload's name) picks a data-URI thumbnail from the
component's data, drawn in a floating card beside the pointer. Only charts whose ``layout.meta``
says ``hover_thumbs`` are touched. Thumbnails are 64-px JPEGs (~1.3 MB for the 696 test photos),
built once per photo set (``st.cache_data``). Streamlit caches any element message over 10 kB in the
browser and a rerun sends only its hash, so they travel once per session: measured at 1400×1000 with
the shipped models, opening the page received 1.45 MB, a lasso selection's rerun 0.2 MB (the gallery
and the two redrawn maps).
"""
from __future__ import annotations

import streamlit as st

from . import map_selection, photos, state

META = {"hover_thumbs": True}  # layout.meta of the charts whose points get a photo on hover

_JS = r"""
export default function (component) {
  const { data } = component;
  // one shared state per page: several mounts (bundled photos, uploads) add to the same thumbnails
  const G = window.__pretextMapHover || (window.__pretextMapHover = { sources: {}, thumbs: {}, colours: {} });
  G.sources[data.source] = data.thumbs || {};
  G.thumbs = Object.assign({}, ...Object.values(G.sources));
  Object.assign(G.colours, data.colours || {});
  G.uploadTag = data.upload_tag;

  if (!G.card || !document.body.contains(G.card)) {
    const card = document.createElement('div');
    card.id = 'pretext-map-hover';
    card.setAttribute('role', 'tooltip');
    card.style.cssText = 'position:fixed;z-index:100000;pointer-events:none;display:none;background:#fff;' +
      'border:1px solid #ccc;border-radius:8px;box-shadow:0 4px 16px rgba(0,0,0,.25);padding:6px;' +
      'font:15px/1.3 "Source Sans Pro",sans-serif;color:#1f2328;text-align:center';
    const img = document.createElement('img');
    img.width = data.px; img.height = data.px;
    img.style.cssText = 'display:block;border-radius:4px;image-rendering:auto;object-fit:cover';
    const label = document.createElement('div');
    label.style.cssText = 'margin-top:4px;max-width:' + data.px + 'px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap';
    card.append(img, label);
    document.body.appendChild(card);
    G.card = card; G.img = img; G.label = label;
  }

  const hide = () => { G.card.style.display = 'none'; };
  const show = (ev) => {
    const p = ev && ev.points && ev.points[0];
    const cd = p && p.customdata;
    if (!cd) { hide(); return; }
    const isUpload = cd[1] === G.uploadTag;
    const uri = G.thumbs[isUpload ? G.uploadTag + ':' + cd[0] : cd[0]];
    if (!uri) { hide(); return; }
    G.img.src = uri;
    const name = String(cd[0]).split('/').pop();
    G.label.textContent = '';
    const cls = document.createElement('b');
    cls.textContent = isUpload ? '★ your photo' : cd[1];
    cls.style.color = isUpload ? '#111' : (G.colours[cd[1]] || '#333');
    G.label.append(cls, document.createElement('br'), name);
    G.card.style.display = 'block';
    // beside the pointer, flipped near the window's right and bottom edges
    const e = ev.event || {};
    const x = e.clientX || 0, y = e.clientY || 0;
    const w = G.card.offsetWidth, h = G.card.offsetHeight;
    G.card.style.left = (x + 18 + w > window.innerWidth ? x - 18 - w : x + 18) + 'px';
    G.card.style.top = (y + 18 + h > window.innerHeight ? Math.max(4, y - 18 - h) : y + 18) + 'px';
  };

  // plotly may replace a chart's graph div, or purge its listeners when it replots from scratch:
  // re-attach whenever a map's event emitter (gd._ev) is not the one we listened to
  const attach = () => {
    document.querySelectorAll('.js-plotly-plot').forEach((gd) => {
      const meta = (gd.layout && gd.layout.meta) || {};
      if (!meta.hover_thumbs || typeof gd.on !== 'function' || gd.__pretextHoverEv === gd._ev) return;
      gd.__pretextHoverEv = gd._ev;
      gd.on('plotly_hover', show);
      gd.on('plotly_unhover', hide);
      gd.addEventListener('mouseleave', hide);
    });
  };
  attach();
  if (!G.timer) G.timer = window.setInterval(attach, 400);
  G.mounts = (G.mounts || 0) + 1;
  return () => {
    delete G.sources[data.source];
    G.mounts -= 1;
    if (G.mounts <= 0) { window.clearInterval(G.timer); G.timer = null; hide(); }
  };
}
"""

_component = st.components.v2.component("pretext_map_hover", js=_JS)


@st.cache_data(show_spinner="Making thumbnails of the test photos (once per server)…", max_entries=4)
def photo_thumbs(root: str, key: str, files: tuple[str, ...]) -> dict[str, str]:
    """{file: 64-px JPEG data URI} for bundled photos; ``key`` (the photo set's split.csv sha256)
    keeps thumbnails of a replaced photo set from being reused."""
    return map_selection.thumbnail_uris(files, lambda f: photos.thumbnail(root, f, 2 * map_selection.THUMB_PX, square=True))


def mount(source: str, thumbs: dict[str, str], colours: dict[str, str], px: int = 128) -> None:
    """Mount one hover source (``"photos"``, ``"uploads"``): its thumbnails are shown ``px`` px wide
    when their point is hovered on any map of the page. Draws nothing itself (height 0)."""
    _component(key=f"{state.MAP_HOVER}.{source}", data={"source": source, "thumbs": thumbs, "colours": colours,
                                                 "upload_tag": map_selection.UPLOAD_TAG, "px": int(px)}, height=0)
