"""Every text the console shows has an English and a Chinese version (a static check of the JS sources)."""

from __future__ import annotations

import re
from pathlib import Path

STATIC = Path(__file__).parents[2] / "src" / "tuneforge" / "web" / "static"


def _dict_keys(source: str, name: str) -> set[str]:
    body = source.split(f"const {name} = {{", 1)[1].split("\n};", 1)[0]
    return {a or b for a, b in re.findall(r'(?:^\s*|[,{]\s*)(?:"([\w.]+)"|([A-Za-z]\w*)):\s*"', body, re.M)}


def test_both_languages_define_every_key_the_pages_use():
    i18n = (STATIC / "js" / "i18n.js").read_text(encoding="utf-8")
    en, zh = _dict_keys(i18n, "en"), _dict_keys(i18n, "zh")
    assert len(en) > 150 and en == zh, (sorted(en - zh), sorted(zh - en))
    used: set[str] = set()
    prefixes: set[str] = set()
    for path in (STATIC / "js").rglob("*.js"):
        text = path.read_text(encoding="utf-8")
        used |= set(re.findall(r'\bt\("([\w.]+)"', text))
        prefixes |= set(re.findall(r'\bt\(`([\w.]+)\.\$\{', text))  # t(`status.${x}`): a family of keys
    assert used and not used - en, sorted(used - en)
    for prefix in prefixes:
        assert any(k.startswith(prefix + ".") for k in en), prefix
