import json
import os

import pytest

from fairseq_ot.evaluation.files import write_atomically
from fairseq_ot.evaluation.generate_output import HypothesisCountError, read_hypotheses
from fairseq_ot.evaluation.scores import read_scores, write_scores

GENERATE_OUTPUT = """\
S-1\tein haus
T-1\ta house
H-1\t-0.2\ta ho@@ use
D-1\t-0.2\ta house
P-1\t-0.1 -0.3
H-1\t-0.9\tthe house
D-1\t-0.9\tthe house
S-0\tgut
H-0\t-0.1\tgood
D-0\t-0.1\tgood .
Generate test with beam=5: BLEU = 1.0
"""


def test_best_hypothesis_per_id_in_id_order(tmp_path):
    path = tmp_path / "gen.txt"
    path.write_text(GENERATE_OUTPUT)
    assert read_hypotheses(path, 2) == ["good .", "a house"]
    assert read_hypotheses(path, 2, kind="H") == ["good", "a ho@@ use"]


def test_a_dropped_sentence_fails_loudly(tmp_path):
    path = tmp_path / "gen.txt"
    path.write_text(GENERATE_OUTPUT)
    with pytest.raises(HypothesisCountError, match=r"2 hypotheses for 3 references .*missing ids \[2\]"):
        read_hypotheses(path, 3)
    with pytest.raises(HypothesisCountError, match=r"unexpected ids \[1\]"):
        read_hypotheses(path, 1)


def test_scores_round_trip_and_no_temporary_left(tmp_path):
    path = write_scores(tmp_path, "test", task="translation", recipe="multi30k",
                        criterion="ot_seq", metrics={"sacrebleu": 35.5}, hypotheses=1000,
                        command="x")
    assert read_scores(path)["metrics"] == {"sacrebleu": 35.5}
    assert [p.name for p in tmp_path.iterdir()] == ["scores_test.json"]
    mask = os.umask(0o022)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask  # not mkstemp's private 0600


def test_interrupted_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "a.json"
    path.write_text(json.dumps({"old": 1}))
    with pytest.raises(TypeError):
        write_atomically(path, None)  # fails after the temporary file was opened
    assert json.loads(path.read_text()) == {"old": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]
