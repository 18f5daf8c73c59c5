"""Write a users file: salted scrypt hashes, never passwords.

    python seed.py users.json                 # alice / bob with the demo passwords below
    python seed.py users.json --load 500      # + user00000..user00499, password "pw-<name>"

The load-test users get a cheaper scrypt cost (``--load-scrypt-n``) so that a load test
measures the service and the engine rather than the password hash; real users keep 2**14.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from app import hash_password

DEMO_USERS = {"alice": "correct horse battery staple", "bob": "tr0ub4dor&3"}


def load_user(i: int) -> tuple[str, str]:
    name = f"user{i:05d}"
    return name, f"pw-{name}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--load", type=int, default=0, help="number of load-test users")
    parser.add_argument("--load-scrypt-n", type=int, default=2**10)
    args = parser.parse_args()
    users = {name: hash_password(pw) for name, pw in DEMO_USERS.items()}
    for i in range(args.load):
        name, pw = load_user(i)
        users[name] = hash_password(pw, n=args.load_scrypt_n)
    args.out.write_text(json.dumps(users, indent=1))
    print(f"wrote {len(users)} users to {args.out}")


if __name__ == "__main__":
    main()
