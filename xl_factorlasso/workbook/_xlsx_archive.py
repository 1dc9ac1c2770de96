"""Reading an .xlsx/.xlsm zip defensively: size bounds, damaged parts, look-alike formats.

A workbook comes from a user's disk or mail, so the reader assumes nothing about it:

* every part's size is bounded twice -- by what the zip directory declares *before* anything is
  decompressed, and again while decompressing, because declared sizes can lie;
* a member that fails its CRC, is truncated or holds bad compressed data is named, with what to
  do about it, instead of "not a zip file";
* an OLE2 compound file (an Excel 97-2003 ``.xls`` or a password-protected workbook, which
  Office encrypts into an OLE2 container) is told apart from other files;
* a part with a DOCTYPE is refused: Excel never writes one, and a DTD is how entity-expansion
  ("billion laughs") and external-entity attacks reach an XML parser.

Every problem is a ``ValueError`` whose text is the message for the user.
"""

from __future__ import annotations

import struct
import zipfile
import zlib

__all__ = [
    "MAX_MEMBERS",
    "MAX_PART_BYTES",
    "MAX_RATIO",
    "MAX_TOTAL_BYTES",
    "RATIO_EXEMPT_BYTES",
    "check_no_doctype",
    "read_package",
]

# A worksheet of 1,048,576 rows x 50 columns of full-precision numbers is about 2.4 GiB of XML
# (measured: ~50 bytes per styled numeric cell, ~27 for a small integer); it must still open,
# and 3 GiB leaves headroom for longer numbers and row attributes.
MAX_PART_BYTES = 3 * 2**30
# The package is held in memory as a whole: one such sheet plus everything else.
MAX_TOTAL_BYTES = 4 * 2**30
# Worksheet XML compresses 4x (random numbers) to ~16x (empty styled cells, constant columns);
# deflate itself cannot exceed ~1030x. A part that expands more than 200x is a decompression
# bomb, not a spreadsheet ...
MAX_RATIO = 200
# ... unless it is small: below 16 MiB any ratio is harmless (a repetitive styles part can
# legitimately compress very well).
RATIO_EXEMPT_BYTES = 16 * 2**20
# Excel writes a handful of parts per sheet; 100,000 members bounds the work on the zip
# directory long before a real workbook gets near it.
MAX_MEMBERS = 100_000

_CHUNK = 1 << 20  # output per inflate step
_RAW_CHUNK = 1 << 16  # compressed bytes per read: the ratio bound trips within ~16 MiB
_OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_REPAIR = ("Let Excel repair it (File > Open, select the file, then Open > Open and Repair) "
           "or restore a copy.")


def _size(n: int) -> str:
    if n >= 2**30:
        return f"{n / 2**30:,.1f} GiB"
    if n >= 2**20:
        return f"{n / 2**20:,.1f} MiB"
    return f"{n:,} bytes"


# --------------------------------------------------------------------------- DOCTYPE
def _prolog_has_doctype(data: bytes) -> bool:
    """Whether the prolog (white space, ``<?...?>``, ``<!--...-->``) ends in ``<!DOCTYPE``.

    A plain scan rather than a regular expression, which could backtrack badly on crafted
    white space; it stops at the first thing that is not prolog.
    """
    i, n = 0, len(data)
    while i < n:
        if data[i] in b" \t\r\n":
            i += 1
        elif data.startswith(b"<?", i):
            i = data.find(b"?>", i + 2)
            if i < 0:
                return False
            i += 2
        elif data.startswith(b"<!--", i):
            i = data.find(b"-->", i + 4)
            if i < 0:
                return False
            i += 3
        else:
            return data.startswith(b"<!DOCTYPE", i)
    return False


def check_no_doctype(data: bytes, part: str, where: str = "") -> None:
    """Refuse an XML part whose prolog declares a DOCTYPE (a DTD, entities).

    Only the prolog is looked at (a DOCTYPE cannot appear anywhere else), so this costs nothing
    on large parts and on binary parts. UTF-16 parts (allowed by OPC, unusual) are decoded
    first.

    Raises
    ------
    ValueError
        Naming ``part`` (and ``where``, the file, if given).
    """
    head = data[:2]
    if head in (b"\xff\xfe", b"\xfe\xff", b"<\x00", b"\x00<"):
        encoding = "utf-16-be" if head in (b"\xfe\xff", b"\x00<") else "utf-16-le"
        text = data[: 1 << 20].decode(encoding, errors="ignore").lstrip("\ufeff")
        data = text.encode("utf-8")
    elif data[:3] == b"\xef\xbb\xbf":
        data = data[3:]
    if _prolog_has_doctype(data):
        prefix = f"{where}: " if where else ""
        raise ValueError(
            f"{prefix}part {part!r} declares a DOCTYPE (a DTD or entity declarations); Excel "
            "never writes one and it can be used to attack the reader, so the workbook was "
            "refused. Re-save it from Excel, or restore a copy."
        )


# --------------------------------------------------------------------------- OLE2
def _ole_stream_names(path: str) -> set[str] | None:
    """Names in an OLE2 compound file's directory (None if the structure cannot be followed)."""
    try:
        with open(path, "rb") as fh:
            header = fh.read(512)
            if len(header) < 512 or header[:8] != _OLE2:
                return None
            shift = struct.unpack_from("<H", header, 30)[0]
            if shift not in (9, 12):
                return None
            ssz = 1 << shift
            first_dir = struct.unpack_from("<I", header, 48)[0]
            difat = struct.unpack_from("<109I", header, 76)
            per_fat = ssz // 4

            def sector(n: int) -> bytes:
                fh.seek((n + 1) * ssz)
                return fh.read(ssz)

            names: set[str] = set()
            current, steps = first_dir, 0
            while current < 0xFFFFFFFA and steps < 4096:  # 0xFFFFFFFE ends a chain
                data = sector(current)
                for off in range(0, len(data) - 127, 128):
                    length = struct.unpack_from("<H", data, off + 64)[0]
                    if 2 <= length <= 64 and data[off + 66] in (1, 2, 5):
                        names.add(data[off : off + length - 2].decode("utf-16-le", "replace"))
                fat_index = current // per_fat
                if fat_index >= len(difat) or difat[fat_index] >= 0xFFFFFFFA:
                    break  # a directory beyond the header's FAT list: enough has been seen
                fat = sector(difat[fat_index])
                if len(fat) < ssz:
                    break
                current = struct.unpack_from("<I", fat, (current % per_fat) * 4)[0]
                steps += 1
            return names
    except (OSError, struct.error):
        return None


def _ole_message(path: str) -> str:
    names = _ole_stream_names(path) or set()
    if not names:
        # Fall back to the stream name's bytes: the directory is somewhere in the file.
        try:
            with open(path, "rb") as fh:
                blob = fh.read(64 * 2**20)
        except OSError:
            blob = b""
        if "EncryptedPackage".encode("utf-16-le") in blob:
            names.add("EncryptedPackage")
    if "EncryptedPackage" in names:
        return (
            f"{path} is password-protected (an encrypted workbook), so it cannot be read "
            "without Excel: open it in Excel, remove the password (File > Info > Protect "
            "Workbook > Encrypt with Password, clear it), save, and try again"
        )
    if names & {"Workbook", "Book"}:
        return (
            f"{path} is an Excel 97-2003 workbook (.xls format), whatever its name says: open "
            "it in Excel and save it as an Excel Workbook (.xlsx) or an Excel Macro-Enabled "
            "Workbook (.xlsm)"
        )
    if names:
        return (
            f"{path} is an OLE2 compound file of another kind (it holds "
            f"{', '.join(sorted(names)[:4])}), not an .xlsx/.xlsm workbook"
        )
    return (
        f"{path} is an OLE2 compound file, not an .xlsx/.xlsm package (an Excel 97-2003 .xls "
        "or a password-protected workbook?): save it from Excel as an Excel Workbook (.xlsx)"
    )


# --------------------------------------------------------------------------- the zip
def _damaged(path: str, name: str, what: str) -> ValueError:
    return ValueError(f"{path} is damaged: part {name!r} {what}. {_REPAIR}")


def _check_declared(path: str, infos: list[zipfile.ZipInfo]) -> None:
    if len(infos) > MAX_MEMBERS:
        raise ValueError(f"{path}: the zip holds {len(infos):,} members (limit "
                         f"{MAX_MEMBERS:,}); this is not a workbook Excel wrote")
    total = total_packed = 0
    for info in infos:
        size, packed = info.file_size, max(info.compress_size, 1)
        if info.flag_bits & 0x1:
            raise ValueError(
                f"{path}: part {info.filename!r} is encrypted with a zip password; Excel never "
                "writes such a file (a protected workbook is an encrypted OLE2 file instead)"
            )
        if size > MAX_PART_BYTES:
            raise ValueError(
                f"{path}: part {info.filename!r} would decompress to {_size(size)} (limit "
                f"{_size(MAX_PART_BYTES)} per part); the workbook was refused as too large to "
                "edit safely"
            )
        if size > RATIO_EXEMPT_BYTES and size > MAX_RATIO * packed:
            raise ValueError(
                f"{path}: part {info.filename!r} would expand from {_size(packed)} to "
                f"{_size(size)} ({size // packed:,}:1); real workbook parts compress at most "
                f"about 20:1, so this is a decompression bomb and the workbook was refused"
            )
        total += size
        total_packed += packed
    if total > MAX_TOTAL_BYTES:
        raise ValueError(
            f"{path}: its parts would decompress to {_size(total)} in all (limit "
            f"{_size(MAX_TOTAL_BYTES)}); the workbook was refused as too large to edit safely"
        )
    if total > RATIO_EXEMPT_BYTES and total > MAX_RATIO * total_packed:
        raise ValueError(
            f"{path}: its parts would expand from {_size(total_packed)} to {_size(total)} "
            f"({total // total_packed:,}:1); this is a decompression bomb and the workbook "
            "was refused"
        )


def _read_member(path: str, fh, info: zipfile.ZipInfo) -> bytes:
    """Decompress one member from the open file ``fh``, bounding it as it grows.

    Done here rather than by ``zipfile`` so that every way a member can be broken is seen and
    named: a stream that ends early, one that runs past its declared size, one that expands
    beyond :data:`MAX_RATIO` of the compressed bytes actually consumed (which cannot lie),
    bad compressed data, a wrong CRC.
    """
    name = info.filename
    fh.seek(info.header_offset)
    header = fh.read(30)
    if len(header) < 30 or header[:4] != b"PK\x03\x04":
        raise _damaged(path, name, "has a damaged local header (the bytes where it starts "
                                   "were overwritten)")
    name_len, extra_len = struct.unpack_from("<HH", header, 26)
    fh.seek(info.header_offset + 30 + name_len + extra_len)
    if info.compress_type == zipfile.ZIP_DEFLATED:
        inflater = zlib.decompressobj(-15)
    elif info.compress_type == zipfile.ZIP_STORED:
        inflater = None
    else:
        raise _damaged(path, name, f"is stored with compression method "
                                   f"{info.compress_type}, which Excel does not use")
    chunks: list[bytes] = []
    count = consumed = crc = 0

    def take(data: bytes) -> None:
        nonlocal count, crc
        count += len(data)
        if count > info.file_size:
            raise ValueError(
                f"{path}: part {name!r} decompresses to more than the {info.file_size:,} bytes "
                "its zip header declares (a damaged or crafted file); the workbook was refused"
            )
        if count > RATIO_EXEMPT_BYTES and count > MAX_RATIO * consumed:
            raise ValueError(
                f"{path}: part {name!r} expands more than {MAX_RATIO}:1 from "
                f"{_size(consumed)}; this is a decompression bomb and the workbook was refused"
            )
        crc = zlib.crc32(data, crc)
        chunks.append(data)

    left = info.compress_size
    try:
        while left > 0 and not (inflater is not None and inflater.eof):
            raw = fh.read(min(_RAW_CHUNK, left))
            if not raw:
                raise _damaged(path, name, "is truncated (the file ends inside it)")
            left -= len(raw)
            consumed += len(raw)
            if inflater is None:
                take(raw)
                continue
            while not inflater.eof:
                data = inflater.decompress(raw, _CHUNK)  # never more than 1 MiB at a time
                take(data)
                raw = inflater.unconsumed_tail
                if not raw and len(data) < _CHUNK:  # a full chunk may leave output pending
                    break
    except zlib.error as err:
        detail = str(err).split(":", 1)[-1].strip()
        raise _damaged(path, name, f"has corrupt compressed data ({detail})") from None
    if inflater is not None and not inflater.eof:
        raise _damaged(path, name, "is truncated (its compressed data ends early)")
    if count != info.file_size:
        raise _damaged(path, name, f"is shorter than its header declares ({count:,} of "
                                   f"{info.file_size:,} bytes)")
    if crc != info.CRC:
        raise _damaged(path, name, "fails its CRC check (its bytes were altered)")
    return b"".join(chunks)


def read_package(path: str) -> tuple[list[tuple[zipfile.ZipInfo, bytes]], bytes]:
    """Every file member of the zip at ``path`` with its bytes, and the zip comment.

    Raises
    ------
    ValueError
        With the message for the user: an empty file, an OLE2 file (``.xls`` or encrypted),
        something that is not a zip, a truncated zip, a damaged member (named), a part beyond
        the size bounds, a DOCTYPE in a part.
    OSError
        If the file cannot be opened at all (permissions, a folder).
    """
    with open(path, "rb") as fh:
        head = fh.read(8)
    if not head:
        raise ValueError(f"{path} is empty (0 bytes): restore a copy of the workbook")
    if head == _OLE2:
        raise ValueError(_ole_message(path))
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, EOFError, ValueError, NotImplementedError) as err:
        if head[:2] == b"PK":
            raise ValueError(
                f"{path} is damaged: it starts like a workbook but its zip directory is "
                f"missing or broken (the file is truncated or was overwritten: {err}). "
                f"{_REPAIR}"
            ) from None
        raise ValueError(
            f"{path}: not an .xlsx/.xlsm package (neither a zip file nor an Excel 97-2003 or "
            f"password-protected workbook; it starts with {head!r})"
        ) from None
    with zf, open(path, "rb") as fh:
        infos = [info for info in zf.infolist() if not info.is_dir()]
        # Every declared size is within bounds, and no member may exceed its declared size:
        # so the total stays within bounds too, whatever the data really holds.
        _check_declared(path, infos)
        members = []
        for info in infos:
            data = _read_member(path, fh, info)
            check_no_doctype(data, info.filename, path)
            members.append((info, data))
        return members, zf.comment
