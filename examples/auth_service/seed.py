"""Write a users file: salted scrypt hashes, never passwords.

    python seed.py users.json                 # alice / bob with the demo passwords below
    python seed.py users.json --load 500      # + user00000..user00499, password "pw-<name>"
    python seed.py users.json --load 500 --scrypt-n 1024   # cheaper hashes for a load test

Every record in one file gets the same scrypt parameters: the service checks unknown usernames
against a dummy record with those parameters, so a login for a user who does not exist costs
exactly what a wrong password costs (mixed costs would let timing tell the two apart). A load
test lowers the cost for the whole file (``--scrypt-n``) so that it measures the service and
the engine rather than the password hash.

The service also needs device-token keys for the engine; print a fresh one with

    python seed.py --print-trust-key           # → export RISKENGINE_TRUST_SECRET_KEYS=...
"""

from __future__ import annotations

import argparse
import json
import secrets
from pathlib import Path

from app import hash_password

DEMO_USERS = {"alice": "correct horse battery staple", "bob": "tr0ub4dor&3"}


def load_user(i: int) -> tuple[str, str]:
    name = f"user{i:05d}"
    return name, f"pw-{name}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, nargs="?")
    parser.add_argument("--load", type=int, default=0, help="number of load-test users")
    parser.add_argument("--scrypt-n", type=int, default=2**14, help="scrypt cost of every record in the file")
    parser.add_argument("--print-trust-key", action="store_true",
                        help="print a random value for RISKENGINE_TRUST_SECRET_KEYS and exit")
    args = parser.parse_args()
    if args.print_trust_key:
        print(secrets.token_urlsafe(48))
        return
    if args.out is None:
        parser.error("the users file to write is required")
    if args.scrypt_n < 2 or args.scrypt_n & (args.scrypt_n - 1):
        parser.error(f"--scrypt-n must be a power of two >= 2, got {args.scrypt_n}")
    users = {name: hash_password(pw, n=args.scrypt_n) for name, pw in DEMO_USERS.items()}
    for i in range(args.load):
        name, pw = load_user(i)
        users[name] = hash_password(pw, n=args.scrypt_n)
    args.out.write_text(json.dumps(users, indent=1))
    args.out.chmod(0o600)
    print(f"wrote {len(users)} users to {args.out}")


if __name__ == "__main__":
    main()
