#!/usr/bin/env python3
"""ustor JSON-RPC client.

    rpc.py [-s SOCKET] [-t TIMEOUT] [-v] METHOD [ARGS]

Prints the result as JSON (indent 2); a plain string prints bare and a
result of true prints nothing. RPC errors go to stderr with their code and
exit with status 1, as do connection problems. Subcommands live in the rpc/
package next to this script, one module per component.
"""

import argparse
import os
import sys


def _find_package():
    here = os.path.dirname(os.path.realpath(__file__))
    for d in (here, os.path.join(here, "..", "share", "ustor", "python")):
        if os.path.isfile(os.path.join(d, "rpc", "__init__.py")):
            sys.path.insert(0, os.path.abspath(d))
            return
    sys.exit("rpc.py: cannot find the rpc package next to %s" % __file__)


_find_package()

import rpc  # noqa: E402
from rpc.client import JSONRPCClient, JSONRPCError, RPCConnectionError  # noqa: E402
from rpc.cmd import CommandError  # noqa: E402

DEFAULT_SOCKET = "/var/tmp/ustor.sock"


def build_parser():
    parser = argparse.ArgumentParser(
        prog="rpc.py", description="Call ustord's JSON-RPC methods.")
    parser.add_argument("-s", "--server", dest="socket",
                        default=os.environ.get("USTOR_RPC_SOCKET", DEFAULT_SOCKET),
                        help="UNIX socket of the server (default %s, or $USTOR_RPC_SOCKET)"
                        % DEFAULT_SOCKET)
    parser.add_argument("-t", "--timeout", type=float, default=60.0,
                        help="seconds to wait for each response (default 60)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="print each raw request and response to stderr")
    sub = parser.add_subparsers(dest="command", metavar="METHOD")
    sub.required = True
    rpc.load_commands(sub)
    return parser


def print_result(result):
    if result is None or result is True:
        return
    if isinstance(result, str):
        print(result)
    else:
        import json
        print(json.dumps(result, indent=2))


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.timeout <= 0:
        print("rpc.py: the timeout must be positive", file=sys.stderr)
        return 1
    try:
        with JSONRPCClient(args.socket, args.timeout, args.verbose) as client:
            result = args.handler(client, args)
    except JSONRPCError as e:
        print("rpc.py: %s failed: error %s: %s" % (e.method, e.code, e.message), file=sys.stderr)
        return 1
    except (RPCConnectionError, CommandError) as e:
        print("rpc.py: %s" % e, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    try:
        print_result(result)
        sys.stdout.flush()
    except BrokenPipeError:
        # "rpc.py save_config | head" is not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main())
