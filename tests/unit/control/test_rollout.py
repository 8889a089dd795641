"""rollout: KServe's rollout rules as a table (docs/platform.md, "Rollout rules")."""

from __future__ import annotations

import pytest

from ksrv.control.rollout import Rollout, Traffic, rollout

R1, R2, R3 = "iris-predictor-00001", "iris-predictor-00002", "iris-predictor-00003"

# (revisions known, latest, ready, status latestRolledout, status previousRolledout, canary)
#   -> (traffic, latestRolledout, previousRolledout)
CASES = {
    "first revision, starting: it gets the traffic, nothing is rolled out yet": (
        ([R1], R1, set(), None, None, None),
        ([Traffic(R1, 100)], None, None),
    ),
    "first revision ready: it is rolled out": (
        ([R1], R1, {R1}, None, None, None),
        ([Traffic(R1, 100)], R1, None),
    ),
    "steady state: the rolled-out revision is the latest": (
        ([R1], R1, {R1}, R1, None, None),
        ([Traffic(R1, 100)], R1, None),
    ),
    "new revision not ready yet: the old one keeps 100%, the new one is listed at 0%": (
        ([R1, R2], R2, {R1}, R1, None, None),
        ([Traffic(R2, 0), Traffic(R1, 100, "prev")], R1, None),
    ),
    "new revision ready: it is promoted and the old one becomes previous": (
        ([R1, R2], R2, {R1, R2}, R1, None, None),
        ([Traffic(R2, 100)], R2, R1),
    ),
    "new revision failing while the old one crashed too: the old one keeps 100%": (
        ([R1, R2], R2, set(), R1, None, None),
        ([Traffic(R2, 0), Traffic(R1, 100, "prev")], R1, None),
    ),
    "canary split: the latest gets its percent beside the previous": (
        ([R1, R2], R2, {R1, R2}, R1, None, 20),
        ([Traffic(R2, 20), Traffic(R1, 80, "prev")], R1, None),
    ),
    "canary split holds while the canary is not ready": (
        ([R1, R2], R2, {R1}, R1, None, 20),
        ([Traffic(R2, 20), Traffic(R1, 80, "prev")], R1, None),
    ),
    "canary promoted by setting 100": (
        ([R1, R2], R2, {R1, R2}, R1, None, 100),
        ([Traffic(R2, 100)], R2, R1),
    ),
    "rollback: canaryTrafficPercent 0 sends everything to the previous": (
        ([R1, R2], R2, {R1, R2}, R1, None, 0),
        ([Traffic(R2, 0), Traffic(R1, 100, "prev")], R1, None),
    ),
    "crash mid-rollout, status lost: the newest other ready revision counts as rolled out": (
        ([R1, R2, R3], R3, {R1, R2}, None, None, None),
        ([Traffic(R3, 0), Traffic(R2, 100, "prev")], R2, None),
    ),
    "crash mid-rollout, status scribbled over: the junk is ignored": (
        ([R1, R2], R2, {R1}, "junk", 42, None),
        ([Traffic(R2, 0), Traffic(R1, 100, "prev")], R1, None),
    ),
    "crash mid-rollout, status lost and the latest failing: the ready one serves": (
        ([R1, R2], R2, {R1}, None, None, 50),
        ([Traffic(R2, 50), Traffic(R1, 50, "prev")], R1, None),
    ),
    "deleted and re-created: the old revisions' names in status are not known any more": (
        ([R3], R3, set(), R1, R2, None),
        ([Traffic(R3, 100)], None, None),
    ),
    "previous pointer names a collected older revision: kept": (
        ([R3], R3, {R3}, R3, R2, None),
        ([Traffic(R3, 100)], R3, R2),
    ),
    "previous pointer names no older revision of this component: dropped": (
        ([R2], R2, {R2}, R2, "other-predictor-00001", None),
        ([Traffic(R2, 100)], R2, None),
    ),
    "deleted and re-created, the new revision ready": (
        ([R3], R3, {R3}, R1, None, None),
        ([Traffic(R3, 100)], R3, None),
    ),
    "invalid spec: whatever was rolled out keeps serving": (
        ([R1], None, {R1}, R1, None, None),
        ([Traffic(R1, 100)], R1, None),
    ),
    "invalid spec before anything rolled out: no traffic": (
        ([], None, set(), None, None, None),
        ([], None, None),
    ),
}


# With `serving.kserve.io/enable-tag-routing: "true"` the latest revision is tagged `latest`
# whatever its share (KServe's ksvc reconciler); `prev` is the same with or without it.
TAGGED = {
    "tag routing: the only revision is tagged latest": (
        ([R1], R1, {R1}, R1, None, None),
        ([Traffic(R1, 100, "latest")], R1, None),
    ),
    "tag routing: a canary split has a latest and a prev tag": (
        ([R1, R2], R2, {R1, R2}, R1, None, 20),
        ([Traffic(R2, 20, "latest"), Traffic(R1, 80, "prev")], R1, None),
    ),
    "tag routing: rolled back to 0, the canary stays reachable by its tag": (
        ([R1, R2], R2, {R1, R2}, R1, None, 0),
        ([Traffic(R2, 0, "latest"), Traffic(R1, 100, "prev")], R1, None),
    ),
    "tag routing: promoted by dropping the field, the previous is remembered": (
        ([R1, R2], R2, {R1, R2}, R1, None, None),
        ([Traffic(R2, 100, "latest")], R2, R1),
    ),
    "tag routing: a new revision starting is reachable by its tag before it takes traffic": (
        ([R1, R2], R2, {R1}, R1, None, None),
        ([Traffic(R2, 0, "latest"), Traffic(R1, 100, "prev")], R1, None),
    ),
    "tag routing: crash mid-canary with the status lost: the split comes back": (
        ([R1, R2], R2, {R1, R2}, None, None, 20),
        ([Traffic(R2, 20, "latest"), Traffic(R1, 80, "prev")], R1, None),
    ),
    "tag routing: re-created under the same name, old pointers ignored, one revision": (
        ([R3], R3, {R3}, R1, R2, 20),
        ([Traffic(R3, 100, "latest")], R3, None),
    ),
}


@pytest.mark.parametrize(("inputs", "expected"), TAGGED.values(), ids=TAGGED.keys())
def test_tag_routing_tags_the_latest_revision(inputs, expected):
    revisions, latest, ready, rolled_out, previous, canary = inputs
    traffic, want_rolled_out, want_previous = expected
    decided = rollout(revisions, latest, ready, rolled_out, previous, canary, True)
    assert decided == Rollout(tuple(traffic), want_rolled_out, want_previous)


def test_a_whole_canary_rollout_step_by_step():
    """Apply v2 at 20%, roll back to 0, promote: each pass feeds the last status back."""
    steps = [  # (revisions, latest, ready, canary) -> traffic, rolled out, previous
        (([R1], R1, {R1}, None), ((R1, 100),), R1, None),
        (([R1, R2], R2, {R1}, 20), ((R2, 20), (R1, 80)), R1, None),
        (([R1, R2], R2, {R1, R2}, 20), ((R2, 20), (R1, 80)), R1, None),
        (([R1, R2], R2, {R1, R2}, 0), ((R2, 0), (R1, 100)), R1, None),
        (([R1, R2], R2, {R1, R2}, None), ((R2, 100),), R2, R1),
        (([R2], R2, {R2}, None), ((R2, 100),), R2, R1),  # R1 collected, still previous
        (([R2, R3], R3, {R2}, None), ((R3, 0), (R2, 100)), R2, R1),
        (([R2, R3], R3, {R2, R3}, None), ((R3, 100),), R3, R2),
    ]
    rolled_out: str | None = None
    previous: str | None = None
    for (revisions, latest, ready, canary), traffic, want_rolled_out, want_previous in steps:
        decided = rollout(revisions, latest, ready, rolled_out, previous, canary)
        assert [(t.revision, t.percent) for t in decided.traffic] == list(traffic)
        assert (decided.rolled_out, decided.previous_rolled_out) == (
            want_rolled_out, want_previous
        )  # fmt: skip
        rolled_out, previous = decided.rolled_out, decided.previous_rolled_out


@pytest.mark.parametrize(("inputs", "expected"), CASES.values(), ids=CASES.keys())
def test_rollout_follows_kserves_rules(inputs, expected):
    revisions, latest, ready, rolled_out, previous, canary = inputs
    traffic, want_rolled_out, want_previous = expected
    assert rollout(revisions, latest, ready, rolled_out, previous, canary) == Rollout(
        tuple(traffic), want_rolled_out, want_previous
    )


def test_a_previous_pointer_is_kept_while_nothing_is_promoted():
    decided = rollout([R1, R2, R3], R3, {R2}, R2, R1, None)
    assert decided.traffic == (Traffic(R3, 0), Traffic(R2, 100, "prev"))
    assert (decided.rolled_out, decided.previous_rolled_out) == (R2, R1)
    assert decided.routed == {R2, R3}
