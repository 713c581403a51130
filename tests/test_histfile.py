"""Histories in files (raftkit.histfile) and `raftkit lincheck FILE`."""

import io
from pathlib import Path

import pytest

from raftkit.cli import main
from raftkit.histfile import read_edn, read_history, read_jsonl, write_jsonl
from raftkit.lincheck import REGISTER_MODEL, check, random_history
from raftkit.seqmodel import Operation

DATA = Path(__file__).parent / "data"


# ---------------------------------------------------------------- JSON lines

def test_jsonl_round_trip_keeps_every_field():
    """Timed-out ops (ret None), unknown outputs and cas tuples come back equal."""
    h = random_history(60, 4, 3, seed=5, timeout_rate=0.2)
    h.append(Operation(9, "cas", "r", (1, 3), False, 1.5, None))
    buf = io.StringIO()
    write_jsonl(h, buf)
    assert read_jsonl(io.StringIO(buf.getvalue())) == h


def test_jsonl_file_checks(tmp_path):
    """The hand-written file (a blank line, a timed-out append) reads and is linearizable."""
    h = read_history(DATA / "kv-ok.jsonl")
    assert len(h) == 5 and h[3].timed_out and h[0].value == "1"
    assert check(h).status == "ok"
    write_jsonl(h, tmp_path / "copy.jsonl")
    assert read_history(tmp_path / "copy.jsonl") == h


@pytest.mark.parametrize("line, message", [
    ("{not json", "line 1: not JSON"),
    ("[1, 2]", "line 1: expected a JSON object"),
    ('{"client_id": 0, "kind": "get", "key": "x"}', "line 1: missing call, ret"),
    ('{"client_id": 0, "kind": "get", "key": "x", "call": 0, "ret": 1, "colour": "red"}',
     "unknown field"),
    ('{"client_id": 0, "kind": "get", "key": "x", "call": "soon", "ret": 1}', "must be numbers"),
    ('{"client_id": "me", "kind": "get", "key": "x", "call": 0, "ret": 1}', "client_id must be an integer"),
])
def test_jsonl_errors_name_the_line(line, message):
    """Bad input is a clear ValueError naming the line, never a half-read history."""
    with pytest.raises(ValueError, match=message):
        read_jsonl(io.StringIO(line))


# ---------------------------------------------------------------- Jepsen EDN

def test_edn_register_history():
    """:ok pairs with its :invoke, :fail is left out, :info is a timed-out op,
    the nemesis's :info notes are skipped, :time gives the times."""
    h = read_history(DATA / "register-ok.edn")
    assert [str(op) for op in h] == ["write(x,1)", "read(x)->1", "cas(x,1->3)->ok", "write(x,4)?",
                                     "read(x)->3", "read(x)->4"]
    assert (h[0].call, h[0].ret) == (0.0, 10.0) and h[3].timed_out and h[2].value == (1, 3)
    assert check(h, model=REGISTER_MODEL).status == "ok"


def test_edn_vector_without_times_is_illegal():
    """A history given as one vector of events, timed by position: cas 1->3 then a read of 1."""
    h = read_edn(DATA / "register-bad.edn")
    assert [op.call for op in h] == [0.0, 2.0, 4.0]
    r = check(h, model=REGISTER_MODEL)
    assert r.status == "illegal" and "read(x)->1" in str(r.failure["x"])


def test_edn_with_keys_and_an_invoke_never_completed():
    """Porcupine's KV logs carry :key; an invoke with no completion is indeterminate."""
    text = (DATA / "kv-bad.edn").read_text() + '{:process 7, :type :invoke, :f :append, :key "y", :value "z"}\n'
    h = read_edn(io.StringIO(text))
    assert {op.key for op in h} == {"x", "y"} and h[-1].timed_out and h[-1].kind == "append"
    assert check(h).per_key == {"x": "illegal", "y": "ok"}


@pytest.mark.parametrize("text, message", [
    ("{:process 0, :type :invoke", "not an EDN history"),
    ("[1 2 3]", "event 1: expected a map"),
    ("{:process 0, :f :read}", "no :type"),
    ("{:process 0, :type :invoke, :f :read}\n{:process 0, :type :invoke, :f :read}", "invokes again"),
    ("{:process 0, :type :ok, :f :read, :value 1}", "no :invoke before it"),
    ("{:process 0, :type :invoke, :f :read}\n{:process 0, :type :maybe, :f :read}", "unknown :type :maybe"),
    ("{:process :x, :type :invoke, :f :read}\n{:process :x, :type :ok, :f :read}", "integer :process"),
])
def test_edn_errors(text, message):
    """Malformed EDN histories are clear ValueErrors."""
    with pytest.raises(ValueError, match=message):
        read_edn(io.StringIO(text))


def test_unknown_format():
    with pytest.raises(ValueError, match="unknown history format 'csv'"):
        read_history(DATA / "kv-ok.jsonl", "csv")


# ---------------------------------------------------------------- command line

@pytest.mark.parametrize("name, code, verdict", [
    ("register-ok.edn", 0, "ok:"), ("register-bad.edn", 1, "illegal:"),
    ("kv-bad.edn", 1, "illegal:"), ("kv-ok.jsonl", 0, "ok:"),
])
def test_cli_verdicts(capsys, name, code, verdict):
    """`raftkit lincheck FILE`: the model is picked from the kinds; exit 0 ok, 1 illegal."""
    assert main(["lincheck", str(DATA / name), "--no-progress"]) == code
    out = capsys.readouterr().out
    assert verdict in out and ("RegisterModel" if "register" in name else "KVModel") in out


def test_cli_unknown_and_bad_input(capsys, tmp_path):
    """Exit 3 when undecided (no time to search), 2 with a message for bad input."""
    assert main(["lincheck", str(DATA / "register-ok.edn"), "--timeout", "1e-9", "--no-progress"]) == 3
    assert "never reached" in capsys.readouterr().out
    assert main(["lincheck", str(tmp_path / "missing.edn")]) == 2
    assert "No such file" in capsys.readouterr().err
    assert main(["lincheck", str(DATA / "register-ok.edn"), "--model", "kv"]) == 2
    assert "unknown operation kind 'write'" in capsys.readouterr().err
    mixed = tmp_path / "mixed.edn"
    mixed.write_text(
        "{:process 0, :type :invoke, :f :get, :value nil}\n{:process 0, :type :ok, :f :get, :value 1}\n"
        "{:process 0, :type :invoke, :f :cas, :value [1 2]}\n{:process 0, :type :ok, :f :cas, :value [1 2]}\n")
    assert main(["lincheck", str(mixed)]) == 2
    assert "fit neither" in capsys.readouterr().err


def test_cli_writes_the_html_timeline(capsys, tmp_path):
    """--html OUT: the checked history as a standalone page, with the register's labels."""
    out = tmp_path / "report.html"
    assert main(["lincheck", str(DATA / "register-bad.edn"), "--no-progress", "--html", str(out)]) == 1
    page = out.read_text()
    assert "NOT linearizable" in page and "cas(x,1-&gt;3)-&gt;ok" in page and "read(x)-&gt;1" in page
    assert f"timeline written to {out}" in capsys.readouterr().out


def test_cli_hostile_files(capsys, tmp_path):
    """Garbage, a NaN time, a directory, an empty file: exit 2 with a message, or an empty ok."""
    cases = {"garbage.jsonl": "\x00\x01 not json", "nan.jsonl":
             '{"client_id": 0, "kind": "get", "key": "x", "call": NaN, "ret": 1}',
             "garbage.edn": "{:process 0, :type"}
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
        assert main(["lincheck", str(tmp_path / name), "--no-progress"]) == 2, name
        assert "raftkit lincheck:" in capsys.readouterr().err
    assert main(["lincheck", str(tmp_path), "--format", "jsonl"]) == 2
    (tmp_path / "empty.jsonl").write_text("")
    assert main(["lincheck", str(tmp_path / "empty.jsonl"), "--no-progress"]) == 0
    assert "0 operations" in capsys.readouterr().out


def test_edn_independent_keys(capsys):
    """jepsen.independent [key value] pairs: split into keys; a cas 6->8 succeeding on
    key 2 (which holds 7) is illegal there, key 1 is fine."""
    h = read_history(DATA / "independent.edn", independent=True)
    assert [str(op) for op in h] == ["write(1,5)", "write(2,7)", "read(1)->5", "cas(2,6->8)->ok"]
    assert check(h, model=REGISTER_MODEL).per_key == {1: "ok", 2: "illegal"}
    assert main(["lincheck", str(DATA / "independent.edn"), "--independent", "--no-progress"]) == 1
    with pytest.raises(ValueError, match="event 1: independent history, but :value is not a"):
        read_history(DATA / "register-ok.edn", independent=True)
