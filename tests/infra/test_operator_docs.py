"""docs/operators.md stays in step with the scripts it tells operators to run."""

from __future__ import annotations

import re

from tests.infra.bicep_ast import REPO

DOC = (REPO / "docs" / "operators.md").read_text()
DEPLOY = (REPO / "scripts" / "deploy.sh").read_text()


def test_the_operator_guide_covers_its_topics() -> None:
    headings = set(re.findall(r"^#+ (.+)$", DOC, re.MULTILINE))
    for topic in ("Before the first deployment", "Deploy", "The managed-application package", "Rotate the secrets",
                  "Upgrade", "Roll back", "Logs and metrics", "Keeping the webhook secret out of the logs"):
        assert topic in headings, f"docs/operators.md lacks a section '{topic}'"


def test_deploy_options_in_the_guide_exist() -> None:
    for option in set(re.findall(r"deploy\.sh[^\n`]*?((?:--[a-z-]+ ?)+)", DOC)):
        for flag in option.split():
            assert f"{flag})" in DEPLOY or f"| {flag})" in DEPLOY, f"deploy.sh has no option {flag}"
    for flag in re.findall(r"`(--[a-z-]+)`", DOC):
        if flag in {"--build-remote"}:
            continue
        assert flag in DEPLOY, f"the guide mentions {flag}, which deploy.sh does not know"


def test_make_targets_in_the_guide_exist() -> None:
    makefile = (REPO / "Makefile").read_text()
    for target in set(re.findall(r"`make ([a-z-]+)", DOC)) | set(re.findall(r"^make ([a-z-]+)", DOC, re.MULTILINE)):
        assert re.search(rf"^{target}:", makefile, re.MULTILINE), f"no make target {target}"


def test_the_guide_names_the_notification_url_as_partner_center_needs_it() -> None:
    assert "https://<function host>/api/marketplace?sig=<webhook secret>" in DOC
    assert "/api/marketplace/resource" in DOC
