"""The container shim of the process runtime: one per container instance.

    python -m services.kubelet.shim CONTAINER_DIR     (or: python3 -I shim.py DIR)

The kubelet starts the shim in a session of its own, so the container outlives
the kubelet; a restarted kubelet finds everything it needs in CONTAINER_DIR.
The shim:

1. reads `config.json` (argv, env, working dir, log path, memory limit);
2. starts the command in a process group of its own, stdout and stderr appended
   to the log file;
3. writes `state.json` (its own pid, the command's pid and both pids' start
   times from /proc, which guard against pid reuse, and startedAt);
4. forwards SIGTERM, SIGINT, SIGHUP and SIGQUIT to the command's process group
   (the kubelet itself signals that group directly, SIGKILL included);
5. when the command exits, SIGKILLs whatever is left in its group (a container
   ends with its main process, as it does under Docker) and rewrites
   `state.json` with exitCode (128+N for signal N, as Docker reports it),
   reason (Completed, Error, OOMKilled) and finishedAt, and the termination
   message (the file terminationMessagePath maps to, or with
   FallbackToLogsOnError the log's tail after a failure).

If the command cannot be started at all (no such executable, bad working dir)
the shim records exitCode 128 with reason StartError, as containerd does.

A memory limit (bytes) makes the shim poll the group's resident memory and
SIGKILL the group when it exceeds the limit (reason OOMKilled). This is a
watchdog, not a cgroup: the process runtime does not isolate containers.

Only the standard library is imported, so the shim starts in milliseconds.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

OOM_POLL_SECONDS = 0.2
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def proc_start_time(pid: int) -> int:
    """The start time of pid (clock ticks after boot, /proc/PID/stat field 22); 0 if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return 0
    # The command name (field 2) may hold spaces and parentheses: split after its end.
    fields = data[data.rfind(b")") + 2:].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return 0


def write_state(directory: str, state: dict) -> None:
    path = os.path.join(directory, "state.json")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def group_rss(pgid: int) -> int:
    """Resident bytes of every process in the group."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        fields = data[data.rfind(b")") + 2:].split()
        try:
            if int(fields[2]) == pgid:  # field 5: pgrp
                total += int(fields[21]) * PAGE_SIZE  # field 24: rss pages
        except (IndexError, ValueError):
            continue
    return total


def termination_message(config: dict, exit_code: int) -> str:
    """What the container left in its termination message file (at most 4096 bytes), or
    with FallbackToLogsOnError and a failure, the last 80 lines (2048 bytes) of its log:
    the kubelet's limits (services/kubelet/runtime.py holds them for the other runtimes)."""
    path = config.get("terminationMessagePath") or ""
    message = b""
    if path:
        try:
            with open(path, "rb") as f:
                message = f.read(4096)
        except OSError:
            message = b""
    if not message.strip() and exit_code != 0 and \
            config.get("terminationMessagePolicy") == "FallbackToLogsOnError":
        try:
            with open(config["logPath"], "rb") as f:
                f.seek(max(0, os.fstat(f.fileno()).st_size - 64 * 1024))
                log = f.read()
        except OSError:
            log = b""
        tail = b"\n".join(log.rstrip(b"\n").split(b"\n")[-80:])
        message = tail[-2048:]
    return message.decode(errors="replace")


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: shim CONTAINER_DIR", file=sys.stderr)
        return 2
    directory = argv[0]
    with open(os.path.join(directory, "config.json")) as f:
        config = json.load(f)
    command = list(config["command"]) + list(config.get("args") or [])
    env = {k: v for k, v in config.get("env") or []}
    cwd = config.get("workingDir") or None
    log_path = config["logPath"]
    memory_limit = int(config.get("memoryLimit") or 0)
    state: dict = {"shimPid": os.getpid(), "shimStartTime": proc_start_time(os.getpid())}

    child: subprocess.Popen | None = None

    def forward(signum: int, frame: object) -> None:
        if child is not None:
            try:
                os.killpg(child.pid, signum)
            except OSError:
                pass

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, forward)

    log = open(log_path, "ab", buffering=0)  # noqa: SIM115 - the child holds it
    started = time.time()
    try:
        child = subprocess.Popen(command, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                 stdout=log, stderr=subprocess.STDOUT, process_group=0,
                                 close_fds=True)
    except OSError as err:
        what = command[0] if command else ""
        if isinstance(err, FileNotFoundError) and cwd and not os.path.isdir(cwd):
            message = f'chdir to cwd ("{cwd}") set in config.json failed: no such file or directory'
        elif isinstance(err, FileNotFoundError):
            message = f'exec: "{what}": executable file not found in $PATH'
        else:
            message = f'exec: "{what}": {err.strerror or err}'
        log.write(f"kubelite shim: {message}\n".encode())
        now = time.time()
        state.update(pid=0, pidStartTime=0, startedAt=now, finishedAt=now, exitCode=128,
                     reason="StartError", message=message)
        write_state(directory, state)
        return 0
    finally:
        log.close()
    state.update(pid=child.pid, pidStartTime=proc_start_time(child.pid), startedAt=started)
    write_state(directory, state)

    oom_killed = False
    if memory_limit > 0:
        while child.poll() is None:
            if group_rss(child.pid) > memory_limit:
                oom_killed = True
                forward(signal.SIGKILL, None)
                child.wait()
                break
            time.sleep(OOM_POLL_SECONDS)
    returncode = child.wait()
    finished = time.time()
    try:
        os.killpg(child.pid, signal.SIGKILL)  # stragglers die with the main process
    except OSError:
        pass
    exit_code = returncode if returncode >= 0 else 128 - returncode
    if oom_killed:
        reason = "OOMKilled"
    else:
        reason = "Completed" if exit_code == 0 else "Error"
    state.update(exitCode=exit_code, finishedAt=finished, reason=reason)
    message = termination_message(config, exit_code)
    if message:
        state["message"] = message
    if returncode < 0:
        state["signal"] = -returncode
    write_state(directory, state)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
