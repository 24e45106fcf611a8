"""Hostile input: schemathesis generates requests from the OpenAPI schema, valid and not, for
every route, sent with each role's token (and none) to the real server. No answer may be a 5xx,
and every error body has the one JSON shape. `make fuzz` runs it with many more examples."""
from __future__ import annotations

import os

import schemathesis
from hypothesis import HealthCheck, given, settings

EXAMPLES = int(os.environ.get("HELPDESK_FUZZ_EXAMPLES", "5"))


def test_no_route_answers_5xx_and_errors_share_one_shape(server, people):
    schema = schemathesis.openapi.from_url(f"{server}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 12
    tried = 0
    for operation in operations:
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
                  database=None)
        @given(case=operation.as_strategy())
        def check(case) -> None:
            nonlocal tried
            for role in (None, "agent", "reviewer", "admin"):
                response = case.call(headers=people[role].headers if role else {}, timeout=120)
                where = (case.method, case.formatted_path, role, response.status_code, response.text[:300])
                assert response.status_code < 500, where
                if response.status_code >= 400:
                    body = response.json()
                    assert set(body) == {"error"} and isinstance(body["error"], str), where
                if role is None and case.path != "/api/health":
                    assert response.status_code == 401, where
                tried += 1

        check()
    assert tried >= len(operations) * 4
