from __future__ import annotations

import datetime as dt

import pytest
from policy_helpers import settings_with

from clipfactory.errors import PolicyError
from clipfactory.policy.lineage import describe_datasets
from clipfactory.sources.registry import load_registry

DOMAIN_DATASETS = [
    "hd-vila-100m", "panda-70m", "hd-vg-130m", "internvid-10m", "webvid-10m", "youtube-8m",
    "kinetics-400", "kinetics-600", "kinetics-700", "acav100m", "howto100m", "movienet", "ego4d",
    "ego-exo4d", "hoi4d", "openvid-1m", "koala-36m", "msr-vtt",
]  # fmt: skip


def test_every_domain_dataset_is_registered_with_a_homepage_and_content_source():
    reg = load_registry()
    for key in DOMAIN_DATASETS:
        d = reg.dataset(key)
        assert d is not None, key
        assert d.homepage and d.homepage.startswith("https://"), key
        assert reg.platform(d.content_source) is not None, key


def test_registry_facts():
    reg = load_registry()
    assert reg.chain("openvid-1m") == ["openvid-1m", "panda-70m", "hd-vila-100m"]
    assert reg.chain("koala-36m") == ["koala-36m", "hd-vila-100m"]
    web = reg.dataset("webvid-10m")
    assert web.withdrawn == dt.date(2024, 2, 23) and "cease-and-desist" in web.withdrawn_reason
    assert reg.dataset("ego4d").needs_review
    assert reg.dataset("hd-vg-130m").no_redistribution
    assert reg.dataset("msr-vtt").evaluation_splits == ("test",)
    assert reg.dataset("internvid-10m").annotation_license == "CC-BY-NC-SA-4.0"
    # Facts from secondary sources keep their marker.
    assert reg.dataset("kinetics-400").needs_check and "*(check)*" in reg.dataset("kinetics-400").notes
    assert not reg.dataset("hd-vila-100m").needs_check


def test_platform_hosts_come_from_the_data_file():
    reg = load_registry()
    for host in [
        "www.youtube.com",
        "youtu.be",
        "rr4---sn-abc.googlevideo.com",
        "i.ytimg.com",
        "M.YouTube.com",
    ]:
        assert reg.platform_for_host(host).key == "youtube", host
    assert reg.platform_for_host("notyoutube.com") is None
    assert reg.platform_for_host("example.org") is None
    assert reg.platform("Ego-Exo4D").key == "ego4d" and reg.platform("ego4d").kind == "consented-capture"


def test_user_registry_adds_and_overrides(tmp_path):
    s = settings_with(
        tmp_path,
        registry="""
[datasets.my-clips]
name = "My clips"
annotation_license = "CC-BY-4.0"
content_source = "web"
derived_from = ["kinetics-400"]

[datasets.kinetics-400]
annotation_license = "CC-BY-NC-4.0"

[platforms.vimeo]
hosts = ["vimeo.com", "vimeocdn.com"]
download = "permission_required"
""",
    )
    reg = load_registry(s)
    assert reg.chain("my-clips") == ["my-clips", "kinetics-400"]
    k = reg.dataset("kinetics-400")
    assert k.annotation_license == "CC-BY-NC-4.0"
    assert k.homepage  # other fields kept: merged field by field
    assert reg.platform_for_host("player.vimeo.com").key == "vimeo"
    rows = {r["key"]: r for r in describe_datasets(s)}
    assert rows["my-clips"]["effective_class"] == "non-commercial"
    assert rows["my-clips"]["lineage"] == ["my-clips", "kinetics-400"]


@pytest.mark.parametrize(
    "text, match",
    [
        ("[datasets.x]\nderived_from = ['nowhere']\n", "does not know"),
        ("[datasets.a]\nderived_from = ['b']\n[datasets.b]\nderived_from = ['a']\n", "cycle"),
        ("[datasets.x]\nlicence = 'MIT'\n", "invalid registry entry"),
        ("[datasets.x]\ncontent_source = 'myspace'\n", "not a known platform"),
        ("[dataset.x]\nname = 'y'\n", "unknown registry section"),
        ("[datasets.x\n", "invalid TOML"),
    ],
)
def test_bad_registry_files_are_policy_errors(tmp_path, text, match):
    s = settings_with(tmp_path, registry=text)
    with pytest.raises(PolicyError, match=match):
        load_registry(s)


def test_missing_registry_file(tmp_path):
    from clipfactory.config import Settings

    with pytest.raises(PolicyError, match="not found"):
        load_registry(Settings(registry_file=str(tmp_path / "nope.toml")))
