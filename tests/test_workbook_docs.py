"""docs/workbook.md carries the contract table generated from the code."""

from pathlib import Path

from xl_factorlasso.workbook import CONTRACT
from xl_factorlasso.workbook._contract import contract_markdown


def test_contract_doc_is_in_sync_with_the_code():
    doc = (Path(__file__).parent.parent / "docs" / "workbook.md").read_text()
    start = doc.index("<!-- contract-table:start -->") + len("<!-- contract-table:start -->")
    end = doc.index("<!-- contract-table:end -->")
    assert doc[start:end].strip() == contract_markdown()
    assert len(CONTRACT) == 34 and all(f"`{s.name}`" in doc for s in CONTRACT)
