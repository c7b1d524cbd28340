"""The yardstick of the flash-sale bench: the least claim that keeps SPEC section 7.

Guarantee kept (the same as ``POST /api/coupons/claim``): at most one claim per (user,
coupon), successful claims = min(stock, distinct claimants), ``remaining_amount`` never
negative, each success written with its ``coupon.claimed`` outbox row in the same commit,
and the answers 200 / 409 / 400 / 404 / 400-on-bad-body. Nothing more: a bare Flask app
under our gunicorn settings, no request frame, no pool library (one psycopg2 connection
per thread, autocommit), no cache, no batching across requests.

The least PostgreSQL work per claim:

* one lock-free read answers every claim that committed facts already decide: no coupon
  (404), a committed claim of this user (409, claims are never deleted), or stock 0
  without this user among the claimants (400: stock never grows back, and one snapshot
  holds the decrement together with the claims that made it);
* anything else is one round trip to ``claim_coupon_batch()`` (migration 0002) with a
  batch of one: the textbook locked transaction (lock the row, then check the claim and
  the stock on a fresh snapshot, write, commit) without a client round trip under the lock.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

import orjson
import psycopg2

from switchyard.config import Settings, get_settings
from switchyard.events import TYPE_HEADER
from switchyard.kafka.topics import COUPONS, topic_name
from switchyard.outbox.store import NOTIFY_CHANNEL

_DECIDED = (
    "SELECT c.remaining_amount, EXISTS (SELECT 1 FROM claims cl WHERE cl.coupon_name = c.name"
    " AND cl.user_id = %(user)s) FROM coupons c WHERE c.name = %(coupon)s"
)
_CLAIM_ONE = (
    "SELECT o_outcomes[1] FROM claim_coupon_batch(%(coupon)s, ARRAY[%(user)s],"
    " ARRAY[%(event_id)s], ARRAY[%(payload)s], ARRAY[%(headers)s::jsonb], %(topic)s,"
    " %(channel)s)"
)


def minimum_app(settings: Settings | None = None) -> Any:
    """The gunicorn app factory: ``switchyard_devtools.bench.coupon_minimum:minimum_app()``
    (settings from the environment, as every service reads them)."""
    from flask import Flask, Response, request

    settings = settings or get_settings()
    topic = topic_name(settings, COUPONS)
    local = threading.local()
    app = Flask("coupon_minimum")

    def cursor() -> Any:
        connection = getattr(local, "connection", None)
        if connection is None or connection.closed:
            connection = psycopg2.connect(settings.database_url)
            connection.autocommit = True
            local.connection = connection
        return connection.cursor()

    def answer(status: int) -> Response:
        return Response(b"{}", status=status, mimetype="application/json")

    def claim(coupon: str, user: str) -> int:
        with cursor() as db:
            db.execute(_DECIDED, {"coupon": coupon, "user": user})
            row = db.fetchone()
            if row is None:
                return 404
            remaining, claimed = row
            if claimed:
                return 409
            if remaining == 0:
                return 400
            event_id = str(uuid.uuid4())
            event = {"id": event_id, "type": "coupon.claimed", "source": "/bench/minimum"}
            payload = orjson.dumps({**event, "data": {"coupon_name": coupon, "user_id": user}})
            db.execute(
                _CLAIM_ONE,
                {
                    "coupon": coupon,
                    "user": user,
                    "event_id": event_id,
                    "payload": payload,
                    "headers": orjson.dumps({TYPE_HEADER: "coupon.claimed"}).decode(),
                    "topic": topic,
                    "channel": NOTIFY_CHANNEL,
                },
            )
            return int(db.fetchone()[0])

    @app.post("/api/coupons/claim")
    def claim_coupon() -> Response:
        try:
            body = orjson.loads(request.get_data())
            user, coupon = body["user_id"], body["coupon_name"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return answer(400)
        if not (isinstance(user, str) and isinstance(coupon, str) and user and coupon):
            return answer(400)
        return answer(claim(coupon, user))

    @app.get("/readyz")
    def ready() -> Response:
        return answer(200)

    return app
