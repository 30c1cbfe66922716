"""The s3 extra (and dev) install a current s3fs. Without a floor, pip's resolver met the narrow botocore
range of aiobotocore (which every current s3fs needs) beside the boto3 of moto and fell back to s3fs 0.4.2 of
2019, which fsspec warns is very old and slow."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from importlib.metadata import requires, version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version


def test_the_installed_s3fs_is_a_current_release_of_the_fsspec_family():
    pytest.importorskip("s3fs", reason="storage on S3 needs the 's3' extra: pip install 'clipfactory[s3]'")
    assert Version(version("s3fs")) >= Version("2024.2")
    assert version("s3fs") == version("fsspec")  # s3fs releases with fsspec, under one calendar version
    declared = [Requirement(r) for r in requires("clipfactory") or [] if Requirement(r).name == "s3fs"]
    assert declared, "the s3 extra names s3fs"
    for extra in ("s3", "dev"):
        assert any(r.marker is not None and r.marker.evaluate({"extra": extra}) for r in declared), extra
    # pyproject.toml itself (the installed metadata above is that of the last install)
    extras = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    declared += [Requirement(r) for extra in ("s3", "dev") for r in extras[extra] if Requirement(r).name == "s3fs"]
    for r in declared:
        # a floor that leaves out the 2019 release the resolver fell back to, and admits the one installed
        assert not r.specifier.contains("0.4.2") and r.specifier.contains(version("s3fs")), str(r)
    # fsspec warns when it loads an s3fs older than 0.5: a fresh process, every warning an error
    code = "import fsspec; fsspec.get_filesystem_class('s3')"
    done = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
