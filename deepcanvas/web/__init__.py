"""deepcanvas studio: ``deepcanvas serve``, a local web page for the four techniques.

The page is built on the same Python API as the CLI (its forms are derived from the
``*_steps`` functions' signatures and docstrings). Its dependencies are optional:
``pip install 'deepcanvas[web]'``. This module imports none of them, so the ``serve``
command always exists and says what to install when they are missing.
"""

from __future__ import annotations

import errno
import ipaddress
import re
import socket
import sys
from pathlib import Path

WEB_DEPS = ("fastapi", "uvicorn", "python_multipart")
INSTALL_HINT = "pip install 'deepcanvas[web]'"


def missing_dependencies() -> list[str]:
    import importlib.util

    return [m for m in WEB_DEPS if importlib.util.find_spec(m) is None]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
_HOST_NAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*\.?$")


def allowed_hosts(host: str, allow_remote: bool, names: str | None) -> tuple[str, ...]:
    """The Host header names the studio answers to; a one-line error for a remote --host without the flags."""
    from ..errors import DeepCanvasError

    extra = [n.strip().strip("[]").lower() for n in (names or "").split(",") if n.strip()]
    for n in extra:
        if not _HOST_NAME.match(n) and not _is_ip(n):
            raise DeepCanvasError(f"bad name {n!r} in --allowed-hosts: give host names or addresses, comma-separated")
    if is_loopback(host):  # with its own address: --host 127.0.0.2 is reached as http://127.0.0.2:PORT/
        return tuple(dict.fromkeys([*LOOPBACK_NAMES, host.strip("[]").lower(), *extra]))
    if not allow_remote:
        raise DeepCanvasError(f"--host {host} lets other computers reach the studio (it has no login); add "
                              "--allow-remote to mean it, or leave --host out to keep it on this computer")
    wildcard = host in ("0.0.0.0", "::", "")
    if wildcard and not extra:
        raise DeepCanvasError(f"--host {host or '(all)'} listens on every address: name the ones browsers will use "
                              "with --allowed-hosts, e.g. --allowed-hosts studio.lan,192.168.1.9")
    return tuple(dict.fromkeys([*LOOPBACK_NAMES, *([] if wildcard else [host.strip("[]").lower()]), *extra]))


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


def add_serve_command(sub) -> None:
    p = sub.add_parser("serve", help="deepcanvas studio: a local web page for all four techniques",
                       description="Run deepcanvas studio, a web page for style transfer, DeepDream, class "
                                   f"visualization and feature inversion (needs {INSTALL_HINT}).")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: 127.0.0.1, this computer only); any other address "
                        "needs --allow-remote")
    p.add_argument("--allow-remote", action="store_true",
                   help="let --host be an address other computers can reach: anyone who can reach it can use the "
                        "studio, upload files and run jobs (there is no login)")
    p.add_argument("--allowed-hosts", default=None, metavar="NAMES",
                   help="comma-separated host names (and addresses) the studio answers to when remote, e.g. "
                        "'studio.lan,192.168.1.9'; required with --host 0.0.0.0 or ::")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (default: 8000)")
    p.add_argument("--data-dir", default=None, metavar="DIR",
                   help="where uploads and results are kept (default: a 'studio' folder in the user data dir)")
    p.add_argument("--max-upload-mb", type=float, default=20, metavar="MB",
                   help="largest accepted upload in megabytes (default: 20)")
    p.add_argument("--keep-jobs", type=int, default=500, metavar="N",
                   help="finished jobs kept in the gallery; older ones are deleted with their images (default: 500)")
    p.add_argument("--keep-uploads", type=int, default=200, metavar="N",
                   help="uploaded images kept; older ones are deleted (default: 200)")
    p.add_argument("--keep-mb", type=float, default=2048, metavar="MB",
                   help="disk space results and uploads may use together; the oldest go first (default: 2048)")
    p.add_argument("--checkpoint-every", type=float, default=10, metavar="SECONDS",
                   help="a running job saves its current image this often, so a crash keeps it (default: 10)")
    p.add_argument("--repair", action="store_true",
                   help="start even if the data folder's database is missing, empty or damaged: it and the files "
                        "it does not list are moved into DATA_DIR/quarantine/ (never deleted), and the gallery "
                        "starts empty")
    p.set_defaults(handler=_serve)


def _serve(args) -> int:
    from ..errors import DeepCanvasError
    from ..limits import check_number

    missing = missing_dependencies()
    if missing:
        raise DeepCanvasError(f"the studio needs {', '.join(missing)}, which is not installed; {INSTALL_HINT}")
    port = int(check_number("port", args.port, integer=True, minimum=1))
    if port > 65535:
        raise DeepCanvasError(f"port must be at most 65535, got {port}")
    max_upload = check_number("max_upload_mb", args.max_upload_mb, positive=True)
    keep = {"keep_jobs": int(check_number("keep_jobs", args.keep_jobs, integer=True, minimum=0)),
            "keep_uploads": int(check_number("keep_uploads", args.keep_uploads, integer=True, minimum=0)),
            "keep_mb": check_number("keep_mb", args.keep_mb, minimum=0),
            "checkpoint_every": check_number("checkpoint_every", args.checkpoint_every, positive=True)}
    try:
        socket.getaddrinfo(args.host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, ValueError) as e:
        raise DeepCanvasError(f"bad --host {args.host!r}: not an address or a known host name "
                              f"({getattr(e, 'strerror', None) or e})") from None
    hosts = allowed_hosts(args.host, args.allow_remote, args.allowed_hosts)
    try:
        with socket.create_server((args.host, port)):
            pass
    except OSError as e:
        if e.errno == errno.EADDRNOTAVAIL:
            raise DeepCanvasError(f"bad --host {args.host!r}: it is not an address of this computer") from None
        hint = "try another --port" if e.errno in (errno.EADDRINUSE, errno.EACCES) else "check --host and --port"
        raise DeepCanvasError(f"cannot listen on {args.host}:{port}: {e.strerror or e}; {hint}") from None
    if not is_loopback(args.host):
        print(f"deepcanvas: warning: listening on {args.host}, not just this computer: anyone who can reach "
              f"port {port} can use the studio, upload files and run jobs; it answers to the host names "
              f"{', '.join(hosts)} only", file=sys.stderr)

    import uvicorn

    from .app import create_app, default_data_dir

    data_dir = Path(args.data_dir).expanduser() if args.data_dir else default_data_dir()
    try:
        app = create_app(data_dir, int(max_upload * 1024 * 1024), allowed_hosts=hosts, port=port,
                         repair=args.repair, **keep)
    except OSError as e:
        raise DeepCanvasError(f"cannot use data folder '{data_dir}': {e.strerror or e}") from None
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"deepcanvas studio on http://{shown}:{port}/  (data in {data_dir}; Ctrl-C to stop)", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=port, log_level="warning")
    return 0
