"""template.yaml's per-function alarm block against devtools/function_alarms.py, its one source."""

from __future__ import annotations

from functools import cache

import pytest

from devtools import function_alarms
from tests.tooling.test_template import TEMPLATE, functions, template

STALE = "the function alarms in template.yaml are stale: run `make template-alarms`"


@cache
def text() -> str:
    return TEMPLATE.read_text()


def test_the_block_is_what_the_generator_makes():
    assert function_alarms.regenerate(text()) == text(), STALE


def test_every_function_has_both_alarms_on_its_own_metrics():
    declared = functions()
    assert list(function_alarms.functions(text())) == list(declared), "the generator reads the template's functions"
    resources = template()["Resources"]
    for name in declared:
        for kind in function_alarms.KINDS:
            alarm = resources.get(function_alarms.alarm_name(name, kind))
            assert alarm is not None, (name, kind.metric)
            properties = alarm["Properties"]
            assert (properties["Namespace"], properties["MetricName"]) == ("AWS/Lambda", kind.metric)
            assert properties["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": name}}]


def test_errors_describe_a_failed_run_for_a_job_and_a_failed_answer_for_an_http_function():
    resources = template()["Resources"]
    for name, http in function_alarms.functions(text()).items():
        description = resources[f"{name}ErrorsAlarm"]["Properties"]["AlarmDescription"]
        assert ("instead of answering" in description) == http, name
        assert name in description


@cache
def stale_copies() -> dict[str, str]:
    """The template's text, changed inside and outside the block in ways the generator must notice."""
    original = text()
    start, end = function_alarms.block_span(original)
    block = original[start:end]
    first_function = next(iter(functions()))
    return {
        "a threshold edited by hand": original[:start]
        + block.replace("Threshold: 0", "Threshold: 5", 1)
        + original[end:],
        "an alarm renamed by hand": original[:start]
        + block.replace(f"  {first_function}ThrottlesAlarm:", "  UnrelatedAlarm:", 1)
        + original[end:],
        "a function added": original.replace(
            f"  {first_function}:\n    Type: AWS::Serverless::Function\n",
            f"  Extra:\n    Type: AWS::Serverless::Function\n    Properties:\n      Events:\n"
            f"        Api: {{Type: HttpApi}}\n\n  {first_function}:\n    Type: AWS::Serverless::Function\n",
            1,
        ),
    }


@pytest.mark.parametrize("change", sorted(stale_copies()))
def test_a_stale_block_is_detected_and_rewritten_in_place(change, tmp_path, capsys):
    stale = stale_copies()[change]
    assert stale != text(), change
    copy = tmp_path / "template.yaml"
    copy.write_text(stale)

    assert function_alarms.main(["--file", str(copy)]) == 1
    err = capsys.readouterr().err
    assert "stale" in err
    assert "\n+" in err, "a diff of what the generator would write"
    assert copy.read_text() == stale, "checking never writes"

    assert function_alarms.main(["--write", "--file", str(copy)]) == 0
    assert function_alarms.main(["--file", str(copy)]) == 0
    written = copy.read_text()
    start, end = function_alarms.block_span(stale)
    fresh_start, fresh_end = function_alarms.block_span(written)
    assert (written[:fresh_start], written[fresh_end:]) == (stale[:start], stale[end:]), "only the block changes"


def test_a_job_without_a_described_failure_is_refused():
    jobs = function_alarms.functions(text()) | {"NewJob": False}
    with pytest.raises(function_alarms.BlockError, match="NewJob"):
        function_alarms.alarms(jobs)


def test_missing_markers_are_refused(tmp_path, capsys):
    copy = tmp_path / "template.yaml"
    copy.write_text(text().replace(function_alarms.END, "# the end", 1))
    assert function_alarms.main(["--write", "--file", str(copy)]) == 2
    assert "END function alarms" in capsys.readouterr().err
