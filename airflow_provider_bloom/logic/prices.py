"""What a Bloom call costs, in credits: the one price list of the provider (no I/O).

Bloom's answers carry no cost, so the provider computes it from the request and a price list:

* **Published by Bloom** (spec and documentation): a generation costs 1 credit per image at 2K and 2
  at 4K, times ``variantCount``; an edit makes one image and costs the same per image size.
* **Assumed** (Bloom publishes no price): a resize costs like a generation of its source's size (1 for
  a 2K source, 2 for 4K; 4K when the size is unknown, so that a budget check errs on the safe side);
  remove-background and vectorize cost 1 credit each. The emulator charges exactly this.

Every price can be overridden with the ``prices`` extra of the Bloom connection (a JSON object), for
example when Bloom publishes or changes a price::

    {"images.resize": {"2K": 1, "4K": 3}, "images.removeBackground": 2, "images.vectorize": 0}

Keys are operation ids (``images.generate``, ``images.edit``, ``images.resize``,
``images.removeBackground``, ``images.vectorize``) or their short names (``generate``, ``edit``,
``resize``, ``remove_background``, ``vectorize``). A value is a whole number of credits per image, or
an object giving it per image size (``{"2K": 1, "4K": 2}``; for a resize the size is the source's).
Operations not named keep the defaults.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TypeAlias

from airflow_provider_bloom.client.spec import check_value, get_operation
from airflow_provider_bloom.exceptions import BloomInputError

#: The operations that cost credits ("charged"; operation id -> short name, the "kind" used in
#: reports): the five that declare 402 ``INSUFFICIENT_CREDITS``. They are among the paid requests
#: (:data:`~airflow_provider_bloom.client.spec.PAID_OPERATIONS`, never sent twice), which also hold
#: the uploads and the brand creation: those create something but cost nothing.
CHARGED_OPERATIONS: dict[str, str] = {
    "images.generate": "generate",
    "images.edit": "edit",
    "images.resize": "resize",
    "images.removeBackground": "remove_background",
    "images.vectorize": "vectorize",
}
#: Image sizes Bloom knows.
IMAGE_SIZES = ("2K", "4K")

#: A price: credits per image, flat or per image size.
Price: TypeAlias = int | Mapping[str, int]

#: Bloom's published prices: credits per image by size (a generation's variants each cost this).
PUBLISHED_PRICES: dict[str, Price] = {
    "images.generate": {"2K": 1, "4K": 2},
    "images.edit": {"2K": 1, "4K": 2},
}
#: What the provider assumes where Bloom publishes no price (and what the emulator charges).
ASSUMED_PRICES: dict[str, Price] = {
    "images.resize": {"2K": 1, "4K": 2},  # like a generation of the source's size
    "images.removeBackground": 1,
    "images.vectorize": 1,
}
DEFAULT_PRICES: dict[str, Price] = {**PUBLISHED_PRICES, **ASSUMED_PRICES}

#: Every spelling a price override may use for an operation (lower case) -> its operation id.
_SPELLINGS: dict[str, str] = {}
for _op, _kind in CHARGED_OPERATIONS.items():
    _SPELLINGS[_op.lower()] = _op
    _SPELLINGS[_kind] = _op
    _SPELLINGS[_kind.replace("_", "")] = _op
    _SPELLINGS[_kind.replace("_", "-")] = _op
    _SPELLINGS["images." + _kind] = _op
    _SPELLINGS["images." + _kind.replace("_", "-")] = _op


def operation_id(name: str) -> str:
    """The operation id of a charged operation named by its id or short name; raise for any other."""
    op = _SPELLINGS.get(str(name).strip().lower())
    if op is None:
        raise BloomInputError(
            "operation",
            f"{name!r} is not a paid Bloom operation that costs credits; "
            f"use one of {', '.join(CHARGED_OPERATIONS)}",
        )
    return op


def kind_of(operation: str) -> str:
    """The short name of a charged operation (``generate``, ``edit``, ``resize``...), used in reports."""
    return CHARGED_OPERATIONS[operation_id(operation)]


def _check_credits(field: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BloomInputError(field, f"must be a whole number of credits >= 0; got {value!r}")
    return value


def parse_prices(value: Any, field: str = "prices") -> dict[str, Price]:
    """Check a price override (a mapping, or its JSON text) and return it keyed by operation id.

    Empty (None, ``""``, ``{}``) means no override. Raises :class:`BloomInputError` naming the field and
    what is allowed, so that a bad connection extra fails before anything is sent.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise BloomInputError(
                field, 'must be a JSON object like {"images.resize": 1, "images.vectorize": 1}'
            ) from None
    if not isinstance(value, Mapping):
        raise BloomInputError(field, f"must be an object of operation -> credits; got {type(value).__name__}")
    out: dict[str, Price] = {}
    for name, price in value.items():
        try:
            op = operation_id(name)
        except BloomInputError as exc:
            raise BloomInputError(field, exc.problem) from None
        where = f"{field}[{name!r}]"
        if isinstance(price, Mapping):
            unknown = set(price) - set(IMAGE_SIZES)
            if unknown or not price:
                raise BloomInputError(
                    where, f"must give credits per image size ({', '.join(IMAGE_SIZES)}); got {dict(price)!r}"
                )
            out[op] = {size: _check_credits(f"{where}[{size!r}]", c) for size, c in price.items()}
        else:
            out[op] = _check_credits(where, price)
    return out


def price_list(prices: Mapping[str, Price] | None = None) -> dict[str, Price]:
    """The full price list: the defaults with ``prices`` (already parsed) over them."""
    table = dict(DEFAULT_PRICES)
    for op, price in (prices or {}).items():
        base = table[op]
        if isinstance(price, Mapping) and isinstance(base, Mapping):
            table[op] = {**base, **price}
        else:
            table[op] = price
    return table


def _per_image(price: Price, size: str) -> int:
    if isinstance(price, Mapping):
        if size in price:
            return int(price[size])
        return max(int(c) for c in price.values())  # an unknown size: the dearest one
    return int(price)


def credits_for(
    operation: str,
    body: Mapping[str, Any] | None = None,
    source_size: str | None = None,
    prices: Mapping[str, Price] | None = None,
) -> int:
    """Credits one charged request costs (one of :data:`CHARGED_OPERATIONS`).

    :param operation: the operation id (``images.generate``...) or its short name (``generate``...).
    :param body: the request body in Bloom's camelCase (``imageSize``, ``variantCount``); missing fields
        take Bloom's defaults (2K, one variant).
    :param source_size: for a resize, the size of the source image (``2K``/``4K``); unknown: 4K.
    :param prices: overrides (see :func:`parse_prices`; a connection's ``prices`` extra).
    """
    op = operation_id(operation)
    body = body or {}
    price = price_list(prices)[op]
    if op == "images.resize":
        return _per_image(price, source_size if source_size in IMAGE_SIZES else "4K")
    size = str(body.get("imageSize") or "2K")
    per_image = _per_image(price, size)
    if op == "images.generate":
        return per_image * int(body.get("variantCount") or 1)
    return per_image


def is_assumed(operation: str, prices: Mapping[str, Price] | None = None) -> bool:
    """Whether the price of ``operation`` is an assumption (not published by Bloom, not overridden)."""
    op = operation_id(operation)
    return op in ASSUMED_PRICES and op not in (prices or {})


def prompt_count(prompts: Any) -> int:
    """How many generations a batch makes: a number (or its digits), or the prompts (one per item)."""
    if isinstance(prompts, bool) or prompts is None:
        raise BloomInputError("prompts", "must be a number of prompts or a list of prompts")
    if isinstance(prompts, str) and prompts.strip().isdigit():
        prompts = int(prompts)  # a rendered template ("{{ params.n }}") is a string
    if isinstance(prompts, int):
        count = prompts
    elif isinstance(prompts, str):
        count = 1
    else:
        try:
            count = len(prompts)
        except TypeError:
            raise BloomInputError(
                "prompts", f"must be a number or a list; got {type(prompts).__name__}"
            ) from None
    if count < 0:
        raise BloomInputError("prompts", f"must not be negative; got {count}")
    return count


def estimate_credits(
    prompts: Any,
    image_size: str = "2K",
    variant_count: int = 1,
    prices: Mapping[str, Price] | None = None,
) -> int:
    """Credits a batch of generations costs: ``prompts x variant_count x (1 for 2K, 2 for 4K)``.

    :param prompts: the number of prompts, or the prompts (a list).
    :param image_size: ``"2K"`` or ``"4K"`` (checked against Bloom's spec).
    :param variant_count: variants per prompt, 1-5 (checked against Bloom's spec).
    :param prices: price overrides (a connection's ``prices`` extra; see
        this module).

    A resize costs like a generation of the source's size; pass those as extra prompts.
    """
    body = get_operation("images.generate").body
    image_size = check_value("image_size", image_size, body["imageSize"])
    variant_count = check_value("variant_count", variant_count, body["variantCount"])
    request = {"imageSize": image_size, "variantCount": variant_count}
    return prompt_count(prompts) * credits_for("images.generate", request, prices=prices)


__all__ = [
    "ASSUMED_PRICES",
    "CHARGED_OPERATIONS",
    "DEFAULT_PRICES",
    "IMAGE_SIZES",
    "PUBLISHED_PRICES",
    "Price",
    "credits_for",
    "estimate_credits",
    "is_assumed",
    "kind_of",
    "operation_id",
    "parse_prices",
    "price_list",
    "prompt_count",
]
