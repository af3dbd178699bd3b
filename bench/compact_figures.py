"""Re-encode committed accounts' PNG figures as 256-colour palettes (:func:`accounts.compact_png`), as
``bench/run_summary.py --copy`` now writes them: a device call sends the whole working tree, 64 MiB at most with the
wheels and data it carries. Palette PNGs are left as they are, so a second run changes nothing.

    python bench/compact_figures.py                      # every bench/results/*/figures/*.png
"""
from __future__ import annotations

import argparse
from pathlib import Path

from accounts import RESULTS, compact_png


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("figures", nargs="*", type=Path, help="PNG files (default: every account's figures)")
    args = p.parse_args(argv)
    paths = args.figures or sorted(RESULTS.glob("*/figures/*.png"))
    before = sum(path.stat().st_size for path in paths)
    for path in paths:
        compact_png(path, path)
    after = sum(path.stat().st_size for path in paths)
    print(f"{len(paths)} figures: {before / 2**20:.1f} MiB before, {after / 2**20:.1f} MiB after")
    return after


if __name__ == "__main__":
    main()
