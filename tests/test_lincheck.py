"""Linearizability checker (raftkit.lincheck) and its history plot (raftkit.viz.history)."""

import dataclasses
import io
import random

import pytest

from raftkit.lincheck import KV_MODEL, CheckResult, Operation, check, describe, hard_history, random_history


def put(key, value, call, ret, client=0):
    return Operation(client, "put", key, value, None, call, ret)


def get(key, output, call, ret, client=0):
    return Operation(client, "get", key, None, output, call, ret)


def append(key, value, output, call, ret, client=0):
    return Operation(client, "append", key, value, output, call, ret)


def status(history, **kw) -> str:
    return check(history, **kw).status


# ---------------------------------------------------------------- linearizable

def test_empty_history_is_ok():
    """Nothing happened: trivially linearizable."""
    r = check([])
    assert r.status == "ok" and r.per_key == {} and r.ok


def test_sequential_history_is_ok_and_linearization_is_the_real_order():
    """Non-overlapping operations: the only linearization is the real-time order."""
    h = [put("x", "1", 0, 1), get("x", "1", 2, 3), append("x", "2", "12", 4, 5),
         get("x", "12", 6, 7), put("x", "3", 8, 9), get("x", "3", 10, 11)]
    r = check(reversed(h))  # input order does not matter, only times do
    assert r.status == "ok" and r.per_key == {"x": "ok"}
    assert r.linearization["x"] == h


def test_get_of_absent_key_sees_empty_string():
    """A key never written reads as ""."""
    assert status([get("x", "", 0, 1)]) == "ok"
    assert status([get("x", "0", 0, 1)]) == "illegal"


@pytest.mark.parametrize("seen", ["1", "2"])
def test_get_concurrent_with_put_may_see_old_or_new(seen):
    """A get overlapping a put may be ordered before or after it."""
    h = [put("x", "1", 0, 1), put("x", "2", 2, 5, client=1), get("x", seen, 3, 4, client=2)]
    r = check(h)
    assert r.status == "ok"
    order = r.linearization["x"]
    assert order.index(h[2]) < order.index(h[1]) if seen == "1" else order.index(h[1]) < order.index(h[2])


def test_two_concurrent_gets_can_disagree_while_write_in_flight():
    """The MIT 6.824 quiz example: while put(100) runs, one get sees 100 and a later
    overlapping get sees 0 -- fine, as both gets overlap the put and each other."""
    h = [put("x", "0", -2, -1), put("x", "100", 0, 100, client=0),
         get("x", "100", 25, 75, client=1), get("x", "0", 30, 60, client=2)]
    assert status(h) == "ok"


def test_concurrent_appends_in_either_order():
    """Two overlapping appends can go either way; outputs pin the order down."""
    h = [append("x", "a", "ba", 0, 3, client=0), append("x", "b", "b", 1, 2, client=1),
         get("x", "ba", 4, 5)]
    r = check(h)
    assert r.status == "ok" and r.linearization["x"] == [h[1], h[0], h[2]]


def test_touching_intervals_count_as_concurrent():
    """Tie rule: calls sort before returns at equal times, so an op that starts the
    instant another ends may be linearized before it."""
    h = [put("x", "1", 0, 1), get("x", "", 1, 2, client=1)]
    assert status(h) == "ok"


# ---------------------------------------------------------------- not linearizable

def test_stale_read_is_illegal():
    """put x=1 completes; a get that starts afterwards still returns ""."""
    h = [put("x", "1", 0, 1), get("x", "", 2, 3, client=1)]
    r = check(h)
    assert r.status == "illegal" and r.per_key == {"x": "illegal"}
    f = r.failure["x"]
    assert f.prefix == [h[0]] and f.state == "1" and f.unplaced == [h[1]]
    assert [op for op, _ in f.candidates] == [h[1]]
    assert "get(x)->''" in str(f) and "'1'" in str(f)


def test_lost_append_is_illegal():
    """Two appends complete, a later get sees only one of them."""
    h = [append("x", "a", "a", 0, 1, client=0), append("x", "b", "ab", 0.5, 2, client=1),
         get("x", "a", 3, 4, client=2)]
    assert status(h) == "illegal"
    h_unknown = [dataclasses.replace(o, output=None) for o in h[:2]] + [h[2]]
    assert status(h_unknown) == "illegal"  # even without knowing the append outputs


def test_append_output_must_be_the_new_value():
    """An append that reports a result inconsistent with the preceding state is illegal."""
    assert status([put("x", "1", 0, 1), append("x", "2", "2", 2, 3)]) == "illegal"
    assert status([put("x", "1", 0, 1), append("x", "2", "12", 2, 3)]) == "ok"


def test_value_never_written_is_illegal():
    """A get returns a value nobody wrote."""
    h = [put("x", "1", 0, 1), put("x", "2", 0, 1, client=1), get("x", "3", 0.5, 2, client=2)]
    r = check(h)
    assert r.status == "illegal"
    assert "3" in str(r.failure["x"])


def test_reads_going_backwards_are_illegal():
    """get->2, then a later get->1, after put 2 had finished: time ran backwards."""
    h = [put("x", "1", 0, 1), put("x", "2", 2, 4, client=1),
         get("x", "2", 3, 5, client=2), get("x", "1", 6, 7, client=2)]
    assert status(h) == "illegal"
    assert status(h[:3]) == "ok"


def test_failure_reports_longest_prefix_and_blockers():
    """The failure names a longest linearizable prefix and the op that cannot follow it."""
    h = [put("x", "1", 0, 1), get("x", "1", 2, 3), put("x", "2", 4, 5),
         get("x", "1", 6, 7), get("x", "2", 8, 9)]
    f = check(h).failure["x"]
    assert f.prefix == h[:3] and f.state == "2"
    assert set(f.unplaced) == {h[3], h[4]} and [op for op, _ in f.candidates] == [h[3]]


# ---------------------------------------------------------------- timed-out operations

@pytest.mark.parametrize("seen", ["1", "2"])
def test_timed_out_put_may_or_may_not_be_seen(seen):
    """A put whose reply was lost (ret=None) may have taken effect, or not (yet)."""
    h = [put("x", "1", 0, 1), put("x", "2", 2, None, client=1), get("x", seen, 3, 4, client=2)]
    assert status(h) == "ok"


def test_timed_out_put_can_take_effect_late_but_not_undo_itself():
    """Once a later read sees the timed-out value, reads cannot go back to the old one
    without a write of it."""
    h = [put("x", "1", 0, 1), put("x", "2", 2, None, client=1),
         get("x", "2", 3, 4, client=2), get("x", "1", 5, 6, client=2)]
    assert status(h) == "illegal"


def test_timed_out_op_cannot_conjure_unwritten_value():
    """Timed-out operations may or may not happen, but cannot create a value nobody wrote."""
    h = [put("x", "1", 0, 1), put("x", "2", 2, None, client=1),
         append("x", "5", None, 2, None, client=3), get("x", "3", 3, 4, client=2)]
    assert status(h) == "illegal"
    assert status(h[:3] + [get("x", "15", 3, 4, client=2)]) == "ok"
    assert status(h[:3] + [get("x", "25", 3, 4, client=2)]) == "ok"


def test_timed_out_get_accepts_anything_and_is_placed_last():
    """A timed-out get changes nothing and its output is unknown: always fine."""
    h = [put("x", "1", 0, 1), get("x", None, 0.5, None, client=1), get("x", "1", 2, 3)]
    r = check(h)
    assert r.status == "ok" and r.linearization["x"][-1] is h[1]
    assert "get(x)->?" in describe(h[1])


# ---------------------------------------------------------------- partitioning

def test_partitions_are_independent():
    """An illegal key does not hide the verdict (and linearization) of an ok key."""
    h = [put("x", "1", 0, 1), get("x", "", 2, 3), put("y", "1", 0, 1, client=1),
         get("y", "1", 2, 3, client=1)]
    r = check(h)
    assert r.status == "illegal"
    assert r.per_key == {"x": "illegal", "y": "ok"}
    assert r.linearization == {"y": [h[2], h[3]]} and list(r.failure) == ["x"]


def test_kv_partition_groups_by_key():
    """The KV model partitions a history by key, preserving order within each key."""
    h = random_history(50, 3, 4, seed=2)
    parts = KV_MODEL.partition(h)
    assert sorted(parts) == ["a", "b", "c", "d"]
    assert all(op.key == k for k, ops in parts.items() for op in ops)
    assert sum(map(len, parts.values())) == len(h)


def test_invalid_operations_are_rejected():
    """Unknown kinds, returns before calls and value-less writes are input errors."""
    with pytest.raises(ValueError):
        check([Operation(0, "cas", "x", "1", None, 0, 1)])
    with pytest.raises(ValueError):
        check([put("x", "1", 2, 1)])
    with pytest.raises(ValueError):
        check([put("x", None, 0, 1)])


# ---------------------------------------------------------------- time budget

def adversarial_history(n: int = 24) -> list[Operation]:
    """n concurrent timed-out appends of distinct values, then a read of something no
    order can produce: proving it illegal means trying (nearly) every order."""
    h = [append("x", chr(65 + i), None, 0, None, client=i) for i in range(n)]
    return h + [get("x", "impossible", 1, 2, client=n)]


@pytest.mark.timeout(30)  # the hang guard; without the budget this search runs for ages
def test_time_budget_gives_unknown_and_does_not_hang():
    """A tiny timeout on a hopeless search returns "unknown" instead of searching on."""
    h = adversarial_history() + [put("y", "1", 0, 1), get("y", "1", 2, 3)]
    r = check(h, timeout=0.01)
    assert r.status == "unknown" and r.per_key["x"] == "unknown"
    assert "x" not in r.linearization and "x" not in r.failure


def test_small_adversarial_history_is_decided():
    """The same shape with few appends is decided (illegal) within a generous budget."""
    assert status(adversarial_history(6), timeout=30) == "illegal"


def test_illegal_wins_over_unknown():
    """Overall status is illegal if any key is, even when another key is unknown."""
    h = [put("y", "1", 0, 1), get("y", "", 2, 3)] + adversarial_history()
    r = check(h, timeout=0.05)
    assert r.per_key == {"y": "illegal", "x": "unknown"} and r.status == "illegal"


# ---------------------------------------------------------------- fair turns, bounded memory

def hopeless(key: str, n: int = 24) -> list[Operation]:
    """adversarial_history on ``key``: undecidable within a short budget."""
    return [dataclasses.replace(op, key=key) for op in adversarial_history(n)]


@pytest.mark.timeout(30)
def test_a_hard_key_does_not_starve_an_illegal_one():
    """The hopeless key comes first, yet the illegal key behind it is found: keys take
    turns, and an illegal key ends the check (the hopeless one is stopped, not timed out)."""
    h = hopeless("a") + [put("b", "1", 0, 1, client=30), get("b", "", 2, 3, client=30)]
    r = check(h, timeout=20)
    assert r.status == "illegal" and r.per_key == {"a": "unknown", "b": "illegal"}
    assert r.undecided("stopped") == ["a"] and "another key" in r.reasons["a"]


@pytest.mark.timeout(30)
def test_every_key_gets_a_turn_before_the_budget_runs_out():
    """Two hopeless keys and a tiny budget: both were searched (timed out), none
    was left unreached; the easy key in between was decided."""
    h = hopeless("a") + [put("m", "1", 0, 1, client=40)] + hopeless("z")
    r = check(h, timeout=0.05)
    assert r.status == "unknown" and r.per_key["m"] == "ok"
    assert sorted(r.undecided("timed out")) == ["a", "z"] and r.undecided("never reached") == []
    assert "key 'a' unknown: timed out" in str(r)


def test_zero_budget_reaches_no_key():
    """timeout=0: no key is searched, each says it was never reached."""
    r = check([put("x", "1", 0, 1), put("y", "1", 0, 1)], timeout=0)
    assert r.status == "unknown" and sorted(r.undecided("never reached")) == ["x", "y"]


@pytest.mark.timeout(60)
def test_memo_cap_gives_unknown_with_the_reason():
    """A search whose memo outgrows max_memo_bytes is given up ("unknown", memo cap)
    while the other keys are still decided; no budget needed to end it."""
    h = hopeless("a", 16) + [put("b", "1", 0, 1, client=30), get("b", "1", 2, 3, client=30)]
    r = check(h, max_memo_bytes=200_000)
    assert r.status == "unknown" and r.per_key == {"a": "unknown", "b": "ok"}
    assert r.undecided("memo cap") == ["a"] and "max_memo_bytes" in r.reasons["a"]
    assert check(adversarial_history(4), max_memo_bytes=200_000).status == "illegal"


def test_progress_reports_each_key_once():
    """progress(key, status) is called once per key, with its verdict."""
    seen = []
    r = check(random_history(200, 5, 4, seed=3), progress=lambda k, s: seen.append((k, s)))
    assert sorted(seen) == sorted(r.per_key.items()) and len(seen) == 4


@pytest.mark.parametrize("seed", range(3))
def test_hard_history_has_exactly_its_bad_key(seed):
    """The benchmark's generator: 2,000 ops, 50 clients, 10 keys; one bad key is
    illegal (and only it), the all-linearizable variant is ok."""
    h = hard_history(seed=seed)
    assert len(h) == 2000 and len({op.client_id for op in h}) == 50 and len({op.key for op in h}) == 10
    r = check(h, timeout=60)
    assert r.status == "illegal" and list(r.failure) == ["a"]
    assert check(hard_history(bad_keys=0, seed=seed), timeout=60).status == "ok"


# ---------------------------------------------------------------- randomized

@pytest.mark.parametrize("seed", range(40))
def test_random_linearizable_histories_are_ok(seed):
    """Histories generated around a sequential KV's linearization points are ok."""
    rng = random.Random(seed)
    h = random_history(rng.randrange(10, 120), rng.randrange(1, 6), rng.randrange(1, 4), seed=seed,
                       timeout_rate=rng.choice([0.0, 0.1]))
    r = check(h, timeout=30)
    assert r.status == "ok", str(r)
    assert sum(map(len, r.linearization.values())) == len(h)


def replay_ok(order: list[Operation]) -> bool:
    """Does a proposed linearization respect the model and real-time order?"""
    state = KV_MODEL.init()
    for i, op in enumerate(order):
        ok, state = KV_MODEL.step(state, op)
        if not ok or any(later.end < op.call for later in order[i + 1:]):
            return False
    return True


@pytest.mark.parametrize("seed", range(10))
def test_linearization_found_is_valid(seed):
    """The order returned for each ok key replays correctly and respects real time."""
    r = check(random_history(80, 4, 2, seed=seed, timeout_rate=0.1))
    assert r.status == "ok" and all(replay_ok(order) for order in r.linearization.values())


@pytest.mark.parametrize("seed", range(40))
def test_mutated_get_is_illegal(seed):
    """Changing one completed get's output to a value never written makes it illegal."""
    h = random_history(60, 4, 2, seed=seed, kinds=("get", "put", "append"))
    gets = [i for i, op in enumerate(h) if op.kind == "get" and not op.timed_out]
    i = random.Random(seed).choice(gets)
    h[i] = dataclasses.replace(h[i], output="never-written")
    r = check(h, timeout=30)
    assert r.status == "illegal" and r.per_key[h[i].key] == "illegal"
    assert h[i] in [op for op, _ in r.failure[h[i].key].candidates]


def test_benchmark_sized_history_is_fast():
    """1000 ops, 5 clients, 10 keys: well within a second."""
    h = random_history(1000, 5, 10, seed=7)
    r = check(h, timeout=10)
    assert r.status == "ok" and r.elapsed < 1.0


# ---------------------------------------------------------------- drawing

def render(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=60)
    return buf.getvalue()


@pytest.mark.parametrize("lanes", ["client", "key"])
def test_draw_history_ok_and_illegal(lanes):
    """draw_history renders ok and illegal results (and no result) to PNG."""
    from matplotlib.figure import Figure

    from raftkit.viz.history import draw_history

    h = random_history(25, 3, 2, seed=1, timeout_rate=0.1)
    r = check(h)
    assert r.status == "ok"
    i = next(i for i, op in enumerate(h) if op.kind == "get" and not op.timed_out)
    bad = list(h)
    bad[i] = dataclasses.replace(bad[i], output="zzz")
    r_bad = check(bad)
    assert r_bad.status == "illegal"
    for history, result in [(h, None), (h, r), (bad, r_bad)]:
        fig = draw_history(history, result, lanes=lanes)
        assert isinstance(fig, Figure) and len(fig.axes) >= 1
        assert render(fig).startswith(b"\x89PNG")
    title = draw_history(bad, r_bad).axes[0].get_title()
    assert "NOT linearizable" in title and repr(bad[i].key) in title


def test_draw_history_edge_cases():
    """Empty history, an unknown result and a big unlabelled history still render."""
    from raftkit.viz.history import draw_history

    assert render(draw_history([]))
    unknown = CheckResult("unknown", per_key={"x": "unknown"})
    assert "unknown" in draw_history(adversarial_history(3), unknown).axes[0].get_title()
    assert render(draw_history(random_history(300, 5, 3, seed=0)))


def test_draw_failure_shows_the_stuck_key():
    """draw_failure: only the illegal key's operations, the state after the prefix
    and the blocked operation's reason under the plot; clear errors otherwise."""
    from raftkit.viz.history import draw_failure

    h = [put("x", "1", 0, 1), get("x", "", 2, 3, client=1), put("y", "1", 0, 1, client=2)]
    r = check(h)
    fig = draw_failure(h, r)
    texts = " ".join(t.get_text() for t in fig.axes[0].texts)
    assert "state is '1'" in texts and "get(x)->'' [client 1]" in texts
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["x · c0", "x · c1"]
    assert render(fig).startswith(b"\x89PNG")
    with pytest.raises(ValueError, match="key 'y' is not illegal"):
        draw_failure(h, r, "y")
    with pytest.raises(ValueError, match="no illegal key"):
        draw_failure(h[2:], check(h[2:]))


def test_history_html_is_standalone_and_escaped(tmp_path):
    """The HTML page: failing key first, its prefix, blocked op and reason; values
    are escaped (a hostile value cannot inject markup); no external resources."""
    from raftkit.viz.history_html import history_html, write_html

    h = [put("b", "<script>alert(1)</script>", 0, 1), get("b", "", 2, 3, client=1),
         put("a", "1", 0, 1, client=2)]
    r = check(h)
    page = history_html(h, r)
    assert page.index("key &#x27;b&#x27;: NOT linearizable") < page.index("key &#x27;a&#x27;: linearizable")
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "not possible when b = " in page and page.count("<svg") == 2
    assert "http" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    write_html(h, r, tmp_path / "out.html")
    assert (tmp_path / "out.html").read_text() .startswith("<!DOCTYPE html>")
    assert "not checked" in history_html(h)
