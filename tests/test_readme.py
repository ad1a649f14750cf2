"""The README's Python snippets run as pasted, and its commands exist in the Makefile."""

import re

from conftest import REPO


def test_readme_python_blocks_run():
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "README has no Python example"
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})


def test_readme_make_targets_exist_and_ci_runs_the_test_command():
    text = (REPO / "README.md").read_text()
    makefile = (REPO / "Makefile").read_text()
    for target in set(re.findall(r"^make ([\w-]+)", text, flags=re.M)) | {"demo", "test"}:
        assert re.search(rf"^{target}:", makefile, flags=re.M), f"Makefile has no target {target!r}"
    ci = (REPO / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, flags=re.M), ".ci/run must call the README's test command"
