"""The reviewer's guide lists every expectation of every suite, with its severity and meaning."""

from __future__ import annotations

import json

from loyalty_toolkit.model import expectations_dir, project_root


def test_reviewing_guide_lists_every_expectation_of_every_suite():
    guide = (project_root() / "docs" / "reviewing.md").read_text(encoding="utf-8")
    missing = []
    for path in sorted(expectations_dir().glob("*.json")):
        suite = json.loads(path.read_text(encoding="utf-8"))
        for e in suite["expectations"]:
            desc = e.get("meta", {}).get("description", "").replace("|", "\\|")
            row = f"| `{suite['name']}` | {e.get('severity', 'critical')} | {desc} |"
            if row not in guide:
                missing.append(row)
    assert not missing, "docs/reviewing.md is out of date with expectations/:\n" + "\n".join(missing[:5])


def test_the_readme_lists_each_document_once():
    readme = (project_root() / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Documentation", 1)[1].split("\n## ", 1)[0]
    import re
    links = re.findall(r"^- \[([^\]]+)\]", section, re.M)
    assert links and len(links) == len(set(links)), sorted(link for link in links if links.count(link) > 1)
