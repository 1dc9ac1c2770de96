"""Open Packaging Conventions plumbing: namespaces, part names, relationships, schema order."""

from __future__ import annotations

import posixpath
from urllib.parse import unquote

from lxml import etree

from ._xlsx_archive import check_no_doctype

__all__ = [
    "A",
    "CT",
    "MAIN",
    "PR",
    "R",
    "XDR",
    "insert_in_order",
    "local_name",
    "parse_xml",
    "rels_part_for",
    "relative_target",
    "resolve_target",
    "serialize_xml",
]

MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
STRICT_MAIN = "http://purl.oclc.org/ooxml/spreadsheetml/main"
R = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PR = "http://schemas.openxmlformats.org/package/2006/relationships"
CT = "http://schemas.openxmlformats.org/package/2006/content-types"
XDR = "http://schemas.openxmlformats.org/drawingml/2006/spreadsheetDrawing"
A = "http://schemas.openxmlformats.org/drawingml/2006/main"
MC = "http://schemas.openxmlformats.org/markup-compatibility/2006"
XML_SPACE = "{http://www.w3.org/XML/1998/namespace}space"

RT_OFFICE_DOCUMENT = R + "/officeDocument"
RT_STRICT_OFFICE_DOCUMENT = "http://purl.oclc.org/ooxml/officeDocument/relationships/officeDocument"
RT_WORKSHEET = R + "/worksheet"
RT_SHARED_STRINGS = R + "/sharedStrings"
RT_STYLES = R + "/styles"
RT_CALC_CHAIN = R + "/calcChain"
RT_DRAWING = R + "/drawing"
RT_IMAGE = R + "/image"
RT_TABLE = R + "/table"
RT_COMMENTS = R + "/comments"
RT_THREADED_COMMENTS = "http://schemas.microsoft.com/office/2017/10/relationships/threadedComment"

CT_DRAWING = "application/vnd.openxmlformats-officedocument.drawing+xml"
CT_PNG = "image/png"
CT_RELS = "application/vnd.openxmlformats-package.relationships+xml"
CT_XLSB = "application/vnd.ms-excel.sheet.binary.macroEnabled.main"

# Child order of CT_Worksheet and CT_Workbook (ECMA-376 Part 1, 18.3.1.99 and 18.2.27): a new
# child must go before the first existing sibling that the schema places after it.
WORKSHEET_ORDER = (
    "sheetPr", "dimension", "sheetViews", "sheetFormatPr", "cols", "sheetData", "sheetCalcPr",
    "sheetProtection", "protectedRanges", "scenarios", "autoFilter", "sortState",
    "dataConsolidate", "customSheetViews", "mergeCells", "phoneticPr", "conditionalFormatting",
    "dataValidations", "hyperlinks", "printOptions", "pageMargins", "pageSetup", "headerFooter",
    "rowBreaks", "colBreaks", "customProperties", "cellWatches", "ignoredErrors", "smartTags",
    "drawing", "legacyDrawing", "legacyDrawingHF", "drawingHF", "picture", "oleObjects",
    "controls", "webPublishItems", "tableParts", "extLst",
)
WORKBOOK_ORDER = (
    "fileVersion", "fileSharing", "workbookPr", "workbookProtection", "bookViews", "sheets",
    "functionGroups", "externalReferences", "definedNames", "calcPr", "oleSize",
    "customWorkbookViews", "pivotCaches", "smartTagPr", "smartTagTypes", "webPublishing",
    "fileRecoveryPr", "webPublishObjects", "extLst",
)

# Parts come from users' files: never load a DTD, expand an entity or touch the network.
# (huge_tree lifts libxml2's depth and text-size limits that a 1M-row sheet can reach; entity
# amplification cannot happen because a part with a DOCTYPE is refused before parsing.)
_PARSER = etree.XMLParser(resolve_entities=False, load_dtd=False, no_network=True,
                          huge_tree=True)


def parse_xml(data: bytes, part: str) -> etree._Element:
    """Parse one XML part; a clear ``ValueError`` naming the part if it is not well-formed
    or declares a DOCTYPE."""
    check_no_doctype(data, part)
    try:
        return etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise ValueError(f"part {part!r} of the workbook is not well-formed XML: {exc}") from None


def serialize_xml(root: etree._Element) -> bytes:
    """Serialise a part the way Excel writes it: UTF-8 with a standalone declaration."""
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=True)


def local_name(el: etree._Element) -> str:
    """Local name of an element; for ``mc:AlternateContent`` the name of what it wraps."""
    if not isinstance(el.tag, str):
        return ""  # comments and processing instructions
    name = etree.QName(el).localname
    if name == "AlternateContent" and etree.QName(el).namespace == MC:
        for choice in el:
            for inner in choice:
                if isinstance(inner.tag, str):
                    return etree.QName(inner).localname
    return name


def insert_in_order(parent: etree._Element, child: etree._Element, order: tuple[str, ...]):
    """Insert ``child`` into ``parent`` at the position the schema ``order`` requires."""
    rank = order.index(etree.QName(child).localname)
    later = set(order[rank + 1 :])
    for existing in parent:
        if local_name(existing) in later:
            existing.addprevious(child)
            return child
    parent.append(child)
    return child


def rels_part_for(part: str) -> str:
    """Relationships part of ``part``: ``xl/workbook.xml`` -> ``xl/_rels/workbook.xml.rels``.

    The package itself (``""``) has ``_rels/.rels``.
    """
    folder, name = posixpath.split(part)
    return posixpath.join(folder, "_rels", name + ".rels")


def resolve_target(source_part: str, target: str) -> str:
    """Zip member name a relationship target points to (relative to the source part's folder)."""
    target = unquote(target.replace("\\", "/"))
    if target.startswith("/"):
        path = target[1:]
    else:
        path = posixpath.join(posixpath.dirname(source_part), target)
    return posixpath.normpath(path).lstrip("/")


def relative_target(source_part: str, target_part: str) -> str:
    """Relative target for a new relationship, as Excel writes them (``../media/image1.png``)."""
    return posixpath.relpath(target_part, posixpath.dirname(source_part) or ".")
