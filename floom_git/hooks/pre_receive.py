"""The server-owned pre-receive hook, a tiny client: git runs it (`python -S -I <this file>`) with
the pushed objects still in quarantine, and it asks the server's push validator over the Unix
socket named in its environment. Exit 1 refuses the whole push; what it prints reaches the
pushing person as `remote:` lines. Where perl is installed the server runs pre_receive.pl
instead: the same client in Perl, which starts several times faster.

It starts in milliseconds because it imports nothing but built-in modules (no pygit2, yaml or
msgspec, not even the floom_git package), and it fails closed: a server that cannot be reached
or does not answer refuses the push, saying so.
"""

import _socket
import os
import sys

PROTOCOL = b"floom-pre-receive 1"
SOCKET_ENV = "FLOOM_HOOK_SOCKET"  # the validator's socket, in the data directory
PUSH_ENV = "FLOOM_PUSH_ID"  # which push this is, as the server named it
CHUNK = 65536


def request(push_id: str, quarantine: str, updates: bytes) -> bytes:
    """What the hook sends: a header, a blank line, then the `<old> <new> <ref>` lines."""
    head = b"%s\npush %s\nquarantine %s\n\n" % (PROTOCOL, push_id.encode(), quarantine.encode())
    return head + updates


def ask(socket_path: str, data: bytes) -> bytes:
    """Send `data`, read the answer to its end. No timeout: a big push takes its time, and a
    server that goes away closes the connection."""
    address = socket_path
    if len(os.fsencode(socket_path)) >= 100:  # past what a socket address may hold (107 bytes)
        folder, address = os.path.split(socket_path)
        os.chdir(folder)
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.connect(address)
        sock.sendall(data)
        sock.shutdown(_socket.SHUT_WR)
        parts = []
        while chunk := sock.recv(CHUNK):
            parts.append(chunk)
        return b"".join(parts)
    finally:
        sock.close()


def main() -> int:
    try:
        env = os.environ
        # git runs pre-receive in the repository's .git folder; paths may be relative to it.
        quarantine = env.get("GIT_QUARANTINE_PATH", "")
        quarantine = os.path.abspath(quarantine) if quarantine else ""
        data = request(env[PUSH_ENV], quarantine, sys.stdin.buffer.read())
        answer = ask(env[SOCKET_ENV], data)
    except Exception as exc:  # noqa: BLE001  (fail closed: an unchecked push never lands)
        sys.stderr.write(f"push rejected: the server could not check this push ({exc!r}); "
                         "nothing was changed on the server\n")
        return 1
    verdict, _, text = answer.partition(b"\n")
    sys.stderr.write(text.decode("utf-8", "replace"))
    if verdict == b"ok":
        return 0
    if verdict != b"refused":
        sys.stderr.write("push rejected: the server gave no answer about this push; "
                         "nothing was changed on the server\n")
    return 1


if __name__ == "__main__":
    sys.exit(main())
