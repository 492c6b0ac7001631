"""The AWS regions botocore knows (its partitions data, read offline) and the nearest to a typo."""

from __future__ import annotations

import difflib
import functools
import json
from importlib import resources


@functools.cache
def known_regions() -> frozenset[str]:
    """Every region of every partition in the installed botocore (aws, aws-cn, aws-us-gov...).

    botocore's ``partitions.json`` (7 KB, what its endpoint rules resolve
    from) rather than ``endpoints.json`` (1.2 MB): the same regions plus the
    newest. Read as a file: botocore's loader takes 150 ms to set up, at the
    start of every process. Its ``aws-global``-style names are endpoints.
    """
    text = (resources.files("botocore") / "data" / "partitions.json").read_text("utf-8")
    data = json.loads(text)
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
