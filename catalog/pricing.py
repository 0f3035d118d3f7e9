"""Prices for imported catalogue products.

The Kaggle ``styles.csv`` has no prices, so the import derives a plausible one: a typical price for the
article type (euros, ``BASE_PRICES``; ``DEFAULT_BASE_PRICE`` for types not listed) scaled by a factor between
0.70 and 1.50 drawn deterministically from the product id (CRC-32), rounded to a ".99" (or ".49") price point.
The same row always gets the same price, so a second import changes nothing.
"""
import zlib
from decimal import Decimal

DEFAULT_BASE_PRICE = 29
BASE_PRICES = {
    "Tshirts": 19, "Tops": 25, "Shirts": 35, "Kurtas": 32, "Kurtis": 28, "Tunics": 29, "Sweaters": 45,
    "Sweatshirts": 42, "Jackets": 79, "Blazers": 119, "Waistcoat": 49, "Shrug": 29, "Jeans": 59,
    "Trousers": 49, "Shorts": 25, "Skirts": 35, "Capris": 29, "Leggings": 19, "Track Pants": 35,
    "Tracksuits": 69, "Lounge Pants": 25, "Lounge Shorts": 19, "Churidar": 25, "Dresses": 59,
    "Rompers": 45, "Jumpsuit": 65, "Nightdress": 29, "Sarees": 89, "Kurta Sets": 69,
    "Casual Shoes": 65, "Sports Shoes": 85, "Formal Shoes": 95, "Heels": 69, "Flats": 39, "Sandals": 39,
    "Sports Sandals": 45, "Flip Flops": 15, "Handbags": 79, "Clutches": 45, "Backpacks": 49,
    "Laptop Bag": 59, "Duffel Bag": 55, "Messenger Bag": 49, "Rucksacks": 59, "Mobile Pouch": 15,
    "Waist Pouch": 19, "Wallets": 29, "Watches": 129, "Sunglasses": 79, "Belts": 25, "Caps": 19, "Hat": 25,
    "Ties": 25, "Socks": 9, "Scarves": 22, "Mufflers": 22, "Stoles": 25, "Cufflinks": 29, "Briefs": 12,
    "Trunk": 12, "Innerwear Vests": 12, "Bra": 22, "Perfume and Body Mist": 39, "Deodorant": 9,
}


def suggested_price(article_type: str, sku: str) -> Decimal:
    base = BASE_PRICES.get((article_type or "").strip(), DEFAULT_BASE_PRICE)
    spread = zlib.crc32(str(sku).encode("utf-8")) % 81  # 0..80
    amount = base * (70 + spread) / 100
    whole = max(int(amount), 4)
    cents = "0.49" if whole < 10 and spread % 2 else "0.99"
    return Decimal(whole) + Decimal(cents)
