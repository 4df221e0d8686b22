"""Cases files (YAML, JSONL) and inline lists: ids that can name a test and a cassette."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from paths import EXAMPLE

from pytest_tokenbudget.config.cases import load_cases
from pytest_tokenbudget.errors import ConfigError


def load(tmp_path: Path, spec, *, line: int = 7, item_lines=None):
    return load_cases(
        spec,
        base_dir=tmp_path,
        config_path=tmp_path / "token_budgets.yml",
        line=line,
        item_lines=item_lines,
    )


def failure(tmp_path: Path, spec, **kwargs) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, spec, **kwargs)
    return info.value


def test_yaml_file(tmp_path):
    path = tmp_path / "cases" / "chat.yml"
    path.parent.mkdir()
    path.write_text(
        "# questions\n- id: refund\n  input: When will I get my refund?\n"
        "- id: long-complaint.v2\n  messages:\n    - {role: user, content: hi}\n"
    )
    cases, source = load(tmp_path, "cases/chat.yml")
    assert cases == (
        {"id": "refund", "input": "When will I get my refund?"},
        {"id": "long-complaint.v2", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert source == path.resolve()


def test_yaml_extension_and_paths_relative_to_the_config(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.YAML").write_text("- id: a\n")
    cases, source = load(tmp_path, "sub/../sub/c.YAML")
    assert [c["id"] for c in cases] == ["a"] and source == (tmp_path / "sub" / "c.YAML").resolve()


def test_jsonl_file_with_blank_lines(tmp_path):
    rows = [
        {"id": "t01", "ticket": {"subject": "Refund"}},
        {"id": "t02", "request": {"model": "m"}},
    ]
    (tmp_path / "triage.jsonl").write_text(
        json.dumps(rows[0]) + "\n\n  \n" + json.dumps(rows[1]) + "\n"
    )
    cases, source = load(tmp_path, "triage.jsonl")
    assert cases == tuple(rows) and source == (tmp_path / "triage.jsonl").resolve()


def test_inline_list(tmp_path):
    cases, source = load(tmp_path, [{"id": "a", "x": 1}, {"id": "b"}])
    assert cases == ({"id": "a", "x": 1}, {"id": "b"}) and source is None


def test_no_cases_key(tmp_path):
    assert load(tmp_path, None) == ((), None)


def test_the_example_cases_load():
    root = EXAMPLE / "cases"
    for name in ("chat_reply.yml", "triage.jsonl"):
        cases, _ = load(root, name)
        assert cases and all(isinstance(c["id"], str) for c in cases)


# -- mistakes --------------------------------------------------------------------------------
def test_duplicate_ids_name_both_lines(tmp_path):
    (tmp_path / "c.yml").write_text("- id: a\n- id: b\n  x: 1\n- id: a\n")
    err = failure(tmp_path, "c.yml")
    assert (
        str(err)
        == f"{tmp_path / 'c.yml'}:4: id: duplicate case id 'a' (first on line 1, again on line 4)"
    )
    assert (err.line, err.key) == (4, "id")


def test_duplicate_ids_in_jsonl(tmp_path):
    (tmp_path / "c.jsonl").write_text('{"id": "a"}\n\n{"id": "a"}\n')
    assert "c.jsonl:3: id: duplicate case id 'a' (first on line 1, again on line 3)" in str(
        failure(tmp_path, "c.jsonl")
    )


def test_duplicate_ids_inline_use_the_item_lines(tmp_path):
    err = failure(tmp_path, [{"id": "a"}, {"id": "a"}], item_lines=[9, 11])
    assert str(err) == (
        f"{tmp_path / 'token_budgets.yml'}:11: id: duplicate case id 'a' (first on line 9, again on line 11)"
    )


def test_ids_differing_only_in_case_would_collide_as_files(tmp_path):
    (tmp_path / "c.yml").write_text("- id: Refund\n- id: refund\n")
    assert "case ids 'Refund' (line 1) and 'refund' differ only in case" in str(
        failure(tmp_path, "c.yml")
    )


@pytest.mark.parametrize(
    ("case_id", "expected"),
    [
        (
            "'has space'",
            "case id 'has space' names a test and a cassette file: use letters, digits",
        ),
        ("a/b", "case id 'a/b' names a test and a cassette file"),
        ("'../up'", "case id '../up' names a test and a cassette file"),
        (".hidden", "case id '.hidden' names a test and a cassette file"),
        ("'é'", "case id 'é' names a test"),
        ("a[1]", "case id 'a[1]' names a test"),
        ("''", "a case id must not be empty"),
        ("7", 'a case id is a string: write "7" in quotes, not 7'),
        ("1.5", 'a case id is a string: write "1.5" in quotes, not 1.5'),
        ("true", "a case id is a non-empty string, not true"),
        ("", "a case id is a non-empty string, not nothing"),
        ("[a]", "a case id is a string, not a list"),
        ("x" * 201, f"case id {'x' * 40!r}... is longer than 200 characters (it names a file)"),
    ],
)
def test_bad_ids_name_the_file_line_and_id(tmp_path, case_id, expected):
    (tmp_path / "c.yml").write_text(f"- id: fine\n- other: 1\n  id: {case_id}\n")
    err = failure(tmp_path, "c.yml")
    assert (err.path, err.line, err.key) == (str(tmp_path / "c.yml"), 3, "id")
    assert str(err).startswith(f"{tmp_path / 'c.yml'}:3: id: {expected}")


def test_good_ids(tmp_path):
    ids = ["a", "A-1", "q_00", "v1.2", "-dash", "_x", "9"]
    (tmp_path / "c.jsonl").write_text("".join(json.dumps({"id": i}) + "\n" for i in ids))
    cases, _ = load(tmp_path, "c.jsonl")
    assert [c["id"] for c in cases] == ids


def test_bad_id_in_jsonl_names_its_line(tmp_path):
    (tmp_path / "c.jsonl").write_text('{"id": "ok"}\n{"id": 3}\n{"id": "sp ace"}\n{"no": "id"}\n')
    err = failure(tmp_path, "c.jsonl")
    lines = str(err).splitlines()
    assert lines[0] == f"3 problems in {tmp_path / 'c.jsonl'}:"
    assert lines[1].endswith('c.jsonl:2: id: a case id is a string: write "3" in quotes, not 3')
    assert lines[2].endswith(
        "c.jsonl:3: id: case id 'sp ace' names a test and a cassette file: "
        "use letters, digits, '_', '-' and '.' only, not starting with '.'"
    )
    assert lines[3].endswith("c.jsonl:4: id: a case needs an `id`")


def test_invalid_json_line(tmp_path):
    (tmp_path / "c.jsonl").write_text('{"id": "a"}\n{"id": "b",}\n')
    err = failure(tmp_path, "c.jsonl")
    assert err.line == 2 and "invalid JSON" in str(err) and "c.jsonl:2:" in str(err)


def test_cases_must_be_mappings(tmp_path):
    (tmp_path / "c.jsonl").write_text('["a"]\n')
    assert "c.jsonl:1: a case is a mapping with an `id`, not a list" in str(
        failure(tmp_path, "c.jsonl")
    )
    (tmp_path / "c.yml").write_text("id: a\n")
    assert "c.yml:1: a cases file is a list of mappings" in str(failure(tmp_path, "c.yml"))


def test_empty_cases_are_an_error(tmp_path):
    (tmp_path / "c.yml").write_text("# nothing yet\n")
    assert "no cases: give at least one" in str(failure(tmp_path, "c.yml"))
    (tmp_path / "c.jsonl").write_text("\n")
    assert "no cases: give at least one" in str(failure(tmp_path, "c.jsonl"))
    err = failure(tmp_path, [])
    assert (err.path, err.line, err.key) == (str(tmp_path / "token_budgets.yml"), 7, "cases")


def test_malformed_yaml_cases(tmp_path):
    (tmp_path / "c.yml").write_text("- id: a\n- id: [b\n")
    err = failure(tmp_path, "c.yml")
    assert str(err).startswith(f"{tmp_path / 'c.yml'}:") and "malformed YAML at line" in str(err)


def test_duplicate_keys_inside_a_case(tmp_path):
    (tmp_path / "c.yml").write_text("- id: a\n  input: one\n  input: two\n")
    assert "c.yml:3: input: duplicate key (first on line 2" in str(failure(tmp_path, "c.yml"))


def test_missing_file_names_config_line_and_resolved_path(tmp_path):
    err = failure(tmp_path, "budget_cases/../budget_cases/chat.yml", line=12)
    resolved = (tmp_path / "budget_cases" / "chat.yml").resolve()
    assert (err.path, err.line, err.key) == (str(tmp_path / "token_budgets.yml"), 12, "cases")
    assert f"cases file not found: {resolved}" in str(err)
    assert str(err).startswith(f"{tmp_path / 'token_budgets.yml'}:12: cases: ")


def test_wrong_suffix(tmp_path):
    (tmp_path / "c.json").write_text("[]")
    assert "a cases file is .yml, .yaml" in str(failure(tmp_path, "c.json"))


def test_a_directory_is_not_a_cases_file(tmp_path):
    (tmp_path / "cases").mkdir()
    assert "not a file" in str(failure(tmp_path, "cases"))


def test_not_utf8(tmp_path):
    (tmp_path / "c.jsonl").write_bytes(b'{"id": "\xff"}\n')
    assert "not UTF-8 text" in str(failure(tmp_path, "c.jsonl"))


@pytest.mark.parametrize("spec", ["bad\x00name.yml", "x" * 5000 + ".yml"])
def test_unusable_paths_are_config_errors(tmp_path, spec):
    err = failure(tmp_path, spec, line=4)
    assert (err.line, err.key) == (4, "cases") and "not a usable cases file path" in str(err)
