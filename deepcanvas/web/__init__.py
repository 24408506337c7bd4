"""deepcanvas studio: ``deepcanvas serve``, a local web page for the four techniques.

The page is built on the same Python API as the CLI (its forms are derived from the
``*_steps`` functions' signatures and docstrings). Its dependencies are optional:
``pip install 'deepcanvas[web]'``. This module imports none of them, so the ``serve``
command always exists and says what to install when they are missing.
"""

from __future__ import annotations

import ipaddress
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


def add_serve_command(sub) -> None:
    p = sub.add_parser("serve", help="deepcanvas studio: a local web page for all four techniques",
                       description="Run deepcanvas studio, a web page for style transfer, DeepDream, class "
                                   f"visualization and feature inversion (needs {INSTALL_HINT}).")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: 127.0.0.1, this computer only)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (default: 8000)")
    p.add_argument("--data-dir", default=None, metavar="DIR",
                   help="where uploads and results are kept (default: a 'studio' folder in the user data dir)")
    p.add_argument("--max-upload-mb", type=float, default=20, metavar="MB",
                   help="largest accepted upload in megabytes (default: 20)")
    p.set_defaults(handler=_serve)


def _serve(args) -> int:
    from ..errors import DeepCanvasError, check_number

    missing = missing_dependencies()
    if missing:
        raise DeepCanvasError(f"the studio needs {', '.join(missing)}, which is not installed; {INSTALL_HINT}")
    port = int(check_number("port", args.port, integer=True, minimum=1))
    if port > 65535:
        raise DeepCanvasError(f"port must be at most 65535, got {port}")
    max_upload = check_number("max_upload_mb", args.max_upload_mb, positive=True)
    if not is_loopback(args.host):
        print(f"deepcanvas: warning: listening on {args.host}, not just this computer: anyone who can reach "
              f"port {port} can use the studio, upload files and run jobs", file=sys.stderr)
    try:
        with socket.create_server((args.host, port)):
            pass
    except OSError as e:
        raise DeepCanvasError(f"cannot listen on {args.host}:{port}: {e.strerror or e}; try another --port") from None

    import uvicorn

    from .app import LOOPBACK_NAMES, create_app, default_data_dir

    data_dir = Path(args.data_dir).expanduser() if args.data_dir else default_data_dir()
    hosts = LOOPBACK_NAMES if is_loopback(args.host) else None
    try:
        app = create_app(data_dir, int(max_upload * 1024 * 1024), allowed_hosts=hosts)
    except OSError as e:
        raise DeepCanvasError(f"cannot use data folder '{data_dir}': {e.strerror or e}") from None
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"deepcanvas studio on http://{shown}:{port}/  (data in {data_dir}; Ctrl-C to stop)", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=port, log_level="warning")
    return 0
