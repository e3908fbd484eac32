"""`python -m benchmarks.write_cpu [--writes N] [--profile OUT [--profile-clients 1|8]]`: the
server CPU that one acknowledged API write costs, 1 and 8 clients, and the writer alone: the
quick before/after measure for write-path work. With --profile, py-spy (if installed) samples
the server while the 8-client (or 1-client) writes run and writes collapsed stacks to OUT."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import fixtures, measure
from benchmarks.server import start_floom


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.write_cpu", description=__doc__)
    parser.add_argument("--writes", type=int, default=400)
    parser.add_argument("--profile", type=Path,
                        help="py-spy collapsed stacks of the 8-client writes")
    parser.add_argument("--profile-clients", type=int, default=8, choices=(1, 8),
                        help="which client count --profile samples (default 8)")
    parser.add_argument("--no-writer", action="store_true", help="skip the writer-alone measure")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="floom-write-cpu-"))
    data = work / "data"
    print(f"data on {measure.filesystem(work)}", flush=True)
    try:
        fixtures.create_workspaces(data, ["bench-writes"])
        server = start_floom(data, work / "floom.log")
        try:
            measure.warm_and_quiet(server)
            for clients in (1, 8):
                spy = None
                if args.profile is not None and clients == args.profile_clients:
                    spy = subprocess.Popen(["py-spy", "record", "--format", "raw", "--rate", "250",
                                            "--subprocesses", "--threads", "-o", str(args.profile),
                                            "-p", str(server.proc.pid)],
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    time.sleep(1.0)
                before = measure.cpu_seconds(server.proc.pid) or 0.0
                took = measure.write_seconds(server, clients, args.writes, f"c{clients}")
                after = measure.cpu_seconds(server.proc.pid) or 0.0
                if spy is not None:
                    spy.send_signal(2)
                    spy.wait()
                print(f"{clients} client(s): {args.writes / took:.0f} writes/s, server CPU "
                      f"{(after - before) / args.writes * 1000:.2f} ms per write", flush=True)
        finally:
            server.stop()
        repo = data / "workspaces" / "bench-writes"
        status = fixtures.git(repo, "status", "--porcelain")
        print(f"commits {fixtures.git(repo, 'rev-list', '--count', 'main')}, "
              f"git status clean: {status == ''}")
        if not args.no_writer:
            r = measure.group_commit(work, args.writes, 8)
            print(f"writer alone, 8 writers: {r['chain']:.0f}/s, CPU {r['chain_cpu'] * 1000:.2f} ms"
                  f" per write (serial {r['serial_cpu'] * 1000:.2f} ms, squash "
                  f"{r['squash_cpu'] * 1000:.2f} ms); mean group {r['batch']:.1f}")
        print(f"load average {os.getloadavg()[0]:.1f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
