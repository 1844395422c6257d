"""Write the example catalogue ``dags_examples/bloom_catalogue.csv``: products x channels, one row each.

    python scripts/make_catalogue.py                 # 1,000 products x 3 channels = 3,000 rows
    python scripts/make_catalogue.py --products 50 --out /tmp/small.csv

The rows are made from fixed word lists with a seeded random generator, so the file is the same on every
machine; the columns are those of ``bloom_catalogue_nightly``: ``sku``, ``product``, ``channel``,
``prompt``, ``aspect_ratio``, ``image_size``.
"""

from __future__ import annotations

import argparse
import csv
import random
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "dags_examples" / "bloom_catalogue.csv"
COLOURS = ["sage", "terracotta", "navy", "ivory", "charcoal", "mustard", "blush", "forest", "sand", "cobalt"]
MATERIALS = ["linen", "merino", "leather", "ceramic", "oak", "recycled cotton", "glass", "brass", "canvas"]
PRODUCTS = ["tote bag", "throw blanket", "table lamp", "mug", "sneaker", "backpack", "vase", "scarf", "stool"]
SCENES = {
    "feed": ("4:5", "{product} styled on a sunlit shelf, soft shadows, lifestyle photo"),
    "story": ("3:4", "hands holding the {product} in a cozy home, candid moment"),
    "product": ("1:1", "{product} on a plain studio background, even light, catalogue shot"),
}


def rows(products: int, seed: int = 7) -> list[dict[str, str]]:
    rng = random.Random(seed)
    out = []
    for number in range(1, products + 1):
        name = f"{rng.choice(COLOURS)} {rng.choice(MATERIALS)} {rng.choice(PRODUCTS)}"
        for channel, (ratio, scene) in SCENES.items():
            out.append(
                {
                    "sku": f"SKU-{number:05d}",
                    "product": name,
                    "channel": channel,
                    "prompt": scene.format(product=name),
                    "aspect_ratio": ratio,
                    "image_size": "4K" if channel == "product" and number % 10 == 0 else "2K",
                }
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    made = rows(args.products)
    with args.out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(made[0]))
        writer.writeheader()
        writer.writerows(made)
    print(f"wrote {len(made):,} rows to {args.out}")


if __name__ == "__main__":
    main()
