"""The curl walks of the docs are tests: each ```sh block of the docs in ``WALKS`` runs, in order
and as written, in one bash session per doc (so variables carry from block to block as in a
user's shell), against `marketplace run` on free ports; each block's
documented output must be what it printed. The convention is in docs/testing.md ("The doc walks").
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import subprocess
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.e2e.test_local_stack import RunningStack, marketplace_running

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("doc-walks")]

WALKS = ("onboarding.md", "orders.md", "import.md", "money.md", "audit.md", "tenants.md")
BLOCK_SECONDS = 90
PRINTS = "# prints: "
# `make run` is what the test does itself (marketplace run, on free ports): its line is left out.
STARTS_THE_STACK = re.compile(r"^\s*make run\b")
FENCE = re.compile(r"^```(\S*)\s*$")


@dataclass
class Block:
    line: int  # where the block starts in the doc, for the failure message
    script: str
    expected: list[str]  # lines the block must print, in this order


def blocks_of(text: str) -> list[Block]:
    """The doc's ```sh blocks, each with its expected output: its `# prints: ...` lines, then the
    lines of a ```text block that follows it directly (nothing but blank lines between)."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    last_end = -1
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        body = lines[i + 1 : end]
        if fence.group(1) == "sh":
            script = [line for line in body if not STARTS_THE_STACK.match(line)]
            expected = [line.split(PRINTS, 1)[1] for line in body if PRINTS in line]
            blocks.append(Block(i + 1, "\n".join(script) + "\n", expected))
            last_end = end
        elif fence.group(1) == "text" and blocks and all(not s.strip() for s in lines[last_end + 1 : i]):
            blocks[-1].expected += [line for line in body if line.strip()]
        i = end + 1
    return blocks


def matches(expected: str, line: str) -> bool:
    """``…`` in a documented line stands for any text; the rest must be the printed line exactly."""
    pattern = ".*?".join(re.escape(part) for part in expected.strip().split("…"))
    return re.fullmatch(pattern, line.strip()) is not None


def unmatched(expected: list[str], printed: list[str]) -> list[str]:
    """The documented lines not found, in order, among the printed ones."""
    position = 0
    for index, want in enumerate(expected):
        found = next((j for j in range(position, len(printed)) if matches(want, printed[j])), None)
        if found is None:
            return expected[index:]
        position = found + 1
    return []


class Shell:
    """One bash session, as a user's terminal: each block is sourced in it (stdin /dev/null, so no
    command reads the next block), and a marker line after it carries its exit status. Its output
    and errors are read as one stream, as a terminal shows them (each redraw of a progress bar, after
    a carriage return, reads as a line of its own)."""

    def __init__(self, cwd: Path, env: dict[str, str], scratch: Path) -> None:
        self.scratch = scratch
        self.process = subprocess.Popen(
            ["bash", "--noprofile", "--norc"], cwd=cwd, env=env, text=True, start_new_session=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.stdout: queue.Queue[str] = queue.Queue()
        threading.Thread(
            target=lambda: [self.stdout.put(x) for x in self.process.stdout], daemon=True
        ).start()

    def run(self, script: str, timeout: float) -> tuple[int, list[str]]:
        marker = f"__walk_{uuid.uuid4().hex}__"
        path = self.scratch / f"{marker}.sh"
        path.write_text(script)
        self.process.stdin.write(f"source {path} </dev/null\nprintf '\\n{marker} %s\\n' $?\n")
        self.process.stdin.flush()
        printed: list[str] = []
        while True:
            try:
                line = self.stdout.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no end after {timeout} s; printed so far: {printed}") from None
            if line.startswith(marker):
                status = int(line.split()[1])
                break
            printed.append(line.rstrip("\n"))
        return status, [p for p in printed if p.strip()]

    def close(self) -> None:
        # The session and what its blocks left running in the background (a webhook receiver).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[RunningStack]:
    with marketplace_running(tmp_path_factory.mktemp("walk-state")) as running:
        yield running


def test_blocks_of_reads_the_convention() -> None:
    doc = "\n".join([
        "```sh", "make run   # in another terminal", "X=1", "echo $X   # prints: 1", "```", "",
        "```text", "two", "```", "```sh", "echo no", "```", "", "```json", "{}", "```",
    ])  # fmt: skip
    first, second = blocks_of(doc)
    assert first.script == "X=1\necho $X   # prints: 1\n"
    assert first.expected == ["1", "two"]
    assert second.expected == []
    assert unmatched(["a…c", "d"], ["abbc", "x", "d"]) == []
    assert unmatched(["d", "a…c"], ["abbc", "d"]) == ["a…c"]


@pytest.mark.parametrize("doc", WALKS)
def test_doc_walk(doc: str, stack: RunningStack, tmp_path: Path) -> None:
    api_port = stack.url.rsplit(":", 1)[1]
    # The only substitutions: the ports (the docs use the defaults; the receiver's is one the stack was
    # started to allow, as `MARKETPLACE_WEBHOOK_PORTS=8765 make run` does) ...
    substitutions = {
        "127.0.0.1:3000": f"127.0.0.1:{api_port}",
        "HOOK_PORT=8765": f"HOOK_PORT={stack.webhook_ports.pop()}",
    }
    blocks = blocks_of((ROOT / "docs" / doc).read_text())
    assert blocks, f"{doc} has no ```sh block"
    # ... and the user's environment: the stack's state directory (`marketplace token` and
    # `import-products` read it, as they read .local/ by default) and a private TMPDIR.
    env = {**os.environ, "MARKETPLACE_STATE_DIR": str(stack.state_dir), "TMPDIR": str(tmp_path)}
    env.pop("AWS_ENDPOINT_URL", None)
    shell = Shell(ROOT, env, tmp_path)
    try:
        for block in blocks:
            script = block.script
            for default, actual in substitutions.items():
                script = script.replace(default, actual)
            if "/admin/corrections/drain" in script:
                # What a user's pause before typing the drain gives it: the flagged record's
                # correction parked (an instant on AWS; a poll of the local queue here).
                stack.corrections_parked()
            status, printed = shell.run(script, BLOCK_SECONDS)
            where = f"{doc} line {block.line}:\n{block.script}\nprinted: {printed}"
            assert status == 0, f"exit status {status} at {where}"
            missing = unmatched(block.expected, printed)
            assert not missing, f"documented output not printed: {missing} at {where}"
    finally:
        shell.close()
