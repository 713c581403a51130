"""Sequential models for the checker (raftkit.seqmodel): the register with
compare-and-set, a user-defined model, and the model interface's hooks."""

import pytest

from raftkit.lincheck import check
from raftkit.seqmodel import KV_MODEL, REGISTER_MODEL, KeyedModel, Operation, RegisterModel, describe

R = REGISTER_MODEL


def read(out, call, ret, client=0, key="r"):
    return Operation(client, "read", key, None, out, call, ret)


def write(v, call, ret, client=0, key="r"):
    return Operation(client, "write", key, v, None, call, ret)


def cas(old, new, out, call, ret, client=0, key="r"):
    return Operation(client, "cas", key, (old, new), out, call, ret)


# ---------------------------------------------------------------- register with cas

def test_register_starts_nil_and_cas_swaps():
    """nil at first; write 1, cas 1->3 succeeds, a read then sees 3."""
    h = [read(None, 0, 1), write(1, 2, 3), cas(1, 3, True, 4, 5), read(3, 6, 7)]
    r = check(h, model=R)
    assert r.status == "ok" and r.linearization["r"] == h


def test_cas_that_swapped_from_the_wrong_value_is_illegal():
    """cas 1->3 reports success although the register holds 2."""
    h = [write(2, 0, 1), cas(1, 3, True, 2, 3)]
    r = check(h, model=R)
    assert r.status == "illegal"
    text = str(r.failure["r"])
    assert "cas(r,1->3)->ok" in text and "r = 2" in text and "append" not in text


def test_failed_cas_must_have_seen_another_value():
    """A cas that reports failure while the register held the expected value is illegal;
    one that found another value is fine and changes nothing."""
    assert check([write(1, 0, 1), cas(1, 3, False, 2, 3)], model=R).status == "illegal"
    assert check([write(2, 0, 1), cas(1, 3, False, 2, 3), read(2, 4, 5)], model=R).status == "ok"


def test_concurrent_cas_only_one_wins():
    """Two overlapping cas 0->1 and 0->2 cannot both succeed."""
    both = [write(0, 0, 1), cas(0, 1, True, 2, 5, client=1), cas(0, 2, True, 2, 5, client=2)]
    assert check(both, model=R).status == "illegal"
    one = both[:2] + [cas(0, 2, False, 2, 5, client=2), read(1, 6, 7)]
    assert check(one, model=R).status == "ok"


def test_timed_out_register_ops():
    """A timed-out read is dropped and placed last; a timed-out cas may or may not apply."""
    h = [write(1, 0, 1), read(None, 0.5, None, client=1), cas(1, 5, None, 2, None, client=2)]
    for seen in (1, 5):
        r = check(h + [read(seen, 3, 4)], model=R)
        assert r.status == "ok" and r.linearization["r"][-1] is h[1]
    assert check(h + [read(7, 3, 4)], model=R).status == "illegal"


def test_register_with_an_initial_value_and_keys():
    """RegisterModel(initial=0); each key is its own register."""
    m = RegisterModel(initial=0)
    h = [read(0, 0, 1, key="a"), write(5, 0, 1, key="b"), read(5, 2, 3, key="b"), read(0, 2, 3, key="a")]
    assert check(h, model=m).per_key == {"a": "ok", "b": "ok"}


def test_register_rejects_malformed_operations():
    """Wrong kinds (a KV append) and a cas without (expected, new) are input errors."""
    with pytest.raises(ValueError, match="expected one of read, write, cas"):
        check([Operation(0, "append", "r", "1", None, 0, 1)], model=R)
    with pytest.raises(ValueError, match=r"cas needs value=\(expected, new\)"):
        check([Operation(0, "cas", "r", 3, True, 0, 1)], model=R)
    with pytest.raises(ValueError, match="write needs a value"):
        check([write(None, 0, 1)], model=R)
    with pytest.raises(TypeError, match="expected an Operation"):
        check([("put", "x", "1")])


def test_labels():
    """Each model labels its own kinds; describe() picks the shipped model by kind."""
    assert describe(cas(1, 3, False, 0, 1)) == "cas(r,1->3)->fail"
    assert describe(cas(1, 3, None, 0, None)) == "cas(r,1->3)->?"
    assert describe(read(None, 0, 1)) == "read(r)->nil" and describe(read(None, 0, None)) == "read(r)->?"
    assert describe(write(4, 0, None)) == "write(r,4)?"
    assert describe(Operation(0, "incr", "c", 2, 7, 0, 1)) == "incr(c,2)->7"
    assert KV_MODEL.describe_state("") == "''" and R.describe_state(None) == "nil"


# ---------------------------------------------------------------- your own model

class Counter(KeyedModel):
    """A counter per key: incr(n) returns the new total; read returns it."""

    kinds = ("incr", "read")
    reads = ("read",)
    needs_value = ("incr",)

    def init(self):
        return 0

    def step(self, state, op):
        if op.kind == "read":
            return op.output in (None, state), state
        new = state + op.value
        return op.output in (None, new), new


def test_a_model_of_your_own():
    """A KeyedModel subclass defines its kinds, what may be dropped and its labels."""
    m = Counter()
    ok = [Operation(0, "incr", "c", 2, 2, 0, 3), Operation(1, "incr", "c", 5, 7, 1, 2),
          Operation(2, "read", "c", None, None, 1, None)]
    assert check(ok, model=m).status == "ok"          # 5 went first, then 2
    bad = ok[:2] + [Operation(2, "read", "c", None, 5, 4, 5)]
    r = check(bad, model=m)
    assert r.status == "illegal" and "read(c)->5" in str(r.failure["c"])
    with pytest.raises(ValueError, match="expected one of incr, read"):
        check([Operation(0, "get", "c", None, 0, 0, 1)], model=m)


class BareModel:
    """The interface as it was before kinds/validate/droppable: still accepted."""

    def partition(self, history):
        return {"all": list(history)}

    def init(self):
        return 0

    def step(self, state, op):
        return op.output in (None, state + 1), state + 1

    def describe(self, op):
        return f"tick->{op.output}"

    def describe_state(self, state):
        return str(state)


def test_a_model_without_the_optional_members():
    """A model with only partition/init/step/describe/describe_state still works;
    any kind is accepted and a timed-out "get" is still dropped."""
    h = [Operation(0, "tick", "k", None, 1, 0, 1), Operation(1, "tick", "k", None, 2, 2, 3),
         Operation(2, "get", "k", None, None, 0, None)]
    r = check(h, model=BareModel())
    assert r.status == "ok" and r.linearization["all"][-1] is h[2]
    assert check(h[1:2], model=BareModel()).status == "illegal"


class ListState(BareModel):
    """A clumsy model whose states are lists (unhashable)."""

    def init(self):
        return []

    def step(self, state, op):
        return True, state + [op.output]


def test_clumsy_arguments_are_clear_errors():
    """Unhashable model states, a negative timeout, a zero memo cap: clear errors."""
    h = [Operation(0, "tick", "k", None, 1, 0, 1)]
    with pytest.raises(TypeError, match="model states must be hashable, got list"):
        check(h, model=ListState())
    with pytest.raises(ValueError, match="timeout must be"):
        check(h, timeout=-1)
    with pytest.raises(ValueError, match="timeout must be"):
        check(h, timeout=float("nan"))
    with pytest.raises(ValueError, match="max_memo_bytes must be > 0"):
        check(h, max_memo_bytes=0)
