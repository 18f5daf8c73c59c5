"""Attack: rotate a forged X-Forwarded-For on every guess so that per-address failure counting
(and back-off) never sees the same address twice. Behind one trusted proxy, the adapter takes
the address the proxy appended; what the attacker wrote is ignored, so every guess counts
against the attacker's real address."""

from __future__ import annotations

import pytest

pytest.importorskip("flask", reason="needs the `flask` extra")

from flask import Flask, jsonify, request  # noqa: E402

from riskengine import Engine, reasons  # noqa: E402
from riskengine.integrations.flask import attempt_from_request  # noqa: E402
from riskengine.testing import T0  # noqa: E402

ATTACKER = "203.0.113.66"


def test_rotating_forged_addresses_all_count_against_the_real_one(engine: Engine) -> None:
    app = Flask(__name__)

    @app.post("/login")
    def login() -> object:
        attempt = attempt_from_request(request, user_id=request.args["user"], trusted_proxies=1, timestamp=T0)
        if request.args.get("password") != "right":
            engine.record_failure(attempt.user_id, attempt.ip, T0)
            return jsonify(ip=attempt.ip), 401
        decision = engine.score(attempt)
        return jsonify(ip=attempt.ip, reasons=list(decision.reason_codes)), 200

    client = app.test_client(use_cookies=False)
    seen = set()
    for i in range(30):  # a different victim and a different forged address each time
        forged = f"198.51.100.{i}"
        # what the proxy forwards: the attacker's forged entry, then the address it really saw
        reply = client.post("/login", query_string={"user": f"victim{i}"}, environ_base={"REMOTE_ADDR": "10.0.0.2"},
                            headers={"X-Forwarded-For": f"{forged}, {ATTACKER}"})
        seen.add(reply.get_json()["ip"])
    assert seen == {ATTACKER}
    reply = client.post("/login", query_string={"user": "someone", "password": "right"},
                        environ_base={"REMOTE_ADDR": "10.0.0.2"}, headers={"X-Forwarded-For": f"1.2.3.4, {ATTACKER}"})
    assert reasons.FAILED_ATTEMPTS_IP in reply.get_json()["reasons"]
