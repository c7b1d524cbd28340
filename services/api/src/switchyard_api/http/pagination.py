"""Cursor pagination: ``limit`` (default 50, max 1000) and a ``cursor`` each list defines.

A list's cursor has a documented pattern, and every string matching it is a valid
position, so the document and the code agree on which cursors are refused.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

_DIGITS = re.compile(r"^-?[0-9]+$")


def _decimal(value: Any) -> Any:
    # A query string is text: only an integer's decimal digits stand for one ("5.0" does not).
    if isinstance(value, str) and not _DIGITS.match(value):
        raise ValueError("must be an integer")
    return value


Limit = Annotated[
    int, Field(ge=1, le=1000, description="items per page"), BeforeValidator(_decimal)
]


class PageQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    limit: Limit = 50


Row = TypeVar("Row")


def cut_page(
    rows: list[Row], limit: int, cursor_of: Callable[[Row], str]
) -> tuple[list[Row], str | None]:
    """``rows`` were fetched with ``limit + 1``: the page, and the cursor after its last
    row when the extra row shows there is more (else None)."""
    page = rows[:limit]
    return page, cursor_of(page[-1]) if len(rows) > limit else None
