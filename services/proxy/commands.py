"""Running a system command (iptables, ip) from the event loop without blocking it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class CommandResult:
    returncode: int
    stdout: bytes
    stderr: bytes


async def run_command(argv: Sequence[str], stdin: bytes | None = None,
                      time_limit: float = 30.0) -> CommandResult:
    """Runs argv to completion (killing it after time_limit seconds); raises FileNotFoundError if
    the program does not exist."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), time_limit)
    except BaseException:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    assert proc.returncode is not None
    return CommandResult(proc.returncode, out, err)
