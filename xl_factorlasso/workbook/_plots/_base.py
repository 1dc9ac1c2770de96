"""What every picture shares: a PNG that knows its size, readable labels, a 1:1 rendering."""

from __future__ import annotations

import io
import math
import struct
import warnings

import numpy as np
import pandas as pd

__all__ = ["DPI", "LABEL_CHARS", "Png", "png_size", "short_label"]

#: Excel shows a picture's pixels 1:1 at 96 dpi; rendered at 96 dpi, a 9-point label in a
#: picture is as large as 9-point text in the cells beside it.
DPI = 96
#: Bounds on either side of a picture, in pixels: a picture of 500 assets stays a picture
#: (sizes that grow with the content stop at DEFAULT_MAX_PX; a caller may ask up to MAX_PX).
MIN_PX, MAX_PX, DEFAULT_MAX_PX = 160, 1600, 1200
#: Characters of a label kept in a picture (the cells keep the whole label): a 32,767-character
#: asset name would otherwise make matplotlib lay out a gigantic text and run out of memory.
LABEL_CHARS = 24
#: Tick labels shrink from MAX_FONT to MIN_FONT points with their number, then are thinned.
MIN_FONT, MAX_FONT = 7.0, 9.0
TITLE_FONT, AXIS_FONT = 10.0, 9.0
#: Links above the clusters, missing cells, and other things that carry no colour of their own.
GREY = "#9a9a9a"
MISSING = "#d9d9d9"
#: A picture's PNG stays below this many bytes (a workbook carries every picture it shows).
MAX_BYTES = 200_000

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height in pixels from a PNG's header (its IHDR chunk)."""
    head = bytes(data[:24])
    if len(head) < 24 or head[:8] != _PNG_SIGNATURE or head[12:16] != b"IHDR":
        raise ValueError("not a PNG image (no PNG signature and IHDR header)")
    width, height = struct.unpack(">II", head[16:24])
    return int(width), int(height)


class Png(bytes):
    """The bytes of a PNG image that know its size in pixels.

    A ``Png`` is ``bytes`` (it can be written or placed wherever a PNG is expected); its
    ``width`` and ``height`` are read from the image's own header, so they are the true size:
    placed at ``width`` x ``height`` pixels the picture is shown 1:1, without stretching.

    Parameters
    ----------
    data : bytes
        A PNG file's content.

    Attributes
    ----------
    width, height : int
        Pixels.
    """

    def __new__(cls, data: bytes):
        width, height = png_size(data)
        obj = super().__new__(cls, data)
        obj._size = (width, height)
        return obj

    @property
    def data(self) -> bytes:
        """The PNG file's content as plain ``bytes``."""
        return bytes(self)

    @property
    def width(self) -> int:
        return self._size[0]

    @property
    def height(self) -> int:
        return self._size[1]

    def __repr__(self) -> str:
        return f"Png({self.width}x{self.height} px, {len(self)} bytes)"


def short_label(label, limit: int = LABEL_CHARS) -> str:
    """``label`` as text of at most ``limit`` characters, on one line (ellipsis when cut)."""
    text = " ".join(str(label).split())
    text = "".join(ch for ch in text if ch.isprintable())
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def tick_text(label) -> str:
    """A label as a picture shows it: shortened, a ``$`` kept literal (not TeX math)."""
    return short_label(label).replace("$", r"\$")


def clamp(value: float, low: float, high: float) -> int:
    return int(round(min(max(value, low), high)))


def picture_size(width_px, height_px, default_width: float, default_height: float):
    """The size to draw at: the caller's, checked, or the content's default within bounds."""
    size = []
    for given, default, what in ((width_px, default_width, "width_px"),
                                 (height_px, default_height, "height_px")):
        if given is None:
            size.append(clamp(default, MIN_PX, DEFAULT_MAX_PX))
            continue
        if isinstance(given, bool) or not isinstance(given, (int, np.integer)):
            raise ValueError(f"{what} must be a whole number of pixels, got {given!r}")
        if not MIN_PX <= given <= MAX_PX:
            raise ValueError(f"{what} must be between {MIN_PX} and {MAX_PX} pixels, got {given}")
        size.append(int(given))
    return size[0], size[1]


def tick_layout(n: int, axis_px: float, spread: float = 1.35) -> tuple[float, int]:
    """Font size (points) and label step so ``n`` labels along ``axis_px`` pixels do not overlap.

    A label needs about ``spread`` times its font height along the axis; the font shrinks from
    MAX_FONT to MIN_FONT with the number of labels, and below that only every ``step``-th label
    is shown.
    """
    px_per_pt = DPI / 72.0
    room = max(axis_px, 1.0) / max(n, 1)
    font = min(max(room / (spread * px_per_pt), MIN_FONT), MAX_FONT)
    step = max(1, math.ceil(n * spread * font * px_per_pt / max(axis_px, 1.0) - 1e-9))
    return font, step


def set_ticks(axis, labels, axis_px: float, spread: float = 1.35, **text) -> tuple[float, int]:
    """Label positions 0..n-1 of ``axis`` (``ax.xaxis`` or ``ax.yaxis``), thinned to fit.

    Call it once with an estimate of the axis length (so the layout makes room for labels)
    and again with :func:`axes_size` once everything else is drawn.
    """
    n = len(labels)
    font, step = tick_layout(n, axis_px, spread)
    positions = list(range(0, n, step))
    axis.set_ticks(positions, [tick_text(labels[i]) for i in positions], fontsize=font, **text)
    return font, step


def axes_size(ax) -> tuple[float, float]:
    """Width and height in pixels of ``ax`` as the constrained layout places it."""
    ax.figure.draw_without_rendering()
    box = ax.get_window_extent()
    return box.width, box.height


def cluster_colours(k: int) -> list[str]:
    """``k`` distinct colours, none of them grey (grey is for what belongs to no cluster)."""
    from matplotlib import colormaps
    from matplotlib.colors import hsv_to_rgb, to_hex

    if k <= 9:  # tab10 without its grey
        pal = [c for i, c in enumerate(colormaps["tab10"].colors) if i != 7]
    elif k <= 18:  # tab20 without its two greys
        pal = [c for i, c in enumerate(colormaps["tab20"].colors) if i not in (14, 15)]
    else:  # hues a golden-ratio turn apart (never equal, neighbours far apart), two shades
        pal = [hsv_to_rgb(((i * 0.6180339887498949) % 1.0, 0.85, 0.85 if i % 2 else 0.55))
               for i in range(k)]
    return [to_hex(c) for c in pal[:k]]


def as_series(values, what: str) -> pd.Series:
    """A 1-D input (Series, dict or array) as a float Series; an array is labelled 1..n."""
    if isinstance(values, pd.DataFrame):
        if values.shape[1] != 1:
            raise ValueError(f"{what}: expected one column of numbers, got {values.shape[1]}")
        values = values.iloc[:, 0]
    if isinstance(values, dict):
        values = pd.Series(values, dtype=object)
    if not isinstance(values, pd.Series):
        arr = np.asarray(values, dtype=object)
        if arr.ndim != 1:
            raise ValueError(f"{what}: expected one row or column of numbers, got shape "
                             f"{arr.shape}")
        values = pd.Series(arr, index=range(1, len(arr) + 1))
    try:
        out = pd.Series(np.asarray(values.to_numpy(), dtype=float), index=values.index)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: every value must be a number") from None
    if out.empty:
        raise ValueError(f"{what}: nothing to draw (no values)")
    return out


def new_figure(width_px: int, height_px: int):
    """A figure of exactly ``width_px`` x ``height_px`` pixels whose layout keeps every label in.

    Constrained layout moves the axes to make room for labels without changing the figure's
    size (``bbox_inches="tight"`` would crop it and the placed picture would be stretched).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_px / DPI, height_px / DPI), dpi=DPI, layout="constrained",
                 facecolor="white")
    fig.get_layout_engine().set(w_pad=4 / 72, h_pad=4 / 72, wspace=0.02, hspace=0.02)
    FigureCanvasAgg(fig)
    return fig


def render(fig) -> Png:
    """The figure as a PNG of its own size (checked against the header).

    Stored as RGB (the background is opaque white); a picture still larger than
    ``MAX_BYTES`` (a heatmap of thousands of noisy cells) is stored with a 256-colour palette.
    """
    from PIL import Image

    width, height = (int(round(v * DPI)) for v in fig.get_size_inches())
    with warnings.catch_warnings():
        # A glyph missing from the font or a layout that cannot fit every label is not worth
        # failing a picture for; the picture is drawn with what fits.
        warnings.simplefilter("ignore")
        fig.canvas.draw()
    image = Image.fromarray(np.asarray(fig.canvas.buffer_rgba())[..., :3])
    buf = io.BytesIO()
    image.save(buf, format="PNG", dpi=(DPI, DPI))
    if buf.tell() > MAX_BYTES:
        buf = io.BytesIO()
        image.quantize(256).save(buf, format="PNG", dpi=(DPI, DPI))
    png = Png(buf.getvalue())
    if (png.width, png.height) != (width, height):
        raise RuntimeError(f"the picture came out {png.width}x{png.height} px instead of "
                           f"{width}x{height}")
    return png


def title(ax, text: str) -> None:
    ax.set_title(text, fontsize=TITLE_FONT, loc="left")


def percent_axis(axis) -> None:
    """Tick labels ``0%, 5%, 10%``: as few decimals as the ticks need."""
    from matplotlib.ticker import Formatter

    class _Percent(Formatter):
        def __call__(self, x, pos=None):
            return f"{x * 100 + 0.0:.1f}%"

        def format_ticks(self, values):
            ticks = [v * 100 for v in values]
            decimals = next((d for d in range(4)
                             if all(abs(v - round(v, d)) < 1e-9 * max(1.0, abs(v))
                                    for v in ticks)), 4)
            return [f"{v + 0.0:.{decimals}f}%" for v in ticks]

    axis.set_major_formatter(_Percent())


def percent(value: float) -> str:
    """``0.1234`` as ``12.3%`` (NaN as ``n/a``)."""
    if not np.isfinite(value):
        return "n/a"
    if value == 0:
        return "0%"
    return f"{value * 100:.1f}%" if abs(value) >= 0.001 else f"{value * 100:.2g}%"


def share_text(value: float) -> str:
    """A share of a total, ``0.351`` as ``35%`` (``-0%`` as ``0%``)."""
    if not np.isfinite(value):
        return "n/a"
    return f"{round(value * 100) + 0:.0f}%"
