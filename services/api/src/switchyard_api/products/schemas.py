"""Bodies of ``/products``; their JSON Schemas, in the OpenAPI document, carry every rule.

- ``product_images``: 1 to 20 absolute ``http``/``https`` URLs (RFC 3986, ASCII: anything
  else percent-encoded), each at most 2048 characters, with a host name or an IP literal,
  an optional port (1-65535) and no credentials. Duplicates are allowed: each entry is an
  image of its own, and ``compressed_product_images`` stays index-aligned with it. Whether
  an address may be fetched (private networks, ``FETCH__ALLOW``) is the image-worker's
  decision at fetch time: the API does not resolve names.
- ``product_price``: a JSON number (never a string), 0 to 9,999,999,999.99, at most two
  decimals. The number is read as its shortest decimal spelling, so ``19.99`` is exactly
  19.99, and ``0.30000000000000004`` (0.1 + 0.2) or ``1.005`` are refused. Responses give it
  back as a JSON number with that exact decimal spelling.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
)

from switchyard.db.models.products import (
    MAX_DESCRIPTION_LENGTH,
    MAX_IMAGES,
    MAX_NAME_LENGTH,
    MAX_URL_LENGTH,
    STATUSES,
)
from switchyard_api.http.fields import INTEGRAL, explained, text, trimmed
from switchyard_api.http.pagination import PageQuery

MAX_ID = 2**31 - 1
MAX_PRICE = Decimal("9999999999.99")
CENT = Decimal("0.01")

_HEX4 = "[0-9A-Fa-f]{1,4}"
# RFC 4291 text forms without an embedded IPv4 part or a zone.
_IPV6 = "|".join(
    (
        rf"(?:{_HEX4}:){{7}}{_HEX4}",
        rf"(?:{_HEX4}:){{1,7}}:",
        rf"(?:{_HEX4}:){{1,6}}:{_HEX4}",
        rf"(?:{_HEX4}:){{1,5}}(?::{_HEX4}){{1,2}}",
        rf"(?:{_HEX4}:){{1,4}}(?::{_HEX4}){{1,3}}",
        rf"(?:{_HEX4}:){{1,3}}(?::{_HEX4}){{1,4}}",
        rf"(?:{_HEX4}:){{1,2}}(?::{_HEX4}){{1,5}}",
        rf"{_HEX4}:(?::{_HEX4}){{1,6}}",
        rf":(?:(?::{_HEX4}){{1,7}}|:)",
    )
)
_LABEL = "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST = rf"(?:{_LABEL}(?:\.{_LABEL})*|\[(?:{_IPV6})\])"
_PORT = "(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})"
# No userinfo: "@" cannot appear before the path, so credentials cannot either.
IMAGE_URL_PATTERN = explained(
    rf"^https?://{_HOST}(?::{_PORT})?(?:[/?#][!-~]*)?$",
    "must be an absolute http:// or https:// URL with a host, an optional port, no "
    "credentials, and only printable ASCII (percent-encode the rest)",
)
# The cursor is the last product_id of the previous page: any such number is a position.
PRODUCT_CURSOR = explained(r"^(0|[1-9][0-9]{0,17})$", "not a cursor this API issues")


def _json_number(value: Any) -> Any:
    """A JSON number as the exact decimal it spells; anything else is refused here."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ValueError("must be a JSON number")
    if isinstance(value, float):
        # repr is the shortest spelling that reads back as the same double: "19.99".
        return Decimal(repr(value))
    return Decimal(value)


def _price(value: Decimal) -> Decimal:
    if not value.is_finite() or not 0 <= value <= MAX_PRICE:
        raise ValueError(f"must be between 0 and {MAX_PRICE}")
    if value % CENT != 0:
        raise ValueError("must have at most two decimals")
    return value.quantize(CENT) + 0  # + 0: -0.00 is 0.00


def _as_json_number(value: Decimal) -> float:
    # At most 12 significant digits: the double's shortest spelling is this decimal.
    return float(value)


Price = Annotated[
    Decimal,
    BeforeValidator(_price),
    BeforeValidator(_json_number),
    PlainSerializer(_as_json_number, return_type=float, when_used="json"),
    WithJsonSchema(
        {
            "type": "number",
            "minimum": 0,
            "maximum": float(MAX_PRICE),
            "multipleOf": float(CENT),
            "description": "0 to 9,999,999,999.99, at most two decimals",
        },
        mode="validation",
    ),
    WithJsonSchema({"type": "number"}, mode="serialization"),
]
UserId = Annotated[
    int,
    Field(strict=True, ge=1, le=MAX_ID, description="an existing user's id"),
    INTEGRAL,
]
ProductName = Annotated[
    str,
    trimmed(MAX_NAME_LENGTH, "1-200 printable characters, no leading or trailing spaces"),
]
Description = Annotated[str, text(0, MAX_DESCRIPTION_LENGTH, "at most 10,000 characters")]
ImageUrl = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_URL_LENGTH,
        pattern=IMAGE_URL_PATTERN,
        description="absolute http(s) URL, at most 2048 characters",
    ),
]


class ProductCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", title="ProductCreate")

    user_id: UserId
    product_name: ProductName
    product_description: Description = ""
    product_images: list[ImageUrl] = Field(
        min_length=1,
        max_length=MAX_IMAGES,
        description="1 to 20 image URLs; duplicates allowed (each is its own image)",
    )
    product_price: Price


class ImageError(BaseModel):
    model_config = ConfigDict(title="ImageError")

    index: int = Field(description="position in product_images")
    url: str
    reason: str = Field(description="machine-readable code, e.g. refused_address, not_an_image")
    message: str


class ImageDetail(BaseModel):
    model_config = ConfigDict(title="ImageDetail")

    index: int = Field(description="position in product_images")
    path: str
    variant: str
    width: int
    height: int
    bytes_in: int
    bytes_out: int


class Product(BaseModel):
    model_config = ConfigDict(title="Product")

    product_id: int
    user_id: int
    product_name: str
    product_description: str
    product_images: list[str]
    product_price: Price
    compressed_product_images: list[str | None] = Field(
        description="one entry per product_images entry once processed, in the same order: "
        "the stored path, or null for an image that failed (see image_errors); "
        "empty until then"
    )
    status: Literal[STATUSES] = Field(  # type: ignore[valid-type]
        description="pending → processing → done | failed"
    )
    image_errors: list[ImageError]
    image_details: list[ImageDetail]
    attempts: int
    processed_at: str | None = Field(description="RFC 3339; null until processed")
    created_at: str = Field(description="RFC 3339")
    updated_at: str = Field(description="RFC 3339")


class ProductPage(BaseModel):
    model_config = ConfigDict(title="ProductPage")

    items: list[Product]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page")


def _query_integer(value: Any) -> Any:
    # A query string is text: only an integer's decimal digits stand for one ("5.0" does not).
    if isinstance(value, str) and not (value.isascii() and value.lstrip("-").isdigit()):
        raise ValueError("must be an integer")
    return value


class ProductListQuery(PageQuery):
    user_id: Annotated[int, Field(ge=1, le=MAX_ID), BeforeValidator(_query_integer)] | None = Field(
        default=None, description="only this user's products"
    )
    cursor: Annotated[str, Field(pattern=PRODUCT_CURSOR)] | None = Field(
        default=None, description="`next_cursor` of the previous page (the last product_id seen)"
    )
