"""The AWS regions botocore knows (its partitions data, read offline) and the nearest to a typo."""

from __future__ import annotations

import difflib
import functools
import importlib.util
import json
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured


@functools.cache
def known_regions() -> frozenset[str]:
    """Every region of every partition in the installed botocore (aws, aws-cn, aws-us-gov...).

    botocore's ``partitions.json`` (7 KB, what its endpoint rules resolve
    from) rather than ``endpoints.json`` (1.2 MB): the same regions plus the
    newest. Read as a file found without importing botocore (0.3 ms):
    botocore's loader would import most of botocore, 0.1 to 0.6 s measured,
    into every process that loads the settings. Its ``aws-global``-style
    names are endpoints, not regions.
    """
    spec = importlib.util.find_spec("botocore")
    if spec is None or spec.origin is None:
        raise ImproperlyConfigured("botocore is not installed: pip install boto3.")
    data = json.loads((Path(spec.origin).parent / "data" / "partitions.json").read_text("utf-8"))
    return frozenset(
        name
        for partition in data["partitions"]
        for name in partition.get("regions", {})
        if not name.endswith("-global")
    )


def closest_region(name: str) -> str | None:
    """The known region most like ``name`` (``eu-westt-1`` -> ``eu-west-1``), if one is close."""
    found = difflib.get_close_matches(name, sorted(known_regions()), n=1, cutoff=0.75)
    return found[0] if found else None


def botocore_version() -> str:
    """The installed botocore's version, for a message that says whose list was used."""
    import botocore

    return str(botocore.__version__)
