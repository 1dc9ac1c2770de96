"""Write a VBA project (``xl/vbaProject.bin``) from VBA source text, on any OS, reproducibly.

What a macro-enabled workbook needs and nothing more, following the published formats:

* [MS-OVBA] 2.4.1: the compression of the ``dir`` stream and of each module's source;
* [MS-OVBA] 2.3.4: the ``dir`` stream (project information, references, modules), the
  ``PROJECT`` / ``PROJECTwm`` streams and a ``_VBA_PROJECT`` stream that announces *no*
  performance cache (version 0xFFFF): Office then compiles the project from the source text when
  it opens the file; there is no p-code here to go stale;
* [MS-OVBA] 2.4.3: the data "encryption" of the protection state, password and visibility
  (``CMG``, ``DPB``, ``GC``): unprotected, no password, visible;
* [MS-CFB]: the compound file around those streams (version 3, 512-byte sectors, a mini stream
  for the small streams, a red-black directory tree).

Why not the ``ms-ovba`` package (0.0.1): its compressor does not cap a copy token's length
(``0xFFFF << bit_count + 3`` instead of ``(0xFFFF >> bit_count) + 3``), so source with long
repeats decompresses to something else (5,680 bytes of repeated lines came back as 1,072), and it
writes its work files into the current directory and next to its own package files, in append
mode. Everything below is about 300 lines of stdlib Python and is checked by independent readers
(oletools' ``olevba``/``olefile`` in the tests, and LibreOffice when it is installed).

Nothing here is random: the same sources give the same bytes.
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass, field

__all__ = [
    "Module",
    "build_vba_project",
    "compress",
    "compound_file",
    "decrypt",
    "encrypt",
    "CODEPAGE",
]

CODEPAGE = "cp1252"  # PROJECTCODEPAGE 1252: module source and names are Windows-1252 text

# [MS-OVBA] 2.3.4.2.2.5: "OLE Automation" (stdole) and the Office object library, the two
# registered references a new Excel VBA project has besides the implicit VBA and Excel ones.
# The Office library defines IRibbonControl, the type of every ribbon callback's argument.
REFERENCES = (
    (
        "stdole",
        "*\\G{00020430-0000-0000-C000-000000000046}#2.0#0#"
        "C:\\Windows\\System32\\stdole2.tlb#OLE Automation",
    ),
    (
        "Office",
        "*\\G{2DF8D04C-5BFA-101B-BDE5-00AA0044DE52}#2.0#0#"
        "C:\\Program Files\\Common Files\\Microsoft Shared\\OFFICE16\\MSO.DLL#"
        "Microsoft Office 16.0 Object Library",
    ),
)

# VB_Base of the document modules: the Excel Workbook and Worksheet coclasses.
WORKBOOK_BASE = "0{00020819-0000-0000-C000-000000000046}"
WORKSHEET_BASE = "0{00020820-0000-0000-C000-000000000046}"


# =============================================================================== compression
def compress(data: bytes) -> bytes:
    """[MS-OVBA] 2.4.1.3: a CompressedContainer (signature byte + chunks of 4096 input bytes)."""
    out = bytearray(b"\x01")
    for start in range(0, len(data), 4096):
        out += _compress_chunk(data[start : start + 4096])
    return bytes(out)


def _compress_chunk(chunk: bytes) -> bytes:
    n = len(chunk)
    body = bytearray()
    seen: dict[bytes, list[int]] = {}  # 3-byte prefix -> earlier positions in this chunk

    def remember(p: int) -> None:
        if p + 3 <= n:
            seen.setdefault(chunk[p : p + 3], []).append(p)

    pos = 0
    while pos < n:
        flag_at = len(body)
        body.append(0)
        flags = 0
        for bit in range(8):
            if pos >= n:
                break
            offset, length = _longest_match(chunk, pos, seen)
            if length:
                # CopyToken help (2.4.1.3.19.1): BitCount = max(ceil(log2(pos)), 4) bits of offset
                bit_count = max((pos - 1).bit_length(), 4)
                token = ((offset - 1) << (16 - bit_count)) | (length - 3)
                body += token.to_bytes(2, "little")
                flags |= 1 << bit
                for p in range(pos, pos + length):
                    remember(p)
                pos += length
            else:
                body.append(chunk[pos])
                remember(pos)
                pos += 1
        body[flag_at] = flags
    if len(body) > 4096:  # incompressible: a raw chunk always carries 4096 bytes (2.4.1.3.10)
        return (0x3000 | 4095).to_bytes(2, "little") + chunk.ljust(4096, b"\x00")
    # header: size - 3 in 12 bits, signature 0b011, flag 1 = compressed (2.4.1.1.5)
    return (0xB000 | (len(body) + 2 - 3)).to_bytes(2, "little") + bytes(body)


def _longest_match(chunk: bytes, pos: int, seen: dict[bytes, list[int]]) -> tuple[int, int]:
    """(offset, length) of the longest earlier match at ``pos`` (nearest wins ties), or (0, 0)."""
    candidates = seen.get(chunk[pos : pos + 3])
    if not candidates:
        return 0, 0
    bit_count = max((pos - 1).bit_length(), 4)
    max_length = min((0xFFFF >> bit_count) + 3, len(chunk) - pos)
    best_len, best_at = 0, 0
    for c in reversed(candidates[-512:]):  # the 512 nearest are plenty for source text
        length = 3
        while length < max_length and chunk[c + length] == chunk[pos + length]:
            length += 1
        if length > best_len:
            best_len, best_at = length, c
            if length == max_length:
                break
    return pos - best_at, best_len


# =============================================================================== encryption
def _project_key(project_id: str) -> int:
    return sum(project_id.encode("ascii")) & 0xFF


def encrypt(project_id: str, data: bytes, seed: int, ignored: bytes = b"") -> str:
    """[MS-OVBA] 2.4.3.2 data encryption, as the hex text of CMG=, DPB= and GC=.

    ``seed`` and the ``(seed & 6) // 2`` ``ignored`` bytes are random in Office; fixed values
    keep the build reproducible (the algorithm only obfuscates).
    """
    if len(ignored) != (seed & 6) // 2:
        raise ValueError("need (seed & 6) // 2 ignored bytes")
    version, key = 2, _project_key(project_id)
    out = bytearray([seed, seed ^ version, seed ^ key])
    unencrypted1, encrypted1, encrypted2 = key, seed ^ key, seed ^ version
    for byte in bytes(ignored) + struct.pack("<I", len(data)) + bytes(data):
        enc = byte ^ ((unencrypted1 + encrypted2) & 0xFF)
        out.append(enc)
        encrypted2, encrypted1, unencrypted1 = encrypted1, enc, byte
    return out.hex().upper()


def decrypt(hex_text: str) -> bytes:
    """Inverse of :func:`encrypt` (2.4.3.3): the data, without the seed and ignored bytes."""
    raw = bytes.fromhex(hex_text)
    seed, version_enc, key_enc = raw[0], raw[1], raw[2]
    if version_enc ^ seed != 2:
        raise ValueError("not MS-OVBA encrypted data (version is not 2)")
    unencrypted1, encrypted1, encrypted2 = key_enc ^ seed, key_enc, version_enc
    plain = bytearray()
    for enc in raw[3:]:
        byte = enc ^ ((unencrypted1 + encrypted2) & 0xFF)
        plain.append(byte)
        encrypted2, encrypted1, unencrypted1 = encrypted1, enc, byte
    skip = (seed & 6) // 2
    (length,) = struct.unpack_from("<I", plain, skip)
    data = bytes(plain[skip + 4 :])
    if len(data) != length:
        raise ValueError(f"length field {length} but {len(data)} data bytes")
    return data


# =============================================================================== the project
@dataclass(frozen=True)
class Module:
    """One VBA module: ``kind`` is ``"standard"`` (a .bas) or ``"document"`` (a sheet/workbook).

    ``source`` is the module text as stored, starting with its ``Attribute VB_Name`` line, with
    CRLF line ends (the builder converts ``\\n``).
    """

    name: str
    source: str
    kind: str = "standard"


def document_module(name: str, base: str) -> Module:
    """The empty class module Excel keeps for the workbook (``ThisWorkbook``) or a sheet."""
    lines = [
        f'Attribute VB_Name = "{name}"',
        f'Attribute VB_Base = "{base}"',
        "Attribute VB_GlobalNameSpace = False",
        "Attribute VB_Creatable = False",
        "Attribute VB_PredeclaredId = True",
        "Attribute VB_Exposed = True",
        "Attribute VB_TemplateDerived = False",
        "Attribute VB_Customizable = True",
    ]
    return Module(name, "\r\n".join(lines) + "\r\n", "document")


def _rec(record_id: int, data: bytes = b"") -> bytes:
    return struct.pack("<HI", record_id, len(data)) + data


def _text(s: str) -> bytes:
    return s.encode(CODEPAGE)


def _utf16(s: str) -> bytes:
    return s.encode("utf-16-le")


def dir_stream(modules: list[Module], project_name: str = "VBAProject") -> bytes:
    """The uncompressed ``dir`` stream ([MS-OVBA] 2.3.4.2)."""
    out = bytearray()
    out += _rec(0x0001, struct.pack("<I", 1))  # PROJECTSYSKIND: 32-bit Windows
    out += _rec(0x0002, struct.pack("<I", 0x0409))  # PROJECTLCID
    out += _rec(0x0014, struct.pack("<I", 0x0409))  # PROJECTLCIDINVOKE
    out += _rec(0x0003, struct.pack("<H", 1252))  # PROJECTCODEPAGE
    out += _rec(0x0004, _text(project_name))  # PROJECTNAME
    out += _rec(0x0005) + _rec(0x0040)  # PROJECTDOCSTRING (+ unicode)
    out += _rec(0x0006) + _rec(0x003D)  # PROJECTHELPFILEPATH (+ second copy)
    out += _rec(0x0007, struct.pack("<I", 0))  # PROJECTHELPCONTEXT
    out += _rec(0x0008, struct.pack("<I", 0))  # PROJECTLIBFLAGS
    out += struct.pack("<HIIH", 0x0009, 4, 1, 0)  # PROJECTVERSION: Reserved=4, major, minor
    out += _rec(0x000C) + _rec(0x003C)  # PROJECTCONSTANTS (+ unicode)
    for name, libid in REFERENCES:
        out += _rec(0x0016, _text(name)) + _rec(0x003E, _utf16(name))  # REFERENCENAME
        lib = _text(libid)
        registered = struct.pack("<I", len(lib)) + lib + struct.pack("<IH", 0, 0)
        out += _rec(0x000D, registered)  # REFERENCEREGISTERED
    out += _rec(0x000F, struct.pack("<H", len(modules)))  # PROJECTMODULES
    out += _rec(0x0013, struct.pack("<H", 0xFFFF))  # PROJECTCOOKIE
    for m in modules:
        out += _rec(0x0019, _text(m.name)) + _rec(0x0047, _utf16(m.name))  # MODULENAME
        out += _rec(0x001A, _text(m.name)) + _rec(0x0032, _utf16(m.name))  # MODULESTREAMNAME
        out += _rec(0x001C) + _rec(0x0048)  # MODULEDOCSTRING
        out += _rec(0x0031, struct.pack("<I", 0))  # MODULEOFFSET: the source starts the stream
        out += _rec(0x001E, struct.pack("<I", 0))  # MODULEHELPCONTEXT
        out += _rec(0x002C, struct.pack("<H", 0xFFFF))  # MODULECOOKIE
        out += _rec(0x0022 if m.kind == "document" else 0x0021)  # MODULETYPE
        out += _rec(0x002B)  # module terminator
    out += _rec(0x0010)  # dir terminator
    return bytes(out)


def project_stream(modules: list[Module], project_id: str) -> bytes:
    """The ``PROJECT`` stream ([MS-OVBA] 2.3.1): text properties of the project."""
    # unprotected (4 zero bytes), no password (one 0x00 byte), visible (0xFF)
    cmg = encrypt(project_id, bytes(4), seed=0x13, ignored=bytes(1))
    dpb = encrypt(project_id, bytes(1), seed=0x23, ignored=bytes(1))
    gc = encrypt(project_id, b"\xff", seed=0x35, ignored=bytes(2))
    lines = [f'ID="{project_id}"']
    for m in modules:
        document = m.kind == "document"
        lines.append(f"Document={m.name}/&H00000000" if document else f"Module={m.name}")
    lines += [
        'Name="VBAProject"',
        'HelpContextID="0"',
        'VersionCompatible32="393222000"',
        f'CMG="{cmg}"',
        f'DPB="{dpb}"',
        f'GC="{gc}"',
        "",
        "[Host Extender Info]",
        "&H00000001={3832D640-CF90-11CF-8E43-00A0C911005A};VBE;&H00000000",
        "",
        "[Workspace]",
        *[f"{m.name}=0, 0, 0, 0, C" for m in modules],
    ]
    return _text("\r\n".join(lines) + "\r\n")


def project_wm_stream(modules: list[Module]) -> bytes:
    """The ``PROJECTwm`` stream ([MS-OVBA] 2.3.3): each module name in MBCS and UTF-16."""
    out = bytearray()
    for m in modules:
        out += _text(m.name) + b"\x00" + _utf16(m.name) + b"\x00\x00"
    return bytes(out + b"\x00\x00")


def build_vba_project(
    standard: list[tuple[str, str]],
    sheet_code_names: list[str],
    *,
    workbook_code_name: str = "ThisWorkbook",
    project_id: str | None = None,
) -> bytes:
    """The bytes of ``vbaProject.bin``.

    Parameters
    ----------
    standard : list of (name, source)
        Standard modules; ``source`` is the .bas text, which must start with
        ``Attribute VB_Name = "<name>"``.
    sheet_code_names : list of str
        The ``codeName`` of each worksheet, in workbook order (a document module each).
    workbook_code_name : str
        The workbook's ``codeName`` (``workbookPr/@codeName``).
    project_id : str, optional
        ``{GUID}`` of the project; by default derived from the module names (stable).
    """
    modules = [document_module(workbook_code_name, WORKBOOK_BASE)]
    modules += [document_module(n, WORKSHEET_BASE) for n in sheet_code_names]
    for name, source in standard:
        text = source.replace("\r\n", "\n").replace("\n", "\r\n")
        first = text.split("\r\n", 1)[0]
        if first != f'Attribute VB_Name = "{name}"':
            raise ValueError(f"module {name}: the source must start with Attribute VB_Name")
        text.encode(CODEPAGE)  # raises on characters VBA could not store
        modules.append(Module(name, text))
    names = [m.name.upper() for m in modules]
    if len(set(names)) != len(names):
        raise ValueError("module names must be unique (case-insensitively)")
    if project_id is None:
        seed = "xl-factorlasso/" + "/".join(m.name for m in modules)
        project_id = "{" + str(uuid.uuid5(uuid.NAMESPACE_URL, seed)).upper() + "}"
    vba = Storage(
        "VBA",
        [
            Stream("_VBA_PROJECT", b"\xcc\x61\xff\xff\x00\x00\x00"),  # no performance cache
            Stream("dir", compress(dir_stream(modules))),
            *[Stream(m.name, compress(_text(m.source))) for m in modules],
        ],
    )
    root = [
        vba,
        Stream("PROJECT", project_stream(modules, project_id)),
        Stream("PROJECTwm", project_wm_stream(modules)),
    ]
    return compound_file(root)


# =============================================================================== [MS-CFB]
@dataclass
class Stream:
    name: str
    data: bytes


@dataclass
class Storage:
    name: str
    children: list = field(default_factory=list)


_SECTOR, _MINI, _CUTOFF = 512, 64, 4096
_FREESECT, _ENDOFCHAIN, _FATSECT, _NOSTREAM = 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD, 0xFFFFFFFF


def _cfb_key(name: str) -> tuple[int, str]:
    return len(name), name.upper()  # [MS-CFB] 2.6.4: shorter names first, then upper-case order


def compound_file(children: list) -> bytes:
    """A version-3 compound file whose root storage holds ``children`` (Streams / Storages)."""
    entries: list[dict] = []  # directory entries in id order

    def add(node, kind: int) -> int:
        entries.append({"name": node.name, "type": kind, "left": _NOSTREAM, "right": _NOSTREAM,
                        "child": _NOSTREAM, "color": 1, "start": 0, "size": 0, "node": node})
        return len(entries) - 1

    def add_children(parent_id: int, nodes: list) -> None:
        ids = []
        for node in sorted(nodes, key=lambda n: _cfb_key(n.name)):
            if len(node.name) > 31:
                raise ValueError(f"compound file names have at most 31 characters: {node.name}")
            ids.append(add(node, 1 if isinstance(node, Storage) else 2))
        if len({_cfb_key(entries[i]["name"]) for i in ids}) != len(ids):
            raise ValueError("duplicate names in one storage")
        entries[parent_id]["child"] = _balanced_red_black(ids, entries)
        for i in ids:
            if entries[i]["type"] == 1:
                add_children(i, entries[i]["node"].children)

    add(Storage("Root Entry"), 5)
    add_children(0, children)

    # stream data: small streams in the mini stream, others in their own sectors
    regular = bytearray()
    mini = bytearray()
    fat: list[int] = []
    minifat: list[int] = []

    def chain(table: list[int], first: int, count: int) -> None:
        table.extend(range(first + 1, first + count))
        table.append(_ENDOFCHAIN)

    for e in entries:
        if e["type"] != 2:
            continue
        data = e["node"].data
        e["size"] = len(data)
        if not data:
            e["start"] = _ENDOFCHAIN
        elif len(data) < _CUTOFF:
            count = -(-len(data) // _MINI)
            e["start"] = len(minifat)
            chain(minifat, len(minifat), count)
            mini += data.ljust(count * _MINI, b"\x00")
        else:
            count = -(-len(data) // _SECTOR)
            e["start"] = len(fat)
            chain(fat, len(fat), count)
            regular += data.ljust(count * _SECTOR, b"\x00")

    def sectors(n_bytes: int) -> int:
        return -(-n_bytes // _SECTOR)

    mini_sectors = sectors(len(mini))
    root = entries[0]
    root["start"], root["size"] = (len(fat), len(mini)) if mini else (_ENDOFCHAIN, 0)
    if mini_sectors:
        chain(fat, len(fat), mini_sectors)
    minifat_sectors = sectors(4 * len(minifat))
    first_minifat = len(fat) if minifat_sectors else _ENDOFCHAIN
    if minifat_sectors:
        chain(fat, len(fat), minifat_sectors)
    dir_sectors = sectors(128 * len(entries))
    first_dir = len(fat)
    chain(fat, len(fat), dir_sectors)
    fat_sectors = 0
    while fat_sectors * (_SECTOR // 4) < len(fat) + fat_sectors:
        fat_sectors += 1
    if fat_sectors > 109:
        raise ValueError("too large for a compound file without DIFAT sectors")
    fat_ids = list(range(len(fat), len(fat) + fat_sectors))
    fat += [_FATSECT] * fat_sectors

    header = bytearray()
    header += bytes.fromhex("D0CF11E0A1B11AE1") + bytes(16)
    header += struct.pack("<HHHHH", 0x003E, 0x0003, 0xFFFE, 9, 6) + bytes(6)
    header += struct.pack("<IIIIIIIII", 0, fat_sectors, first_dir, 0, _CUTOFF,
                          first_minifat, minifat_sectors, _ENDOFCHAIN, 0)
    header += struct.pack("<109I", *(fat_ids + [_FREESECT] * (109 - fat_sectors)))
    assert len(header) == _SECTOR

    directory = bytearray()
    for e in entries:
        name = _utf16(e["name"]) + b"\x00\x00"
        directory += name.ljust(64, b"\x00") + struct.pack(
            "<HBBIII16sIQQIQ", len(name), e["type"], e["color"], e["left"], e["right"],
            e["child"], bytes(16), 0, 0, 0, e["start"], e["size"])
    unused = bytes(64) + struct.pack("<HBBIII16sIQQIQ", 0, 0, 0, _NOSTREAM, _NOSTREAM,
                                     _NOSTREAM, bytes(16), 0, 0, 0, 0, 0)
    while len(directory) % _SECTOR:
        directory += unused

    def table(values: list[int]) -> bytes:
        values = values + [_FREESECT] * (-len(values) % (_SECTOR // 4))
        return struct.pack(f"<{len(values)}I", *values)

    body = (bytes(regular) + bytes(mini).ljust(mini_sectors * _SECTOR, b"\x00")
            + (table(minifat) if minifat_sectors else b"") + bytes(directory) + table(fat))
    return bytes(header) + body


def _balanced_red_black(ids: list[int], entries: list[dict]) -> int:
    """Link sorted sibling ids into a balanced binary search tree, coloured as a red-black tree.

    Splitting at the middle keeps every empty child slot on the last two levels, so colouring
    the nodes of the deepest level red (and every other node black) gives the same number of
    black nodes on every path. Returns the id of the root (``_NOSTREAM`` for no siblings).
    """
    depth: dict[int, int] = {}

    def build(lo: int, hi: int, d: int) -> int:
        if lo >= hi:
            return _NOSTREAM
        mid = (lo + hi) // 2
        node = ids[mid]
        depth[node] = d
        entries[node]["left"] = build(lo, mid, d + 1)
        entries[node]["right"] = build(mid + 1, hi, d + 1)
        return node

    root = build(0, len(ids), 0)
    deepest = max(depth.values(), default=0)
    for node, d in depth.items():
        entries[node]["color"] = 0 if (d == deepest and d > 0) else 1
    return root
