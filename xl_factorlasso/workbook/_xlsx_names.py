"""Defined names of a workbook package: the usable ranges, and why the others are not usable.

A name on an Excel table (``tblReturns[#All]``) is a usable range: the table's current range
(``ref`` of its table part), so a name on a table follows the table as it grows.

A mixin of :class:`._xlsx.XlsxPackage`; it relies on the package's part, relationship and sheet
helpers (``_get_xml``, ``_rels``, ``_find``, ``_sheets``, ``_sheet``, ``_touch``,
``table_spans``).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

from lxml import etree

from ._xlsx_opc import MAIN, PR, WORKBOOK_ORDER, R, insert_in_order, rels_part_for
from ._xlsx_refs import (
    format_range,
    is_valid_name,
    parse_name_target,
    parse_range,
    parse_structured_ref,
    quote_sheet,
)

__all__ = ["DefinedName", "NameEntry", "NamesMixin"]

_SHEET_KINDS = {"chartsheet": "chart sheet", "dialogsheet": "dialog sheet",
                "xlMacrosheet": "Excel 4 macro sheet", "xlIntlMacrosheet": "Excel 4 macro sheet",
                "missing": "the missing sheet"}


def _q(tag: str, ns: str = MAIN) -> str:
    return f"{{{ns}}}{tag}"


@dataclass(frozen=True)
class DefinedName:
    """A workbook-scope name that refers to one contiguous range on one worksheet.

    Attributes
    ----------
    name : str
        The name as stored in the workbook (Excel compares names case-insensitively).
    sheet : str
        Worksheet name (unquoted).
    ref : str
        Range in A1 notation without ``$`` (``"B2:D9"``; a single cell is ``"B2"``).
    min_row, min_col, max_row, max_col : int
        1-based bounds of the range.
    """

    name: str
    sheet: str
    ref: str
    min_row: int
    min_col: int
    max_row: int
    max_col: int

    @property
    def shape(self) -> tuple[int, int]:
        """``(rows, columns)`` of the range."""
        return self.max_row - self.min_row + 1, self.max_col - self.min_col + 1


@dataclass(frozen=True)
class NameEntry:
    """Any defined name in the workbook, with the reason it is not a usable range (if any).

    Attributes
    ----------
    name : str
        The name as stored.
    formula : str
        Its definition as stored (``Sheet1!$B$2:$D$9``, ``#REF!``, ``0.5`` ...).
    scope : str or None
        ``None`` for workbook scope, else the name of the sheet it is local to.
    hidden : bool
        Whether the name is hidden from Excel's Name Manager.
    target : DefinedName or None
        The parsed range when the definition is one contiguous range on an existing worksheet
        (also for sheet-scoped names, so a caller can say where they point).
    reason : str or None
        ``None`` if the name appears in :meth:`XlsxPackage.defined_names`, else why not.
    table : str or None
        The table a usable name follows (``tblReturns`` for ``tblReturns[#All]``), else None.
    """

    name: str
    formula: str
    scope: str | None
    hidden: bool
    target: DefinedName | None
    reason: str | None
    table: str | None = None


class NamesMixin:
    """Reading, judging and setting defined names (part of :class:`._xlsx.XlsxPackage`)."""

    def _external_books(self) -> list[str]:
        """Targets of the workbook's external references, in order (``[1]`` is the first)."""
        root = self._get_xml(self._workbook_part)
        refs = root.find(_q("externalReferences"))
        rels = self._rels(self._workbook_part)
        books = []
        for el in refs.iterchildren(_q("externalReference")) if refs is not None else ():
            _, link = rels.get(el.get(_q("id", R)), (None, None))
            book = "an external workbook"
            rels_name = rels_part_for(link) if link else None
            if rels_name and self._find(rels_name):
                for rel in self._get_xml(rels_name).iterchildren(_q("Relationship", PR)):
                    if rel.get("TargetMode") == "External" and rel.get("Target"):
                        book = unquote(rel.get("Target"))
                        break
            books.append(book)
        return books

    def all_defined_names(self) -> list[NameEntry]:
        """Every defined name in the workbook, with why it is not a usable range (if so).

        Returns
        -------
        list of NameEntry
            In workbook order. ``reason`` is ``None`` exactly for the names that
            :meth:`defined_names` returns; otherwise a phrase that reads after the name:
            ``"refers to #REF! ..."``, ``"is a multi-area reference (2 areas: ...)"``,
            ``"refers to the whole column A of sheet 'Data' ..."``, ``"is local to sheet
            'Data' ..."``, ``"refers to another workbook (...)"``, ``"refers to sheet 'X',
            which is not in the workbook ..."``, ``"is a constant (0.5), not a range"``,
            ``"is a formula (...)"``, ``"refers to chart sheet 'Chart1', which has no cells"``,
            ``"is one of Excel's built-in names"``, ``"is defined twice ..."``, and for a
            name on a table the reasons of :func:`._xlsx_refs.resolve_table_ref` (``"refers
            to the data rows of table 'tblReturns' without its header row ..."``).
        """
        root = self._get_xml(self._workbook_part)
        sheets = self._sheets()
        by_name = {s.name.lower(): s for s in sheets}
        dn = root.find(_q("definedNames"))
        books = None
        tables = None

        def table_spans():  # read the table parts only if a name needs them
            nonlocal tables
            if tables is None:
                tables = self.table_spans()
            return tables

        entries, seen = [], set()
        for el in dn.iterchildren(_q("definedName")) if dn is not None else ():
            name, formula = el.get("name", ""), (el.text or "").strip()
            local = el.get("localSheetId")
            scope = None
            if local is not None:
                idx = int(local) if local.isdigit() else -1
                scope = sheets[idx].name if 0 <= idx < len(sheets) else f"#{local}"
            if books is None and "[" in formula:
                books = self._external_books()
            parsed = parse_name_target(formula, books or (), table_spans)
            target, reason, table = None, None, None
            if isinstance(parsed, str):
                reason = parsed
            else:
                sheet_name, bounds = parsed
                sheet = by_name.get(sheet_name.lower())
                if sheet is None:
                    listed = ", ".join(repr(s.name) for s in sheets[:10])
                    more = ", ..." if len(sheets) > 10 else ""
                    reason = (f"refers to sheet {sheet_name!r}, which is not in the workbook "
                              f"(it has {listed}{more})")
                elif sheet.part is None:
                    kind = _SHEET_KINDS.get(sheet.kind, sheet.kind)
                    reason = f"refers to {kind} {sheet.name!r}, which has no cells"
                else:
                    target = DefinedName(name, sheet.name, format_range(*bounds), *bounds)
                    ref = parse_structured_ref(formula) if tables else None
                    if ref is not None and ref.table.lower() in tables:
                        table = tables[ref.table.lower()].name
            if name.lower().startswith("_xlnm."):
                reason = "is one of Excel's built-in names"
            elif scope is not None:
                reason = (f"is local to sheet {scope!r} (a sheet-scoped name); contract names "
                          "must be workbook-scope: delete it and define it again with Scope "
                          "'Workbook' in Excel's Name Manager")
            elif reason is None and name.lower() in seen:
                reason = ("is defined twice at workbook scope; delete the duplicate in "
                          "Excel's Name Manager")
            if scope is None:
                seen.add(name.lower())
            entries.append(NameEntry(name, formula, scope, el.get("hidden") in ("1", "true"),
                                     target, reason, table if reason is None else None))
        return entries

    def name_issues(self) -> dict[str, str]:
        """Defined names that are not usable ranges, keyed by upper-case name, with the reason.

        Excel's own built-in names (``_xlnm.Print_Area`` ...) are left out, and so is a name
        that :meth:`defined_names` has (a workbook-scope name can coexist with sheet-scoped
        names of the same spelling). Several reasons for one spelling are joined with ``"; "``.
        """
        usable = {n.upper() for n in self.defined_names()}
        out: dict[str, str] = {}
        for e in self.all_defined_names():
            key = e.name.upper()
            if e.reason is None or key in usable or key.startswith("_XLNM."):
                continue
            if key in out and e.reason not in out[key].split("; "):
                out[key] = f"{out[key]}; {e.reason}"
            else:
                out.setdefault(key, e.reason)
        return out

    def defined_names(self) -> dict[str, DefinedName]:
        """Workbook-scope names that refer to one contiguous range on one worksheet.

        Returns
        -------
        dict
            ``{name: DefinedName}`` keyed by the name as stored. Names that do not qualify
            (``#REF!``, multi-area, sheet-scoped, constants ...) are listed with a reason by
            :meth:`all_defined_names`.
        """
        return {e.name: e.target for e in self.all_defined_names() if e.reason is None}

    def set_defined_name(self, name: str, sheet: str, ref: str) -> DefinedName:
        """Create or re-point a workbook-scope name to ``sheet!ref``.

        An existing workbook-scope name is matched case-insensitively (as Excel does) and keeps
        its other attributes (comment, hidden); sheet-scoped names of the same name are left alone.

        Parameters
        ----------
        name : str
            A legal Excel name (not a cell reference, not ``_xlnm.*``).
        sheet : str
            An existing worksheet.
        ref : str
            A1 range such as ``"B2:D9"`` (stored absolute: ``'My Sheet'!$B$2:$D$9``).

        Returns
        -------
        DefinedName
        """
        if not is_valid_name(name) or name.lower().startswith("_xlnm."):
            raise ValueError(f"{name!r} is not a valid Excel name for a range")
        info = self._sheet(sheet)
        bounds = parse_range(ref, info.name)
        formula = f"{quote_sheet(info.name)}!{format_range(*bounds, absolute=True)}"
        root = self._get_xml(self._workbook_part)
        dn = root.find(_q("definedNames"))
        if dn is None:
            dn = insert_in_order(root, etree.Element(_q("definedNames")), WORKBOOK_ORDER)
        existing = [
            el for el in dn.iterchildren(_q("definedName"))
            if el.get("name", "").lower() == name.lower() and el.get("localSheetId") is None
        ]
        if existing:
            el = existing[0]
            stored = el.get("name")
        else:
            el = etree.Element(_q("definedName"), name=name)
            # Keep the list sorted case-insensitively, as Excel writes it.
            for other in dn.iterchildren(_q("definedName")):
                if other.get("name", "").lower() > name.lower():
                    other.addprevious(el)
                    break
            else:
                dn.append(el)
            stored = name
        if el.text != formula:
            el.text = formula
            self._touch(self._workbook_part)
        return DefinedName(stored, info.name, format_range(*bounds), *bounds)
