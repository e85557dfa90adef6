"""Schemathesis hooks of `npm run fuzz` (scripts/fuzz/run.ts loads them; docs/fuzzing.md says why).

One check, `positive_data_acceptance_or_stateful_refusal`, replaces Schemathesis' `positive_data_acceptance` (which the
runner excludes): the same check, except for a 422 whose every error is one of the refusals below. Each depends on what
is stored or on who asks, which no schema can say, so a request the schema admits may meet it. Any other refusal of a
schema-valid request (a 422 for something the schema could have said, a 400) still fails the run.
"""

import json
import re

import schemathesis
from schemathesis.specs.openapi.checks import positive_data_acceptance

BY_STATE_OR_CALLER = [
    # a cursor or Idempotency-Key the fuzzer made up or repeated
    r"^is not a cursor (this API returned|of this list)$",
    r"^was already used with a different request",
    # an admin key names the organization a publisher's or partner's key implies
    r"^is required (with an admin key|for a (partner|publisher) key)$",
    r"^is the key's own organization or absent$",
    # ids of organizations that do not exist, or with no grant between them
    r"^no such organization ",
    r"^(partner \S+ has )?no accepted grant of publisher ",
    r"^event type \S+ is not granted to this partner",
    r"^event type \S+ is offered in grant \S+ but not accepted yet",
    r"^field \S+ is not in the grant's projection",
    r"^a publisher subscribes only to its own deals",
    r"^a publisher's own subscription cannot use a kafka-topic sink$",
    r"^organization \S+ is a (publisher|partner), not a (publisher|partner)$",
    r"^must be one of the subscription's event types",
    # the clock: a time that must still be ahead when the request arrives
    r"^must be a date-time in the future$",
    # one entitlement per event type: JSON Schema's uniqueItems compares whole items, not one field of them
    r"^event type \S+ appears twice$",
    # a pinned schema version per subscribed event type: no schema says "these keys among that array's values"
    r"^pins a version for \S+, which the subscription does not subscribe to$",
    # code and storage: a JSONata mapping that does not compile, JSON that MongoDB cannot store
    r"^is not a valid JSONata expression",
    r"\(not storable",
    r"lone UTF-16 surrogate",
    r"^is nested more than \d+ levels deep$",
]
# A change (PATCH) is checked against what is stored: the settings of the source's kind, the contract of the
# organization's kind (a partner's profile), the subscription's event types (collapseBacklog). A create names them in
# its body, where the schema could say it: those stay failures (docs/fuzzing.md, "Open").
ON_CHANGE = [
    r"^is not a setting of (csv-drop|mongodb) ",
    r"^is required \(",
    r"^is not a field of the schema$",
    r"^only for state topics: ",
]


def _any(patterns):
    return re.compile("|".join(f"(?:{p})" for p in patterns))


_ALWAYS = _any(BY_STATE_OR_CALLER)
_ON_CHANGE = _any(BY_STATE_OR_CALLER + ON_CHANGE)


def _refused_by_state_or_caller(response, case) -> bool:
    if response.status_code != 422:
        return False
    try:
        errors = json.loads(response.text).get("errors") or []
    except (ValueError, AttributeError):
        return False
    pattern = _ON_CHANGE if case.method.upper() == "PATCH" else _ALWAYS
    return len(errors) > 0 and all(pattern.search(str(e.get("message", ""))) for e in errors)


@schemathesis.check
def positive_data_acceptance_or_stateful_refusal(ctx, response, case):
    if _refused_by_state_or_caller(response, case):
        return None
    return positive_data_acceptance(ctx, response, case)
