"""Builders for the file-safety tests: small workbooks, hand-made zips and OLE2 files, lock
files in the formats Excel and LibreOffice write, and a stand-in for an xlwings ``Book``."""

from __future__ import annotations

import hashlib
import io
import struct
import zipfile
from pathlib import Path

import openpyxl

MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"


def small_book(path: Path, rows: int = 3) -> Path:
    """A workbook with a name FL_DATA over Data!A1:C<rows>."""
    from openpyxl.workbook.defined_name import DefinedName

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Data"
    for r in range(1, rows + 1):
        ws.append([f"r{r}", r * 1.5, r * 2])
    wb.defined_names["FL_DATA"] = DefinedName("FL_DATA", attr_text=f"Data!$A$1:$C${rows}")
    wb.save(path)
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def write_zip(path: Path, parts: dict[str, bytes], stored: tuple[str, ...] = ()) -> None:
    """Write ``parts`` in order; those named in ``stored`` uncompressed."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in parts.items():
            zf.writestr(name, data, zipfile.ZIP_STORED if name in stored else zipfile.ZIP_DEFLATED)


def central_entry(blob: bytes, name: str) -> int:
    """Offset of the central-directory record of member ``name``."""
    key = name.encode()
    pos = 0
    while True:
        pos = blob.index(b"PK\x01\x02", pos)
        n = struct.unpack_from("<H", blob, pos + 28)[0]
        if blob[pos + 46 : pos + 46 + n] == key:
            return pos
        pos += 4


def local_data_offset(blob: bytes, name: str) -> int:
    """Offset of the first compressed byte of member ``name``."""
    cd = central_entry(blob, name)
    header = struct.unpack_from("<I", blob, cd + 42)[0]
    n, extra = struct.unpack_from("<HH", blob, header + 26)
    return header + 30 + n + extra


def patch_sizes(path: Path, name: str, *, compressed: int | None = None,
                uncompressed: int | None = None) -> None:
    """Rewrite the sizes the zip directory declares for ``name`` (the data stays)."""
    blob = bytearray(Path(path).read_bytes())
    cd = central_entry(bytes(blob), name)
    if compressed is not None:
        struct.pack_into("<I", blob, cd + 20, compressed)
    if uncompressed is not None:
        struct.pack_into("<I", blob, cd + 24, uncompressed)
    Path(path).write_bytes(bytes(blob))


# --------------------------------------------------------------------------- OLE2
def cfb(streams: dict[str, bytes]) -> bytes:
    """A minimal OLE2 compound file (version 3, 512-byte sectors) holding ``streams``.

    Each stream is padded to a multiple of 4096 bytes (its declared size too) so that it lives
    in ordinary sectors, not the mini stream.
    Enough for a reader that lists the directory, which is all the package reader does.
    """
    assert len(streams) <= 3  # one directory sector: the root and three streams
    ssz = 512
    datas = [d.ljust(4096 * ((len(d) + 4095) // 4096 or 1), b"\0") for d in streams.values()]
    n_data = sum(len(d) // ssz for d in datas)
    fat = [0xFFFFFFFD, 0xFFFFFFFE]  # sector 0: the FAT itself; sector 1: the directory
    starts, sector = [], 2
    for d in datas:
        k = len(d) // ssz
        starts.append(sector)
        fat += [sector + i + 1 for i in range(k - 1)] + [0xFFFFFFFE]
        sector += k
    assert len(fat) <= ssz // 4 and 2 + n_data == len(fat)
    fat += [0xFFFFFFFF] * (ssz // 4 - len(fat))

    def entry(name, kind, start, size, child=0xFFFFFFFF, right=0xFFFFFFFF):
        raw = name.encode("utf-16-le") + b"\0\0"
        e = bytearray(128)
        e[: len(raw)] = raw
        struct.pack_into("<HBB", e, 64, len(raw), kind, 1)
        struct.pack_into("<III", e, 68, 0xFFFFFFFF, right, child)
        struct.pack_into("<II", e, 116, start, size)
        return bytes(e)

    names = list(streams)
    directory = entry("Root Entry", 5, 0xFFFFFFFE, 0, child=1)
    for i, (name, start) in enumerate(zip(names, starts, strict=True)):
        right = i + 2 if i + 1 < len(names) else 0xFFFFFFFF
        directory += entry(name, 2, start, len(datas[i]), right=right)
    directory = directory.ljust(ssz, b"\0")
    header = bytearray(512)
    header[:8] = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
    struct.pack_into("<HHHHH", header, 24, 0x3E, 3, 0xFFFE, 9, 6)
    struct.pack_into("<IIIIIIII", header, 40, 0, 1, 1, 0, 4096, 0xFFFFFFFE, 0, 0xFFFFFFFE)
    struct.pack_into("<I", header, 72, 0)
    struct.pack_into("<109I", header, 76, 0, *([0xFFFFFFFF] * 108))
    return bytes(header) + struct.pack(f"<{ssz // 4}I", *fat) + directory + b"".join(datas)


# --------------------------------------------------------------------------- lock files
def excel_owner_bytes(user: str, word: bool = False) -> bytes:
    """An Office owner file as Excel (or Word) writes it: 165 (162) bytes naming ``user``."""
    ansi = user.encode("cp1252", errors="replace")[:52]
    data = bytearray([len(ansi)]) + ansi
    pad_to, filler = (54, 0) if word else (55, 0x20)
    data += bytes([filler]) * (pad_to - len(data))
    data += struct.pack("<H", len(user)) + user.encode("utf-16-le")
    size = 162 if word else 165
    return bytes(data + b" \0" * ((size - len(data)) // 2)).ljust(size, b"\0")


def libreoffice_lock_bytes(full_name: str, user: str, host: str, when: str, profile: str) -> bytes:
    def esc(text: str) -> str:
        return text.replace("\\", "\\\\").replace(",", "\\,").replace(";", "\\;")

    return (",".join(esc(f) for f in (full_name, user, host, when, profile)) + ";").encode()


# --------------------------------------------------------------------------- xlwings stand-in
class FakeName:
    def __init__(self, name, refers_to):
        self.name = name
        self.refers_to = refers_to


class FakeLocated:
    """A note or a threaded comment of the desktop engines: it knows its cell."""

    def __init__(self, sheet, row, col, remote=False):
        self._cell = FakeRange(sheet, row, col, row, col)
        self._remote = remote

    @property
    def location(self):
        if self._remote:
            raise NotImplementedError("Reading a note's location synchronously isn't supported")
        return self._cell


class FakeTable:
    def __init__(self, sheet, name, r1, c1, r2, c2):
        self.name = name
        self.range = FakeRange(sheet, r1, c1, r2, c2)


class FakeRange:
    """The part of ``xlwings.Range`` that the adapter uses, over a FakeSheet's dicts."""

    def __init__(self, sheet, r1, c1, r2, c2):
        self.sheet, self.row, self.column = sheet, r1, c1
        self.shape = (r2 - r1 + 1, c2 - c1 + 1)
        self._bounds = (r1, c1, r2, c2)

    def options(self, **_):
        return self

    def _cells(self):
        r1, c1, r2, c2 = self._bounds
        return [[(r, c) for c in range(c1, c2 + 1)] for r in range(r1, r2 + 1)]

    @property
    def value(self):
        return [[self.sheet.values.get(rc) for rc in row] for row in self._cells()]

    @property
    def formula(self):
        if self.sheet.remote:
            raise NotImplementedError("Reading formulas synchronously isn't supported")
        rows = tuple(tuple(self.sheet.formulas.get(rc, self.sheet.values.get(rc) or "")
                           for rc in row) for row in self._cells())
        return rows[0][0] if self.shape == (1, 1) else rows

    @property
    def merge_cells(self):
        if self.sheet.remote:
            raise NotImplementedError("Reading whether cells are merged synchronously")
        hits = sum(1 for row in self._cells() for rc in row if self.sheet.merge_of(rc))
        total = self.shape[0] * self.shape[1]
        return False if hits == 0 else (True if hits == total else None)

    @property
    def merge_area(self):
        m = self.sheet.merge_of((self.row, self.column))
        return FakeRange(self.sheet, *m) if m else self

    @property
    def note(self):
        return object() if (self.row, self.column) in self.sheet.note_cells else None


class FakeSheet:
    def __init__(self, name, remote=False):
        self.name, self.remote = name, remote
        self.values, self.formulas = {}, {}
        self.merges, self.note_cells, self.comment_cells, self.table_list = [], [], [], []

    def merge_of(self, rc):
        for m in self.merges:
            if m[0] <= rc[0] <= m[2] and m[1] <= rc[1] <= m[3]:
                return m
        return None

    def range(self, a, b=None):
        b = b or a
        return FakeRange(self, a[0], a[1], b[0], b[1])

    @property
    def notes(self):
        return [FakeLocated(self, r, c, remote=self.remote) for r, c in self.note_cells]

    @property
    def comments(self):
        if self.remote:
            raise NotImplementedError("Reading comments synchronously isn't supported")
        return [FakeLocated(self, r, c) for r, c in self.comment_cells]

    @property
    def tables(self):
        return self.table_list


class FakeSheets(list):
    def __getitem__(self, key):
        if isinstance(key, str):
            return next(s for s in self if s.name == key)
        return list.__getitem__(self, key)


class FakeBook:
    def __init__(self, sheets, names):
        self.sheets = FakeSheets(sheets)
        self.names = names


def zip_bytes(parts: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in parts.items():
            zf.writestr(name, data)
    return buf.getvalue()
