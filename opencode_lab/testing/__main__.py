"""``python -m opencode_lab.testing``: run a test server until SIGTERM or SIGINT.

It prints ``READY <base_url>`` once listening; ``POST /_admin/script`` (``configure`` keywords as
JSON), ``GET /_admin/log`` and ``POST /_admin/reset`` drive it from another process.
``--server`` picks the wire format by class (``opencode_lab.testing:AnthropicServer``, ...).
"""

from __future__ import annotations

import argparse
import importlib
import json
import signal

from opencode_lab.testing.server import VendorServer


def _server_type(spec: str) -> type[VendorServer]:
    module, _, name = spec.partition(":")
    found = getattr(importlib.import_module(module), name, None)
    if not (isinstance(found, type) and issubclass(found, VendorServer)):
        raise argparse.ArgumentTypeError(f"{spec!r} names no VendorServer class")
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m opencode_lab.testing", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--server", type=_server_type, default="opencode_lab.testing:FaultServer")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, help="latency_s before every response")
    parser.add_argument("--mix", type=json.loads, help="outcome probabilities, e.g. '{\"server_error\": 0.1}'")
    parser.add_argument("--seed", type=int, help="seed for the mix draw")
    parser.add_argument("--settings", type=json.loads, default={}, help="any configure() settings as JSON")
    args = parser.parse_args(argv)
    settings = dict(args.settings)
    for key, value in (("latency_s", args.latency), ("mix", args.mix), ("seed", args.seed)):
        if value is not None:
            settings[key] = value
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)  # before start(): the server thread inherits the mask
    with args.server(args.host, args.port, **settings) as server:
        print(f"READY {server.base_url}", flush=True)
        signal.sigwait(stop_signals)


if __name__ == "__main__":
    main()
