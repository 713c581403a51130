"""The battery's grade sheet and its runs, pinned: exercises, scenarios
(name, points, public, seeds, what each says must hold, in this order) and
the trace digest of every cluster each scenario makes on the reference
classes, for every fixed seed. Changing any of these changes students'
grades or their replays: do it on purpose, and update the data here."""

import hashlib
import json
import pathlib
from functools import partial

import pytest

import raftkit
from raftkit.grading.battery import EXERCISES, KVImpl, exercise, scenario
from raftkit.grading.runs import run_scenario
from raftkit.kv import Clerk, KVStore

EXPECTED_EXERCISES = [
    (1, 'Fix the seed: the election timer', '01-fix-the-seed',
     (('MyNode', 'ConsensusModule', ('run_election_timer', 'start_election')),)),
    (2, 'RequestVote: the handler and the vote counting', '02-request-vote',
     (('MyNode', 'ConsensusModule', ('request_vote', 'send_request_vote')),)),
    (3, 'AppendEntries: the follower side', '03-append-entries',
     (('MyNode', 'ConsensusModule', ('append_entries', 'conflict_hint')),)),
    (4, 'The leader: commit index and next_index backup', '04-the-leader',
     (('MyNode', 'ConsensusModule', ('send_append_entries', 'advance_commit_index', 'backup_index')),)),
    (5, 'Persistence: what to save, and restore on restart', '05-persistence',
     (('MyNode', 'ConsensusModule', ('persist', 'restore')),)),
    (6, 'Snapshots: compaction and InstallSnapshot', '06-snapshots',
     (('MyNode', 'ConsensusModule', ('snapshot', 'install_snapshot', 'send_install_snapshot', 'send_heartbeats')),)),
    (7, 'A KV service with exactly-once clerks', '07-kv-exactly-once',
     (('MyKVStore', 'KVStore', ('apply', 'dump', 'load')), ('MyClerk', 'Clerk', ('request',)),)),
]

# (exercise, name, points, public, seeds, sha256 of the scenario's doc, first 12 hex digits)
EXPECTED_SCENARIOS = [
    (1, 'initial election', 15, True, (1, 2, 3), 'f488432bae3b'),
    (1, 're-election', 20, True, (1, 2, 3), 'f5884128cb6a'),
    (1, 'split vote is retried', 10, True, (1, 2, 3), '01f6fe56b735'),
    (1, 'a leader stays leader', 20, False, (1, 2, 3), '6bcd0f05e8aa'),
    (1, 'many elections', 10, False, (1, 2, 3), '672f4b8b6544'),
    (1, 'becoming a candidate', 10, True, (1,), '9f12646620fc'),
    (1, 'one election timer per node', 10, False, (1, 2, 3), '2eeb4280c224'),
    (1, 'RPC counts', 5, False, (1, 2, 3), '8f12159dac48'),
    (2, 'term rules', 10, True, (1,), '62d14927a002'),
    (2, 'one vote per term', 15, True, (1,), '0612bdd08035'),
    (2, 'election timer reset on a granted vote', 10, True, (1,), 'f17a0969675c'),
    (2, 'vote counting', 15, True, (1,), '46a5c1ced342'),
    (2, 'up-to-date check (5.4.1)', 15, True, (1,), 'b2c6cd26cfbd'),
    (2, 'initial election', 5, True, (1, 2, 3), '7f4fd77f1371'),
    (2, 're-election', 5, False, (1, 2, 3), 'c7c221163dfc'),
    (2, 'split votes stay safe', 5, False, (1, 2, 3), '353ab3d85bc8'),
    (2, 'rejoin (election restriction)', 5, False, (1, 2, 3), 'b11509d8afa8'),
    (2, 'a majority of 4 and of 5', 10, True, (1,), '94cf368d6652'),
    (2, 'votes and terms are saved before answering', 5, True, (1,), '8229d0e383b8'),
    (3, 'term rules and the timer', 10, True, (1,), 'a5f88760c2c4'),
    (3, 'consistency check', 15, True, (1,), 'f5e34ab842c1'),
    (3, 'truncate only on conflict', 20, True, (1,), '28192584669a'),
    (3, 'commit index rule', 15, True, (1,), '793e98200148'),
    (3, 'basic agreement', 5, True, (1, 2, 3), '334fd2d0dcf9'),
    (3, 'agreement after reconnection', 5, False, (1, 2, 3), '927105624d3a'),
    (3, 'rejoin', 5, False, (1, 2, 3), '39be6fecc9a3'),
    (3, 'unreliable agreement', 10, False, (1, 2), '42f4bbef123a'),
    (3, 'conflict hint: the whole term', 5, True, (1,), 'f2991c6ff52f'),
    (3, 'term and entries are saved before answering', 5, True, (1,), '23875a3a30a7'),
    (3, 'commit index never goes back', 5, True, (1,), 'c0a53066b919'),
    (4, 'commit rule (Figure 8)', 15, True, (1,), '2cdccbbbf05d'),
    (4, 'next_index backup', 15, True, (1,), '8bd4d0061cac'),
    (4, 'handling AppendEntries replies', 15, True, (1,), '80c58dddf79b'),
    (4, 'figure 8 (scripted)', 15, True, (1, 2, 3), 'c2fabbeb62a0'),
    (4, 'no commit without a majority', 5, False, (1, 2, 3), 'afe028a200c7'),
    (4, 'backup over wrong logs', 5, False, (1, 2), '1c426229a5be'),
    (4, 'unreliable agreement', 10, False, (1, 2), '780cfc7a897a'),
    (4, 'commit rule: majorities and runs', 10, True, (1,), '61493693d2ed'),
    (4, 'next_index after replies', 10, True, (1,), '9f6faf12f3cf'),
    (5, 'state survives a restart', 20, True, (1, 2), '7b6848a0113e'),
    (5, 'a vote survives a restart', 20, True, (1,), 'dbc6d8be67d5'),
    (5, 'basic persistence', 15, False, (1, 2, 3), 'b70552bcd8c6'),
    (5, 'more persistence', 10, False, (1, 2), 'f21c32beb896'),
    (5, 'partitioned leader and crashes', 15, False, (1, 2, 3), '2bfab2ff90bd'),
    (5, 'figure 8 with crashes', 10, False, (1, 2), '6f8cba73dc9c'),
    (5, 'persistence goes through Storage', 10, True, (1,), 'daa2eba8f83d'),
    (6, 'snapshot trims the log', 15, True, (1,), '7af60fe559b6'),
    (6, 'install snapshot (follower)', 15, True, (1,), '148f2f1e8c57'),
    (6, 'snapshots basic', 10, True, (1, 2), '5d42f854e7b1'),
    (6, 'install snapshots (disconnect)', 10, False, (1, 2), '74ee4a544e1d'),
    (6, 'install snapshots (crash)', 10, False, (1, 2), 'b7b204a09b42'),
    (6, 'install snapshots (unreliable)', 10, False, (1, 2), 'ac679d7c9bf3'),
    (6, 'snapshot survives restarts', 10, False, (1, 2, 3), '5e668672015c'),
    (6, 'install snapshot: more follower rules', 10, True, (1,), '5e2dfad692c8'),
    (6, 'InstallSnapshot replies (leader)', 10, True, (1,), '81f772a0a083'),
    (7, 'dedup table', 15, True, (1,), '33e5d5a8389b'),
    (7, 'basic operations', 10, True, (1,), 'bf5e555b71b6'),
    (7, 'lost replies: retry with the same seq', 20, True, (1, 2), '9ca4a9db959f'),
    (7, 'duplicated requests', 15, False, (1, 2), '4962a98560d7'),
    (7, 'leader changes', 15, False, (1, 2), '087836135390'),
    (7, 'crashes and snapshots', 15, False, (1, 2), 'c809feec1b14'),
    (7, 'finding the leader among 4', 10, False, (1, 2), 'f79d784a87bd'),
]

DIGESTS = json.loads(pathlib.Path(__file__).with_name("data").joinpath("battery-digests.json").read_text())


def test_the_exercises_are_the_same():
    got = [(ex.number, ex.title, ex.notebook, tuple((c.name, c.base.__name__, c.methods) for c in ex.classes))
           for ex in EXERCISES.values()]
    assert got == EXPECTED_EXERCISES


def test_the_scenarios_are_the_same_in_the_same_order():
    got = [(sc.exercise, sc.name, sc.points, sc.public, sc.seeds, hashlib.sha256(sc.doc.encode()).hexdigest()[:12])
           for ex in EXERCISES.values() for sc in ex.scenarios]
    assert got == EXPECTED_SCENARIOS
    assert [ex.max_points for ex in EXERCISES.values()] == [100] * 7


def _reference(number):
    return raftkit.ConsensusModule if number < 7 else KVImpl(KVStore, Clerk)


@pytest.mark.parametrize("number", sorted({row[0] for row in EXPECTED_SCENARIOS}))
def test_every_run_on_the_reference_passes_with_the_same_digests(number):
    got, want = {}, {}
    for sc in EXERCISES[number].scenarios:
        for seed in sc.seeds:
            key = f"{number}/{sc.name}/{seed}"
            run = run_scenario(sc, _reference(number), seed, keep=True, stop=False)
            run["context"].stop()
            assert run["ok"], f"{key}: {run['error_type']}: {run['message']}"
            got[key] = [c.trace_digest()[:16] for c in run["context"].clusters]
            want[key] = DIGESTS[key]
    assert got == want


def test_the_digest_data_covers_every_run():
    assert set(DIGESTS) == {f"{sc.exercise}/{sc.name}/{seed}" for ex in EXERCISES.values()
                            for sc in ex.scenarios for seed in sc.seeds}


def test_a_failure_names_the_scenario_step_it_happened_in():
    """The report finds the failing step by the battery's files: that still
    works with the battery split into modules."""
    class NeverCandidate(raftkit.ConsensusModule):
        def start_election(self):
            pass

    run = run_scenario(EXERCISES[1].scenario("initial election"), NeverCandidate, 1)
    assert not run["ok"] and run["error_type"] == "CheckFailed"
    assert run["where"] == "scenario step: c.check_one_leader()"


def _says_something(ctx, impl, seed):
    """Something must hold."""


def test_a_row_takes_its_doc_from_its_function_or_from_doc():
    assert scenario(1, "a", 5, _says_something).doc == "Something must hold."
    assert scenario(1, "a", 5, partial(_says_something)).doc == "Something must hold."
    row = scenario(1, "a", 5, partial(_says_something), public=True, seeds=[4], doc="  Other\n   words. ")
    assert (row.doc, row.public, row.seeds, row.run.func) == ("Other words.", True, (4,), _says_something)


def test_clumsy_grade_sheets_are_refused_with_a_reason():
    with pytest.raises(ValueError, match="does not say what must hold"):
        scenario(1, "silent", 5, lambda ctx, impl, seed: None)
    with pytest.raises(TypeError, match="must be a function"):
        scenario(1, "not callable", 5, "mit_basic_agree", doc="x")
    with pytest.raises(TypeError, match="must be a function"):  # the shape before ScenarioContext
        scenario(1, "old shape", 5, lambda impl, seed: None, doc="x")
    row = scenario(99, "a", 5, _says_something)
    with pytest.raises(ValueError, match=r"names these scenarios twice: \['a'\]"):
        exercise(99, "t", "nb", scenarios=[row, row])
    with pytest.raises(ValueError, match="rows of another exercise"):
        exercise(99, "t", "nb", scenarios=[scenario(2, "b", 5, _says_something)])
    with pytest.raises(ValueError, match="exercise 1 is registered twice"):
        exercise(1, "t", "nb", scenarios=[scenario(1, "a", 5, _says_something)])
    assert 99 not in EXERCISES and EXERCISES[1].scenarios[0].name == "initial election"
