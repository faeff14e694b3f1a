"""tools/install.py (`make setup`): pip's package sources handed to uv."""

import importlib.util
from pathlib import Path

spec = importlib.util.spec_from_file_location("install", Path(__file__).parent.parent / "tools" / "install.py")
install = importlib.util.module_from_spec(spec)
spec.loader.exec_module(install)


def test_pip_sources_become_uv_flags_in_pips_order_of_precedence():
    config = "\n".join([
        "global.cert='/etc/ssl/certs/ca.crt'",
        "global.extra-index-url='file:///opt/a/simple file:///opt/b/simple'",
        "global.find-links='/opt/old'",
        "global.constraint='/etc/pip/constraints.txt'",
        "install.index-url='https://mirror.example/simple'",
        ":env:.find-links='/opt/wheels'",
        ":env:.default-timeout='180'",
        "download.find-links='/opt/not-for-install'",
        "not a config line",
    ])
    flags = install.uv_flags(config)
    pairs = sorted(zip(flags[::2], flags[1::2], strict=True))
    assert pairs == sorted([
        ("--extra-index-url", "file:///opt/a/simple"), ("--extra-index-url", "file:///opt/b/simple"),
        ("--find-links", "/opt/wheels"),  # the environment's, over the global file's
        ("--constraint", "/etc/pip/constraints.txt"), ("--index-url", "https://mirror.example/simple"),
    ])
    assert install.uv_flags("") == []
