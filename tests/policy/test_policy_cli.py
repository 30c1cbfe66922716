from __future__ import annotations

import json

import pytest
from policy_helpers import add, owned, yt
from typer.testing import CliRunner

from clipfactory.cli.app import app

runner = CliRunner()


@pytest.fixture
def catalog_path(cat):
    add(
        cat,
        [yt("aaaaaaaaaaa", content_license="CC-BY-4.0"), owned(1, content_license="CC0-1.0"), owned(2)],
        [
            ("kinetics-400", "youtube:aaaaaaaaaaa", "val"),
            ("owned", owned(1).source_id),
            ("owned", owned(2).source_id),
        ],
    )
    return str(cat.path)


def invoke(*args):
    result = runner.invoke(app, list(args))
    return result


def test_policy_check_json(catalog_path):
    r = invoke("policy", "check", "--purpose", "commercial", "--catalog", catalog_path, "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["purpose"] == "commercial"
    assert data["decisions"] == {"allow": 1, "deny": 2, "review": 0}
    assert data["reasons"]["policy.license_unknown"] == 1
    assert data["reasons"]["policy.platform_terms_no_permission:youtube"] == 1

    r = invoke(
        "policy",
        "check",
        "--purpose",
        "research",
        "--eval",
        "kinetics-400:val",
        "--catalog",
        catalog_path,
        "--json",
    )
    data = json.loads(r.stdout)
    assert data["evaluation_datasets"][0] == "kinetics-400:val"
    assert data["reasons"]["policy.evaluation_set:kinetics-400"] == 1


def test_policy_check_human_output(catalog_path):
    r = invoke("policy", "check", "--purpose", "research", "--catalog", catalog_path)
    assert r.exit_code == 0, r.output
    assert "research" in r.stdout and "allow" in r.stdout


def test_policy_check_unknown_purpose_is_one_red_line(catalog_path):
    r = invoke("policy", "check", "--purpose", "everything", "--catalog", catalog_path)
    assert r.exit_code == 1
    assert "unknown purpose profile" in r.output and "Traceback" not in r.output


def test_policy_profiles_and_datasets_json(tmp_path):
    policy = tmp_path / "policy.toml"
    policy.write_text('[profiles.internal]\nextends = "research"\ndeny_no_redistribution = false\n')
    r = invoke("policy", "profiles", "--policy", str(policy), "--json")
    assert r.exit_code == 0, r.output
    profiles = {p["name"]: p for p in json.loads(r.stdout)}
    assert set(profiles) == {"commercial", "research", "internal"}
    assert profiles["commercial"]["accept"] == ["commercial"]
    assert profiles["internal"]["deny_no_redistribution"] is False

    r = invoke("policy", "datasets", "--json")
    assert r.exit_code == 0, r.output
    rows = {d["key"]: d for d in json.loads(r.stdout)}
    assert rows["openvid-1m"]["lineage"] == ["openvid-1m", "panda-70m", "hd-vila-100m"]
    assert rows["openvid-1m"]["effective_class"] == "academic-only"
    assert rows["webvid-10m"]["withdrawn"] == "2024-02-23"
    r = invoke("policy", "datasets")
    assert r.exit_code == 0 and "hoi4d" in r.stdout


def test_explain_cli(catalog_path):
    r = invoke(
        "explain",
        "https://www.youtube.com/watch?v=aaaaaaaaaaa",
        "--purpose",
        "commercial",
        "--catalog",
        catalog_path,
        "--json",
    )
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["source_id"] == "youtube:aaaaaaaaaaa"
    assert data["decisions"]["commercial"]["reasons"] == ["policy.platform_terms_no_permission:youtube"]
    r = invoke("explain", "youtube:aaaaaaaaaaa", "--catalog", catalog_path)
    assert r.exit_code == 0, r.output
    assert "platform_terms_no_permission" in r.stdout
    r = invoke("explain", "youtube:zzzzzzzzzzz", "--catalog", catalog_path)
    assert r.exit_code == 1 and "no such source" in r.output
