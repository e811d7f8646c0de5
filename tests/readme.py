"""The README's examples, as the tests that run them read them: one parser for all of them."""

import re

from tests.paths import REPO_ROOT


def code_blocks(language: str) -> list[str]:
    """The bodies of the README's fenced blocks in `language`, in order."""
    text = (REPO_ROOT / "README.md").read_text()
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)


def commands(program: str) -> list[str]:
    """Lines of the bash blocks that run `program`, backslash-continued lines joined."""
    lines = [
        line for block in code_blocks("bash") for line in block.replace("\\\n", " ").splitlines()
    ]
    return [line for line in lines if line.startswith(f"{program} ")]
