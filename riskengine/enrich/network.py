"""Which networks are hosting providers or VPN exits (data centres, not homes or phones).

Credential stuffing and most account takeovers come from rented servers and VPN exits;
real users log in from ISPs and mobile carriers. Recognised by AS number (a built-in list
of large hosting/VPN operators, configurable) or by keywords in the AS organisation name
that an ASN database (GeoLite2-ASN, DB-IP) supplies.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Final

DEFAULT_HOSTING_ASNS: Final[tuple[int, ...]] = (
    14061,   # DigitalOcean
    16276,   # OVH
    24940,   # Hetzner
    16509,   # Amazon AWS
    14618,   # Amazon AWS (us-east)
    8075,    # Microsoft Azure
    15169,   # Google
    396982,  # Google Cloud
    20473,   # Vultr / Choopa
    63949,   # Akamai Connected Cloud (Linode)
    9009,    # M247 (VPN exits)
    60068,   # Datacamp / CDN77 (VPN exits)
    212238,  # Datacamp
    51167,   # Contabo
    197540,  # netcup
    12876,   # Scaleway
    45102,   # Alibaba Cloud
    37963,   # Alibaba (Hangzhou)
    136907,  # Huawei Cloud
    132203,  # Tencent Cloud
    31898,   # Oracle Cloud
    60781,   # Leaseweb
)
RELAY_ASNS: Final[frozenset[int]] = frozenset({
    13335,   # Cloudflare: WARP, and an iCloud Private Relay egress
    36183,   # Akamai: iCloud Private Relay egress
    54113,   # Fastly: iCloud Private Relay egress
})
"""Privacy relays that ordinary users ride (a phone with iCloud Private Relay on, a laptop with
WARP): never "attacker hosting", whatever the configured lists say. Their exits still change a
user's network (``NEW_ASN``)."""
DEFAULT_HOSTING_KEYWORDS: Final[tuple[str, ...]] = (
    "hosting", "cloud", "datacenter", "data center", "server", "vps", "vpn", "digitalocean", "ovh",
    "hetzner", "amazon", "aws", "vultr", "linode", "akamai connected", "m247", "datacamp", "cdn77",
    "leaseweb", "choopa", "contabo", "scaleway", "alibaba", "tencent", "oracle",
)


class HostingClassifier:
    """``is_hosting(asn, org)``, cached.

    >>> HostingClassifier().is_hosting(14061, None), HostingClassifier().is_hosting(2856, "BT")
    (True, False)
    >>> HostingClassifier().is_hosting(4_200_000_001, "Example VPS Ltd")
    True
    """

    def __init__(self, asns: Iterable[int] = DEFAULT_HOSTING_ASNS,
                 keywords: Iterable[str] = DEFAULT_HOSTING_KEYWORDS) -> None:
        self.asns = frozenset(asns)
        self.keywords = tuple(k.lower() for k in keywords)
        # whole words (an optional plural s): "Observer Media" is not a "server", "Cloudy Bay
        # Telecom" not a "cloud"
        self._pattern = re.compile(
            r"\b(?:" + "|".join(re.escape(k) for k in self.keywords) + r")s?\b") if self.keywords else None
        self.is_hosting = lru_cache(maxsize=65536)(self._is_hosting)

    def _is_hosting(self, asn: int | None, org: str | None) -> bool:
        """
        >>> c = HostingClassifier()
        >>> c.is_hosting(64_500, "Observer Media Ltd"), c.is_hosting(64_501, "Acme Servers Inc")
        (False, True)
        >>> c.is_hosting(13335, "Cloudflare, Inc.")  # WARP / Private Relay: a relay, not hosting
        False
        """
        if asn is not None and asn in RELAY_ASNS:
            return False
        if asn is not None and asn in self.asns:
            return True
        if org and self._pattern is not None:
            return self._pattern.search(org.lower()) is not None
        return False
