"""``/products``: create (publishes product.created through the outbox), read, list."""

from __future__ import annotations

from typing import Annotated, Any

from flask import Blueprint, current_app
from pydantic import Field

from switchyard.kafka.topics import PRODUCTS, topic_name
from switchyard_api.http.contract import Out, Reply, endpoint
from switchyard_api.http.pagination import cut_page
from switchyard_api.http.problems import Problem, invalid_fields
from switchyard_api.http.request_context import current_request_id
from switchyard_api.products.schemas import (
    MAX_ID,
    Product,
    ProductCreate,
    ProductListQuery,
    ProductPage,
)
from switchyard_api.products.store import ProductStore, UnknownUser
from switchyard_api.services import ApiServices

products = Blueprint("products", __name__)
TAGS = ("products",)
NO_PRODUCT = "no such product"
# Stateful tests (and readers) follow this from a created product to its page.
_LINKS = {
    "GetProduct": {
        "operationId": "get_product",
        "parameters": {"product_id": "$response.body#/product_id"},
    },
    "ListUserProducts": {
        "operationId": "list_products",
        "parameters": {"user_id": "$response.body#/user_id"},
    },
}


def render(row: dict[str, Any]) -> dict[str, Any]:
    """A row as the API returns it, JSON-ready (the event's data too)."""
    return Product.model_validate(row).model_dump(mode="json")


def _build(services: ApiServices) -> ProductStore:
    return ProductStore(services.engine, topic_name(services.settings, PRODUCTS), render)


def _store() -> ProductStore:
    services: ApiServices = current_app.extensions["switchyard"]
    return services.part("products", _build)


@endpoint(
    products,
    "POST",
    "/products",
    summary="Create a product; publishes product.created for the image-worker",
    description="`user_id` must name an existing user (else a 400 field error on it). "
    "The product and its event commit in one transaction; `status` starts `pending`.",
    tags=TAGS,
    body=ProductCreate,
    responses={
        201: Out(
            "created; Location names it",
            Product,
            links=_LINKS,
            headers={"Location": {"schema": {"type": "string"}}},
        )
    },
)
def create_product(body: ProductCreate) -> Reply:
    try:
        product = _store().create(body.model_dump(), current_request_id())
    except UnknownUser:
        raise invalid_fields(
            [{"field": "user_id", "message": f"there is no user with id {body.user_id}"}]
        ) from None
    return Reply(product, 201, {"Location": f"/products/{product['product_id']}"})


@endpoint(
    products,
    "GET",
    "/products/<int:product_id>",
    summary="A product, with its compressed images and processing status",
    tags=TAGS,
    path={"product_id": Annotated[int, Field(ge=1, le=MAX_ID)]},
    responses={200: Out("the product", Product)},
    problems={404: NO_PRODUCT},
)
def get_product(product_id: int) -> Product:
    product = _store().get(product_id)
    if product is None:
        raise Problem(404, f"There is no product with id {product_id}.", slug="not-found")
    return Product.model_validate(product)


@endpoint(
    products,
    "GET",
    "/products",
    summary="List products, newest first (descending product_id); optionally one user's",
    tags=TAGS,
    query=ProductListQuery,
    responses={200: Out("a page", ProductPage)},
)
def list_products(query: ProductListQuery) -> ProductPage:
    before = int(query.cursor) if query.cursor else None
    rows = _store().list(query.user_id, before, query.limit + 1)
    items, cursor = cut_page(rows, query.limit, _id_cursor)
    return ProductPage(items=[Product.model_validate(item) for item in items], next_cursor=cursor)


def _id_cursor(product: dict[str, Any]) -> str:
    return str(product["product_id"])
