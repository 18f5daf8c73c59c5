"""Enrichment costs that shaped the hot path: UA parsing and GeoIP lookups.

Prints per-call cost of: `user_agents.parse` on unseen strings (the legacy pure-Python
path), our `classify` (ua-parser 1.x fast resolver + user-agents' classification) on unseen
strings, an LRU hit; maxminddb full GeoLite2-City record decode vs our cache hit.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import maxminddb  # noqa: E402
import user_agents  # noqa: E402
from _util import table  # noqa: E402

from riskengine.core.enrich.geoip import GeoIP, builtin_city_db  # noqa: E402
from riskengine.core.enrich.useragent import UAParser, classify  # noqa: E402
from riskengine.testing import CHROME_WIN, FIREFOX_MAC, IPHONE  # noqa: E402


def per_call_us(fn: Callable[[str], object], inputs: list[str]) -> float:
    t = time.perf_counter()
    for x in inputs:
        fn(x)
    return (time.perf_counter() - t) / len(inputs) * 1e6


def unseen(n: int) -> list[str]:
    # distinct strings so no cache helps: vary the browser build number
    bases = [CHROME_WIN, FIREFOX_MAC, IPHONE]
    return [bases[i % 3].replace("537.36", f"537.{i}") + f" build/{i}" for i in range(n)]


def main() -> None:
    rows: list[dict[str, object]] = []
    classify(CHROME_WIN)  # load ua-parser's resolver once (lazy, ~0.2 s), as Engine() does
    user_agents.parse(CHROME_WIN)
    rows.append({"operation": "user_agents.parse, unseen UA",
                 "µs/call": per_call_us(user_agents.parse, unseen(300))})
    rows.append({"operation": "classify (ua-parser 1.x fast resolver), unseen UA",
                 "µs/call": per_call_us(classify, unseen(3000))})
    parser = UAParser(16384)
    warm = unseen(1000)
    parser.warm(warm)
    rows.append({"operation": "UAParser LRU hit", "µs/call": per_call_us(parser.parse, warm * 20)})

    path = builtin_city_db()
    if path:
        reader = maxminddb.open_database(path, maxminddb.MODE_AUTO)
        rng = random.Random(3)
        ips = [f"{rng.randrange(1, 223)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}"
               for _ in range(20000)]
        rows.append({"operation": "maxminddb full GeoLite2-City record", "µs/call": per_call_us(reader.get, ips)})
        geo = GeoIP(path, None)
        for ip in ips[:5000]:
            geo.lookup(ip)
        rows.append({"operation": "GeoIP.lookup cache hit (IPv4: per /24)",
                     "µs/call": per_call_us(geo.lookup, ips[:5000] * 10)})
    print(table(rows, "enrichment cost per call (single thread)"))


if __name__ == "__main__":
    main()
