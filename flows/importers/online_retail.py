"""The built-in mapping of the UCI Online Retail export (``online-retail``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from flows.importers.columns import ColumnMap, CsvMapping, RefundRule, SkuFamilyRule

# --------------------------------------------------------------------------- built-in mapping

ONLINE_RETAIL_FAMILY_KEYWORDS: Final[tuple[tuple[str, tuple[str, ...]], ...]] = tuple(
    (family, tuple(words.split()))
    for family, words in (
        (
            "christmas",
            "CHRISTMAS XMAS SANTA ADVENT REINDEER SNOWFLAKE NATIVITY BAUBLE BAUBLES SNOWMAN",
        ),
        ("candles", "CANDLE CANDLES TLIGHT TLIGHTS NIGHTLIGHT INCENSE"),
        ("bags", "BAG BAGS HANDBAG SHOPPER TOTE PURSE BACKPACK RUCKSACK"),
        (
            "kitchen",
            "MUG MUGS CUP CUPS TEACUP SAUCER CAKE CAKESTAND TEA TEAPOT COFFEE BOWL BOWLS"
            " PLATE PLATES CUTLERY SPOON SPOONS JAR JARS TRAY TRAYS LUNCH BAKING"
            " KITCHEN APRON NAPKIN NAPKINS TOWEL TOWELS EGG GLASS GLASSES JUG BISCUIT"
            " COOKIE SUGAR DISH TIN TINS CASES PANTRY CHOPSTICKS",
        ),
        (
            "stationery",
            "CARD CARDS NOTEBOOK NOTEBOOKS PENCIL PENCILS PEN PENS PAPER WRAP GIFTWRAP"
            " STICKER STICKERS ENVELOPE ENVELOPES JOURNAL DIARY CALENDAR NOTEPAD"
            " ERASER RUBBER BOOK TAPE RIBBONS TISSUES",
        ),
        (
            "decor",
            "HEART HEARTS HOLDER FRAME MIRROR SIGN CLOCK CUSHION LANTERN DECORATION"
            " DECORATIONS ORNAMENT VASE DOORMAT WREATH GARLAND HANGING BUNTING LIGHT LIGHTS"
            " LAMP DOORSTOP HOOK HOOKS DRAWER KNOB TILE PLAQUE CHANDELIER STAND BIRDCAGE"
            " BASKET TRINKET",
        ),
    )
)
"""Keyword table of the ``online-retail`` mapping; the first family (in this order) wins."""

ONLINE_RETAIL_NON_PRODUCT_SKUS: Final = frozenset(
    {
        "POST",  # postage
        "DOT",  # dotcom postage
        "C2",  # carriage
        "M",  # manual adjustment
        "D",  # discount
        "S",  # samples
        "B",  # adjust bad debt
        "BANK CHARGES",
        "AMAZONFEE",
        "CRUK",  # charity commission
        "PADS",  # cushion-pad filler at 0.001
    }
)
"""Stock codes of the Online Retail export that are fees or adjustments, not goods."""

BUILTIN_MAPPINGS: Final[Mapping[str, CsvMapping]] = {
    "online-retail": CsvMapping(
        name="online-retail",
        columns=ColumnMap(
            order_id="InvoiceNo",
            sku="StockCode",
            description="Description",
            quantity="Quantity",
            date="InvoiceDate",
            unit_price="UnitPrice",
            customer_id="CustomerID",
            country="Country",
        ),
        date_format="%Y-%m-%d %H:%M:%S",
        timezone="Europe/London",
        currency="GBP",
        refund_when=RefundRule(column="InvoiceNo", prefix="C"),
        sku_family=SkuFamilyRule(
            kind="keywords", source="description", keywords=ONLINE_RETAIL_FAMILY_KEYWORDS
        ),
        non_product_skus=ONLINE_RETAIL_NON_PRODUCT_SKUS,
    ),
}
"""Mappings shipped with Salvage, by name (``online-retail``: the UCI Online Retail export)."""
