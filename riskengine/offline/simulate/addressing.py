"""The IP plan: real GeoLite2-City networks, synthetic ASNs, and an ASN mmdb written for them.

Users' addresses come from networks of the GeoLite2-City database that ``maxminddb-geolite2``
installs (2018 data, CC BY-SA), so scoring a simulated login exercises the engine's real
``maxminddb`` City path. GeoLite2-City carries no network operators, and no redistributable
ASN database exists, so the plan *assigns* the sampled networks to autonomous systems and
writes ``asn.mmdb`` with ``mmdb-writer``: the engine then resolves ASNs through its real
``geo.asn_db`` path as well. The consumer ISPs and mobile carriers get numbers from the
private-use range (RFC 6996) and names that say they are synthetic; hosting providers and
VPN exits get well-known public ASNs and organisation names, so an analyst recognises them
— the networks mapped to them are nevertheless arbitrary GeoLite2 networks of the right
country, not those operators' real address space.

Sampling the pool walks the whole City tree once (tens of seconds), so the pool is cached
in a Parquet file keyed by seed; re-runs read it in milliseconds.
"""

from __future__ import annotations

import ipaddress
import random
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import polars as pl

from riskengine.core.enrich.geoip import builtin_city_db

POOL_FORMAT: Final = 1
NETWORKS_PER_COUNTRY: Final = 2500

# Home countries and their share of the simulated service's users.
HOME_COUNTRIES: Final[dict[str, float]] = {
    "US": 0.22, "GB": 0.09, "DE": 0.09, "FR": 0.07, "BR": 0.08, "IN": 0.07, "ES": 0.05,
    "IT": 0.05, "NL": 0.04, "MX": 0.04, "CA": 0.04, "PL": 0.03, "JP": 0.03, "AU": 0.03,
    "NG": 0.02, "ZA": 0.02, "TR": 0.02, "SE": 0.02,
}
TRAVEL_DESTINATIONS: Final = ("ES", "IT", "FR", "US", "GB", "PT", "GR", "TH", "TR", "MX", "DE", "JP")
ATTACK_COUNTRIES: Final = ("NG", "RU", "VN", "CN", "RO", "UA", "ID", "BR", "IN", "PK")
HOSTING_COUNTRIES: Final = ("US", "DE", "NL", "FR", "SG", "GB")
VPN_COUNTRIES: Final = ("NL", "SE", "CH", "US", "GB", "DE")

# Well-known hosting / VPN-exit operators: recognisable org names for analysts.
HOSTING_ASNS: Final[dict[int, str]] = {
    14061: "DigitalOcean, LLC",
    16276: "OVH SAS",
    24940: "Hetzner Online GmbH",
    16509: "Amazon.com, Inc.",
    20473: "The Constant Company, LLC (Vultr)",
    63949: "Akamai Connected Cloud (Linode)",
}
VPN_ASNS: Final[dict[int, str]] = {
    9009: "M247 Europe SRL",
    60068: "Datacamp Limited",
    212238: "Datacamp Limited (CDN77)",
}
FIXED_ISPS_PER_COUNTRY: Final = 3
MOBILE_CARRIERS_PER_COUNTRY: Final = 2
_PRIVATE_ASN_BASE: Final = 4_200_000_000


def all_countries() -> list[str]:
    return sorted(set(HOME_COUNTRIES) | set(TRAVEL_DESTINATIONS) | set(ATTACK_COUNTRIES)
                  | set(HOSTING_COUNTRIES) | set(VPN_COUNTRIES))


@dataclass(frozen=True, slots=True)
class AS:
    number: int
    org: str
    kind: str  # "isp" | "mobile" | "hosting" | "vpn"
    country: str


@dataclass(slots=True)
class Network:
    cidr: str
    first: int
    size: int
    country: str
    region: str
    city: str
    latitude: float
    longitude: float
    time_zone: str
    asn: int = 0


@dataclass(slots=True)
class AddressPlan:
    """Networks by country and by operator, and the ASNs that own them."""

    networks: list[Network]
    ases: dict[int, AS]
    by_asn: dict[int, list[int]] = field(default_factory=dict)
    by_country_kind: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    by_region_asn: dict[tuple[str, str, int], list[int]] = field(default_factory=dict)

    def index(self) -> None:
        by_asn: dict[int, list[int]] = defaultdict(list)
        by_ck: dict[tuple[str, str], list[int]] = defaultdict(list)
        by_ra: dict[tuple[str, str, int], list[int]] = defaultdict(list)
        for i, n in enumerate(self.networks):
            by_asn[n.asn].append(i)
            by_ck[(n.country, self.ases[n.asn].kind)].append(i)
            by_ra[(n.country, n.region, n.asn)].append(i)
        self.by_asn, self.by_country_kind, self.by_region_asn = dict(by_asn), dict(by_ck), dict(by_ra)

    def prefix(self, address: str) -> str:
        """The /24 an IPv4 address is in (the unit the engine's GeoIP cache and prefix
        familiarity work on)."""
        return str(ipaddress.ip_network(f"{address}/24", strict=False))

    def isps(self, country: str, kind: str) -> list[int]:
        return sorted({self.networks[i].asn for i in self.by_country_kind.get((country, kind), ())})

    def address(self, network_index: int, rng: np.random.Generator) -> str:
        """A host address inside the network (not its network or broadcast address)."""
        n = self.networks[network_index]
        offset = int(rng.integers(1, n.size - 1)) if n.size > 2 else 0
        return str(ipaddress.IPv4Address(n.first + offset))

    def write_asn_mmdb(self, path: Path) -> None:
        """GeoLite2-ASN layout: ``autonomous_system_number`` / ``autonomous_system_organization``."""
        from mmdb_writer import MMDBWriter
        from netaddr import IPSet

        writer = MMDBWriter(ip_version=4, database_type="GeoLite2-ASN", languages=["en"],
                            description="riskengine simulate: synthetic ASN plan over GeoLite2 networks",
                            int_type="uint32")
        for asn, members in sorted(self.by_asn.items()):
            cidrs = IPSet([self.networks[i].cidr for i in members])
            writer.insert_network(cidrs, {"autonomous_system_number": asn,
                                          "autonomous_system_organization": self.ases[asn].org})
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        writer.to_db_file(str(tmp))
        tmp.replace(path)


def _record_fields(rec: dict[str, Any]) -> tuple[str, str, str, float, float, str] | None:
    country = (rec.get("country") or {}).get("iso_code")
    subs = rec.get("subdivisions") or ()
    city = ((rec.get("city") or {}).get("names") or {}).get("en")
    loc = rec.get("location") or {}
    if not (country and subs and city and loc.get("latitude") is not None and loc.get("time_zone")):
        return None
    region = (subs[0].get("names") or {}).get("en") or subs[0].get("iso_code")
    if not region:
        return None
    return country, region, city, float(loc["latitude"]), float(loc["longitude"]), loc["time_zone"]


def sample_pool(seed: int, per_country: int = NETWORKS_PER_COUNTRY, city_db: str | None = None,
                progress: bool = True) -> pl.DataFrame:
    """Reservoir-sample ``per_country`` IPv4 networks (with region, city and location) per
    country of the plan, walking the GeoLite2-City tree once."""
    import maxminddb
    from tqdm import tqdm

    path = city_db or builtin_city_db()
    if path is None:
        raise FileNotFoundError("GeoLite2-City database not found: install maxminddb-geolite2")
    wanted = set(all_countries())
    chooser = random.Random(seed)
    seen: dict[str, int] = defaultdict(int)
    keep: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    with maxminddb.open_database(path) as reader, tqdm(
            desc="sampling GeoLite2 networks", unit=" nets", disable=not progress,
            mininterval=1.0) as bar:
        count = 0
        for network, rec in reader:
            count += 1
            if count % 50_000 == 0:
                bar.update(50_000)
            if network.version != 4:
                if seen:
                    break  # the IPv4 subtree is walked first; the rest is IPv6
                continue
            if not isinstance(rec, dict):
                continue
            iso = (rec.get("country") or {}).get("iso_code")
            if iso not in wanted or network.prefixlen > 30:
                continue
            fields = _record_fields(rec)
            if fields is None:
                continue
            seen[iso] += 1
            row = (str(network), int(network.network_address), network.num_addresses, *fields)
            if len(keep[iso]) < per_country:
                keep[iso].append(row)
            else:
                j = chooser.randrange(seen[iso])
                if j < per_country:
                    keep[iso][j] = row
    rows = [r for iso in sorted(keep) for r in keep[iso]]
    return pl.DataFrame(rows, orient="row", schema={
        "cidr": pl.Utf8, "first": pl.Int64, "size": pl.Int64, "country": pl.Utf8, "region": pl.Utf8,
        "city": pl.Utf8, "latitude": pl.Float64, "longitude": pl.Float64, "time_zone": pl.Utf8})


def load_or_sample_pool(cache_dir: Path, seed: int, *, progress: bool = True,
                        pool_path: Path | None = None) -> pl.DataFrame:
    """The cached pool for ``seed`` (sampled and cached on first use).

    Looked up in ``cache_dir`` (the output directory), then in the per-user cache
    (``$RISKENGINE_CACHE`` or ``~/.cache/riskengine``), so a new output directory does not
    walk the City tree again; a fresh sample is written to both.
    """
    name = f".ippool-seed{seed}-v{POOL_FORMAT}.parquet"
    path = pool_path or cache_dir / name
    if path.exists():
        return pl.read_parquet(path)
    shared = user_cache_dir() / name
    if pool_path is None and shared.exists():
        pool = pl.read_parquet(shared)
    else:
        pool = sample_pool(seed, progress=progress)
        _write_atomically(pool, shared)
    _write_atomically(pool, path)
    return pool


def user_cache_dir() -> Path:
    import os

    return Path(os.environ.get("RISKENGINE_CACHE") or Path.home() / ".cache" / "riskengine")


def _write_atomically(frame: pl.DataFrame, path: Path) -> None:
    import os

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        frame.write_parquet(tmp)
        tmp.replace(path)
    except OSError:
        pass  # a cache that cannot be written only costs time


def build_plan(pool: pl.DataFrame, seed: int, fixed_isps: int = FIXED_ISPS_PER_COUNTRY,
               mobile_carriers: int = MOBILE_CARRIERS_PER_COUNTRY) -> AddressPlan:
    """Assign the pooled networks to operators.

    Within each (country, region) networks go round-robin to the country's fixed ISPs and
    mobile carriers, so every operator has addresses where its customers live. Hosting
    countries give a tenth of their networks to hosting providers, VPN-exit countries a
    twentieth to VPN operators.
    """
    rng = np.random.default_rng([seed, 7])
    ases: dict[int, AS] = {}
    networks: list[Network] = []
    countries = sorted(set(pool["country"].to_list()))
    next_private = _PRIVATE_ASN_BASE
    hosting = list(HOSTING_ASNS)
    vpn = list(VPN_ASNS)
    for code in countries:
        rows = pool.filter(pl.col("country") == code).sort("first")
        nets = [Network(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8]) for r in rows.iter_rows()]
        order = rng.permutation(len(nets))
        nets = [nets[i] for i in order]
        consumer: list[int] = []
        for k in range(fixed_isps):
            ases[next_private] = AS(next_private, f"{code} Broadband {k + 1} (synthetic)", "isp", code)
            consumer.append(next_private)
            next_private += 1
        for k in range(mobile_carriers):
            ases[next_private] = AS(next_private, f"{code} Mobile {k + 1} (synthetic)", "mobile", code)
            consumer.append(next_private)
            next_private += 1
        start = 0
        if code in HOSTING_COUNTRIES:
            take = max(len(hosting), len(nets) // 10)
            for j, n in enumerate(nets[:take]):
                n.asn = hosting[j % len(hosting)]
            start = take
        if code in VPN_COUNTRIES:
            take = max(len(vpn), len(nets) // 20)
            for j, n in enumerate(nets[start:start + take]):
                n.asn = vpn[j % len(vpn)]
            start += take
        per_region: dict[str, int] = defaultdict(int)
        for n in nets[start:]:
            k = per_region[n.region]
            per_region[n.region] += 1
            n.asn = consumer[k % len(consumer)]
        networks.extend(nets)
    for asn, org in HOSTING_ASNS.items():
        ases[asn] = AS(asn, org, "hosting", "")
    for asn, org in VPN_ASNS.items():
        ases[asn] = AS(asn, org, "vpn", "")
    plan = AddressPlan(networks, ases)
    plan.index()
    return plan
